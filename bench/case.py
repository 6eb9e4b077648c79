"""Held-out simulated subjects, normalised like the product does, and their scores: the input of the
benchmark, the quality curve and the ablation table.

The identity baseline (the low field as the prediction of 3 T, the paper's Table 1 row 1) is scored on the
*raw* input (:func:`raw_input_scores`), as the demo and the organisers score it; the normalised input
written back on its scale (:func:`contrast_scores` of ``network_input``) has been clipped to the 0.5th and
99.5th percentiles and scores what clipping alone achieves, not the identity.

Simulated training sets use small seeds (``python -m simulation --seed 0``: subjects 0, 1, ...);
held-out evaluation starts at :data:`HELD_OUT_SEED`, so the two never share a subject;
``variation="foreign"`` draws them from the foreign simulator (:mod:`simulation.foreign`), which no training set
ever uses. A crop is taken *after* the whole head has been normalised, so that a cropped run is a part of a
full-head run (the same intensity maps), only cheaper; windows at the crop's faces see less context.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from evaluation.metrics import challenge_metrics
from model.volumes.intensity import IntensityMap, denormalise_contrasts, normalise_contrasts
from model.volumes.layouts import CONTRASTS
from simulation import SimulatedSubject, generate_subject, subject_variation
from simulation.foreign import generate_foreign_subject
from simulation.variation import VARIATIONS

HELD_OUT_SEED = 90_000
# The held-out subjects' roles (docs/training.md, "Which subjects play which role"): those that choose (the
# calibration's ladder and the auto preset, a remap kept or not, a checkpoint shipped) are not those that report.
VALIDATION_SEED = HELD_OUT_SEED + 100  # 90100..: choosing
TEST_SEED = HELD_OUT_SEED + 200  # 90200..: reporting (ablation tables, the uncertainty study)
FOREIGN = "foreign"  # the foreign simulator (simulation/foreign/): another signal model and anatomy, evaluation only
HELD_OUT_VARIATIONS = (*VARIATIONS, FOREIGN)
SOURCES = {"low": "64 mT input", "high": "3 T input"}  # which field of the subject is the network input


@dataclass(frozen=True)
class BenchCase:
    """One subject: the normalised network input, the raw input it came from, the 3 T reference and the brain mask."""

    name: str
    network_input: np.ndarray  # (3, X, Y, Z) float32 in [-1, 1]
    maps: list[IntensityMap]  # the input's intensity maps, to write outputs back on their scale
    high: np.ndarray  # (3, X, Y, Z) 3 T reference
    mask: np.ndarray  # (X, Y, Z) brain mask
    raw_input: np.ndarray | None = None  # (3, X, Y, Z) the input field as simulated (same crop), before normalisation

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.network_input.shape[1:])


def centred_crop(shape: Sequence[int], size: Sequence[int] | None) -> tuple[slice, ...]:
    """Slices of a centred crop of ``size`` (each axis at most the volume's) of a volume of ``shape``."""
    if size is None:
        return tuple(slice(None) for _ in shape)
    if len(size) != len(shape) or any(c < 1 for c in size):
        raise ValueError(f"a crop needs {len(shape)} positive sizes, got {tuple(size)}")
    return tuple(slice((n - min(c, n)) // 2, (n - min(c, n)) // 2 + min(c, n)) for n, c in zip(shape, size))


@lru_cache(maxsize=4)
def simulated_subject(seed: int, shape_scale: float, variation: str = "nominal") -> SimulatedSubject:
    """Subject ``seed`` of the simulator (about 25 s for a full head; the last four are kept, about 250 MB each:
    a sweep of configurations over up to four subjects simulates each once), with its
    simulator parameters drawn for ``variation`` (nominal, training or shifted: simulation/variation.py), or,
    for ``variation="foreign"``, subject ``seed`` of the foreign simulator (simulation/foreign/: its own signal
    model, tissues, deformation and 64 mT acquisition; never trained on)."""
    if variation == FOREIGN:
        return generate_foreign_subject(seed, shape_scale=shape_scale)
    return generate_subject(seed, shape_scale=shape_scale, variation=subject_variation(seed, variation))


def add_variation(parser) -> None:
    """``--variation``: the held-out subjects' simulator parameters (simulation/variation.py), or the foreign simulator."""
    parser.add_argument("--variation", default="nominal", choices=HELD_OUT_VARIATIONS,
                        help="held-out subjects' simulator parameters: nominal (the calibrated simulator), training "
                             "(drawn from the training ranges: the ordinary held-out set), shifted (outside them) or "
                             "foreign (another simulator, simulation/foreign/: its own signal model, tissues, anatomy "
                             "deformation and 64 mT acquisition, never trained on: a stand-in for a real scanner)")


def simulated_case(seed: int = HELD_OUT_SEED, shape_scale: float = 1.0, crop: Sequence[int] | None = None,
                   source: str = "low", variation: str = "nominal") -> BenchCase:
    """Subject ``seed``'s ``source`` field ("low", or "high" for the upper bound) normalised as the product
    does (percentiles of the whole head), optionally cropped: a crop is a part of a full-head run."""
    subject = simulated_subject(seed, shape_scale, variation)
    network_input, maps = normalise_contrasts(list(getattr(subject, source)), list(CONTRASTS))
    box = centred_crop(subject.mask.shape, crop)
    network_input = np.ascontiguousarray(network_input[(slice(None), *box)])
    raw_input = np.stack([np.asarray(volume)[box] for volume in getattr(subject, source)])
    high, mask = subject.high[(slice(None), *box)], subject.mask[box]
    if not mask.any():
        raise ValueError(f"the crop {crop} of subject {seed} holds no brain")
    shape = "x".join(str(n) for n in mask.shape)
    name = f"simulated subject {seed}, {shape} at {1 / shape_scale:g} mm" + (" (centred crop)" if crop else "")
    if variation != "nominal":
        name += ", foreign simulator" if variation == FOREIGN else f", {variation} parameters"
    name += "" if source == "low" else f", {SOURCES[source]}"
    return BenchCase(name, network_input, maps, np.ascontiguousarray(high), np.ascontiguousarray(mask), raw_input)


def contrast_scores(case: BenchCase, enhanced: np.ndarray) -> list[dict]:
    """The challenge's metrics of a network-scale output, one row per contrast."""
    output = denormalise_contrasts(enhanced, case.maps)
    return [{"contrast": c, **challenge_metrics(output[i], case.high[i], case.mask)} for i, c in enumerate(CONTRASTS)]


def raw_input_scores(case: BenchCase) -> list[dict]:
    """The identity baseline: the challenge's metrics of the raw input (not clipped, not normalised) as the
    output, one row per contrast, as :func:`contrast_scores` gives them."""
    if case.raw_input is None:
        raise ValueError(f"{case.name} carries no raw input to score the identity on")
    return [{"contrast": c, **challenge_metrics(case.raw_input[i], case.high[i], case.mask)}
            for i, c in enumerate(CONTRASTS)]


def mean_scores(rows: list[dict]) -> dict[str, float]:
    """Each metric of :func:`contrast_scores`'s rows averaged over the contrasts."""
    return {key: float(np.mean([row[key] for row in rows])) for key in rows[0] if key != "contrast"}


def case_score(case: BenchCase, enhanced: np.ndarray) -> dict[str, float]:
    """The challenge's metrics of a network-scale output, averaged over the three contrasts."""
    return mean_scores(contrast_scores(case, enhanced))
