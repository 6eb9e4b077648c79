"""One simulated subject: paired 3 T and 64 mT T1w, T2w and FLAIR volumes on one 1 mm grid."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulation.acquisition import acquire_high_field, acquire_low_field
from simulation.atrophy import apply_atrophy
from simulation.anatomy import STACK_CHANNELS, head_tissues, load_template
from simulation.deformation import random_deformation, warp_stack
from simulation.geometry import Grid, checked_subject_arguments
from simulation.lesions import lesion_map
from simulation.parameters import (CONTRASTS, HIGH_FIELD_ACQUISITION, OUTPUT_GAIN_SD,
                                   OUTPUT_LEVEL, TISSUE_NAMES)
from simulation.signal import contrast_volumes, jittered_tissues
from simulation.variation import NOMINAL, SubjectVariation, draw_variation

# Random streams, one per independent part of the simulation, so that e.g. switching lesions on
# does not change the noise: the stream of part k is default_rng([seed, k]).
STREAMS = {"head": 1, "deformation": 2, "tissues": 3, "lesions": 4, "high": 5, "low": 6, "gain": 7, "lesion_choice": 8,
           "variation": 9}
LABEL_NAMES = ("background",) + TISSUE_NAMES  # label 0: air or bone (no signal)


@dataclass(frozen=True)
class SimulatedSubject:
    """Paired volumes of one subject.

    ``high`` and ``low``: float32 (3, X, Y, Z), channels [T1, T2, FLAIR], axes in SimpleITK index
    order (x, y, z); ``low`` is already resampled onto the 1 mm high-field grid. ``mask``: uint8
    (X, Y, Z) brain mask. ``labels``: uint8 (X, Y, Z) dominant tissue per voxel, names in
    :data:`LABEL_NAMES`. ``spacing``/``origin``/``direction``: the grid (SimpleITK conventions).
    """

    high: np.ndarray
    low: np.ndarray
    mask: np.ndarray
    labels: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]
    seed: int
    lesions: bool
    variation: SubjectVariation = NOMINAL

    @property
    def grid(self) -> Grid:
        """The subject's image grid."""
        return Grid(tuple(self.mask.shape), self.spacing, self.origin, self.direction)


def _stream(seed: int, part: str) -> np.random.Generator:
    """The random generator of one part of subject ``seed``."""
    return np.random.default_rng([seed, STREAMS[part]])


def _tissue_fractions(seed: int, shape_scale: float, lesions: bool,
                      variation: SubjectVariation) -> tuple[Grid, np.ndarray, np.ndarray]:
    """Warped tissue fractions (x, y, z, len(TISSUE_NAMES)) in TISSUE_NAMES order, and the brain mask."""
    template = load_template(shape_scale)
    grid = template.grid
    stack = head_tissues(template, _stream(seed, "head"))
    deformation = random_deformation(grid, _stream(seed, "deformation"), variation.deformation())
    warped = warp_stack(stack, grid, deformation)
    channels = dict(zip(STACK_CHANNELS, np.moveaxis(warped, -1, 0)))
    fractions = np.zeros(grid.size + (len(TISSUE_NAMES),), dtype=np.float32)
    for index, name in enumerate(TISSUE_NAMES):
        if name in channels:
            fractions[..., index] = channels[name]
    apply_atrophy(fractions, TISSUE_NAMES, variation.atrophy, grid)
    if lesions:
        wm = TISSUE_NAMES.index("wm")
        occupancy = lesion_map(fractions[..., wm], grid, _stream(seed, "lesions"), variation.lesions())
        lesion = occupancy * fractions[..., wm]
        fractions[..., wm] -= lesion
        fractions[..., TISSUE_NAMES.index("lesion")] = lesion
    return grid, fractions, channels["brain"] > 0.5


def _labels(fractions: np.ndarray) -> np.ndarray:
    """The dominant tissue per voxel (0 where signal-free bone or air dominates)."""
    background = 1.0 - fractions.sum(axis=-1, keepdims=True)
    return np.argmax(np.concatenate([background, fractions], axis=-1), axis=-1).astype(np.uint8)


def _scale(noisy: np.ndarray, clean: np.ndarray, brain: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scanner-like units: the clean brain's 99th percentile maps to OUTPUT_LEVEL times a random gain."""
    gain = OUTPUT_LEVEL * np.exp(rng.normal(0.0, OUTPUT_GAIN_SD)) / float(np.percentile(clean[brain], 99))
    return (noisy * np.float32(gain)).astype(np.float32)


def generate_subject(seed: int, *, lesions: bool | None = None, shape_scale: float = 1.0,
                     variation: SubjectVariation = NOMINAL) -> SimulatedSubject:
    """Simulate subject ``seed`` (the same seed gives the same subject, bit for bit).

    ``lesions``: True/False forces white-matter lesions on or off; None lets the seed decide
    (probability ``LESIONS.probability``). ``shape_scale``: 1 gives the full 197x233x189 1 mm grid;
    s < 1 resamples the template anatomy onto a grid of spacing 1/s mm over the same field of view
    (about s^3 as many voxels, e.g. 0.5 -> 98x116x94 at 2 mm, 0.4 -> 79x93x76 at 2.5 mm), for quick tests; all physical
    parameters (slice thickness, smoothness, noise per acquired voxel) stay in mm. ``variation``: this
    subject's simulator parameters (:mod:`simulation.variation`; the nominal simulator by default).
    """
    seed, shape_scale = checked_subject_arguments(seed, shape_scale)
    if lesions is None:
        lesions = bool(_stream(seed, "lesion_choice").random() < variation.lesions().probability)
    grid, fractions, brain = _tissue_fractions(seed, float(shape_scale), lesions, variation)
    tissues = jittered_tissues(_stream(seed, "tissues"), None if variation.nominal else variation.relaxation_jitter_sd)
    gain_rng, high_rng, low_rng = _stream(seed, "gain"), _stream(seed, "high"), _stream(seed, "low")
    high, low = [], []
    low_acquisitions = {c: variation.low_field_acquisition(c) for c in CONTRASTS}
    for field, out, acquisitions, field_sequences, rng, acquire in (
        ("3T", high, HIGH_FIELD_ACQUISITION, None, high_rng, acquire_high_field),
        ("64mT", low, low_acquisitions, variation.low_field_sequences(), low_rng, acquire_low_field),
    ):
        clean = contrast_volumes(fractions, TISSUE_NAMES, tissues, field, field_sequences)
        for index, contrast in enumerate(CONTRASTS):
            noisy = acquire(clean[index], grid, brain, acquisitions[contrast], rng)
            out.append(_scale(noisy, clean[index], brain, gain_rng))
    return SimulatedSubject(high=np.stack(high), low=np.stack(low), mask=brain.astype(np.uint8),
                            labels=_labels(fractions), spacing=grid.spacing, origin=grid.origin,
                            direction=grid.direction, seed=seed, lesions=lesions, variation=variation)


def subject_variation(seed: int, kind: str) -> SubjectVariation:
    """Subject ``seed``'s simulator parameters for variation ``kind`` (nominal, training or shifted)."""
    return draw_variation(kind, _stream(int(seed), "variation"))
