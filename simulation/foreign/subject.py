"""One foreign subject: paired 3 T and 64 mT T1w, T2w and FLAIR from the foreign simulator (evaluation only)."""

from __future__ import annotations

import numpy as np

from model.volumes.layouts import CONTRASTS
from simulation.foreign.anatomy import TISSUES, subject_anatomy
from simulation.foreign.parameters import (HIGH_FIELD, HIGH_FIELD_SNR, LESIONS, LOW_FIELD, LOW_FIELD_ACQUISITION,
                                           OUTPUT_LEVEL, ForeignAcquisition)
from simulation.foreign.scanner import (coil_field, cubic_resample, dielectric_field, head_support, kappa,
                                        phase_encode_spectra, rician, rigid_motion, truncate_k_space, weighted_image)
from simulation.foreign.sequences import tissue_profile
from simulation.foreign.tissues import relaxation_table, subject_tissues
from simulation.geometry import checked_subject_arguments
from simulation.subject import LABEL_NAMES, SimulatedSubject

if tuple(LABEL_NAMES[1:]) != TISSUES:
    raise ImportError(f"the foreign tissues {TISSUES} must be the benchmark's label names {LABEL_NAMES[1:]}")

# Every part draws from its own stream default_rng([FOREIGN_STREAM, seed, k]): independent of the training
# simulator's streams (which are default_rng([seed, k])) even for the same seed, and of each other.
FOREIGN_STREAM = 6464
STREAMS = {"deformation": 1, "head": 2, "lesions": 3, "lesion_choice": 4, "tissues": 5, "high": 6, "low": 7,
           "motion": 8, "coils": 9, "gain": 10}
HIGH_FIELD_VOXEL_MM = 1.0  # the 3 T scans are acquired at 1 mm isotropic
HEAD_MARGIN_MM = 15.0  # the coil helmet's ellipsoid: the brain's half extent plus this, plus the standoff


def _stream(seed: int, part: str) -> np.random.Generator:
    """The random generator of one part of foreign subject ``seed``."""
    return np.random.default_rng([FOREIGN_STREAM, seed, STREAMS[part]])


def _labels(fractions: dict[str, np.ndarray]) -> np.ndarray:
    """The dominant tissue per voxel, numbered as in :data:`LABEL_NAMES` (0 where bone or air dominates)."""
    stack = np.stack([fractions[name] for name in TISSUES])
    background = 1.0 - stack.sum(axis=0, keepdims=True)
    return np.argmax(np.concatenate([background, stack]), axis=0).astype(np.uint8)


def _scanner_units(volume: np.ndarray, head: np.ndarray, rng: np.random.Generator, field: str) -> np.ndarray:
    """Integers as a scanner stores them: the head's 99.5th percentile at a level uniform in OUTPUT_LEVEL."""
    top = float(np.percentile(volume[head], 99.5)) if head.any() else float(volume.max())
    level = rng.uniform(*OUTPUT_LEVEL[field])
    return np.rint(volume * np.float32(level / max(top, 1e-12))).astype(np.float32)


def _acquire_high(clean: np.ndarray, brain: np.ndarray, spacing: np.ndarray, centre: np.ndarray,
                  rng: np.random.Generator) -> np.ndarray:
    """3 T: the 1 mm image times the dielectric field, Rician noise (SNR at 1 mm; lower per voxel of a finer
    grid is impossible, so coarse test grids average their 1 mm voxels' noise)."""
    brain_mean = float(np.abs(clean[brain]).mean())
    field = dielectric_field(clean.shape, spacing, centre, rng, head_support(clean, brain_mean))
    sigma = brain_mean / HIGH_FIELD_SNR * np.sqrt(HIGH_FIELD_VOXEL_MM**3 / np.prod(np.maximum(spacing, 1.0)))
    return rician(clean * field, sigma, rng)


def _acquire_low(clean: np.ndarray, brain: np.ndarray, spacing: np.ndarray, centre: np.ndarray, half_extent: np.ndarray,
                 acquisition: ForeignAcquisition, rngs: dict[str, np.random.Generator]) -> np.ndarray:
    """64 mT: head motion, the k-space cut to the acquired voxel, the coil array's field, Rician noise at the
    acquired voxel, cubic interpolation back onto the subject's grid."""
    moved = rigid_motion(clean, spacing, rngs["motion"], acquisition.motion_mm, acquisition.motion_deg)
    coarse, positions = truncate_k_space(moved, spacing, acquisition.voxel_mm, acquisition.apodisation)
    steps = np.array([where[1] - where[0] if where.size > 1 else 1.0 for where in positions])  # coarse voxels per fine
    axes_mm = [(np.arange(n) - where[0]) / step * s for n, where, step, s in zip(coarse.shape, positions, steps, spacing)]
    brain_mean = float(np.abs(clean[brain]).mean())
    support = head_support(coarse, brain_mean)
    field = coil_field(axes_mm, centre, half_extent, support, rngs["coils"])
    coarse_spacing = spacing / steps
    sigma = brain_mean / acquisition.snr * np.sqrt(np.prod(acquisition.voxel_mm) / np.prod(coarse_spacing))
    noisy = rician(coarse * field, sigma, rngs["low"])
    return np.maximum(cubic_resample(noisy, positions), 0.0)


def generate_foreign_subject(seed: int, shape_scale: float = 1.0, *, lesions: bool | None = None) -> SimulatedSubject:
    """Foreign subject ``seed`` (the same seed and scale give the same subject, bit for bit).

    ``shape_scale`` s < 1 simulates the head on a grid of spacing 1/s mm over the same field of view (as the
    training simulator's ``shape_scale``); ``lesions``: True/False forces periventricular lesions on or off,
    None lets the seed decide (``LESIONS.probability``). The result is a :class:`SimulatedSubject` (its
    ``variation`` field keeps the training simulator's default and means nothing here).
    """
    seed, shape_scale = checked_subject_arguments(seed, shape_scale)
    if lesions is None:
        lesions = bool(_stream(seed, "lesion_choice").random() < LESIONS.probability)
    rngs = {part: _stream(seed, part) for part in STREAMS}
    grid, fractions, brain = subject_anatomy(float(shape_scale), lesions, rngs)
    spacing = np.asarray(grid.spacing, dtype=np.float64)
    labels = _labels(fractions)
    spectra = phase_encode_spectra([fractions[name] for name in TISSUES])
    del fractions
    index_mm = np.argwhere(brain) * spacing
    centre = index_mm.mean(axis=0)
    half_extent = 0.5 * (index_mm.max(axis=0) - index_mm.min(axis=0)) + HEAD_MARGIN_MM
    del index_mm
    tissues = subject_tissues(rngs["tissues"])
    n_y, head = grid.size[1], labels > 0
    volumes = {"3T": [], "64mT": []}
    for field, sequences in (("3T", HIGH_FIELD), ("64mT", LOW_FIELD)):
        table = relaxation_table(field, tissues)
        for contrast in CONTRASTS:
            voxel = HIGH_FIELD_VOXEL_MM if field == "3T" else LOW_FIELD_ACQUISITION[contrast].voxel_mm[1]
            lines = kappa(n_y, spacing[1], voxel)
            clean = weighted_image(spectra, [tissue_profile(table[name], sequences[contrast], lines) for name in TISSUES],
                                   n_y)
            if field == "3T":
                acquired = _acquire_high(clean, brain, spacing, centre, rngs["high"])
            else:
                acquired = _acquire_low(clean, brain, spacing, centre, half_extent, LOW_FIELD_ACQUISITION[contrast], rngs)
            volumes[field].append(_scanner_units(acquired, head, rngs["gain"], field))
    return SimulatedSubject(high=np.stack(volumes["3T"]), low=np.stack(volumes["64mT"]), mask=brain.astype(np.uint8),
                            labels=labels, spacing=grid.spacing, origin=grid.origin, direction=grid.direction,
                            seed=seed, lesions=lesions)
