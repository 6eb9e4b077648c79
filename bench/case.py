"""The benchmark's input: a held-out simulated subject, normalised like the product does, and its score."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evaluation.held_out import HELD_OUT_SEED, centred_crop
from evaluation.metrics import challenge_metrics
from model.intensity import IntensityMap, denormalise_contrasts, normalise_contrasts
from model.layouts import CONTRASTS
from simulation import generate_subject

@dataclass(frozen=True)
class BenchCase:
    """One subject: the normalised low-field network input, the 3 T reference and the brain mask."""

    name: str
    network_input: np.ndarray  # (3, X, Y, Z) float32 in [-1, 1]
    maps: list[IntensityMap]  # the low-field intensity maps, to write outputs back on their scale
    high: np.ndarray  # (3, X, Y, Z) 3 T reference
    mask: np.ndarray  # (X, Y, Z) brain mask

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.network_input.shape[1:])


def simulated_case(seed: int = HELD_OUT_SEED, shape_scale: float = 1.0, crop: Sequence[int] | None = None) -> BenchCase:
    """Simulate subject ``seed`` (about 25 s for a full head), normalise its low field as the product does
    (percentiles of the whole head), and optionally crop it: a crop is a part of a full-head run."""
    subject = generate_subject(seed, shape_scale=shape_scale)
    network_input, maps = normalise_contrasts(list(subject.low), list(CONTRASTS))  # the whole head's intensity maps
    box = centred_crop(subject.mask.shape, crop)
    network_input = np.ascontiguousarray(network_input[(slice(None), *box)])
    high, mask = subject.high[(slice(None), *box)], subject.mask[box]
    if not mask.any():
        raise ValueError(f"the crop {crop} of subject {seed} holds no brain")
    shape = "x".join(str(n) for n in mask.shape)
    name = f"simulated subject {seed}, {shape} at {1 / shape_scale:g} mm" + (" (centred crop)" if crop else "")
    return BenchCase(name, network_input, maps, np.ascontiguousarray(high), np.ascontiguousarray(mask))


def case_score(case: BenchCase, enhanced: np.ndarray) -> dict[str, float]:
    """The challenge's metrics of a network-scale output, averaged over the three contrasts."""
    output = denormalise_contrasts(enhanced, case.maps)
    rows = [challenge_metrics(output[i], case.high[i], case.mask) for i in range(len(CONTRASTS))]
    return {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}
