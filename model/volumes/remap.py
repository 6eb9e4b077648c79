"""An output intensity remap: per contrast, a monotone piecewise-linear map of the network's output (network
units) onto the 3 T intensity distribution, fitted on training subjects only (``python -m bench.output_remap``)
and stored in the weights' manifest (``"output_remap"``) with the checksums of the networks it was fitted for.

The diffusion model is trained to produce 3 T-like intensities, but its outputs' histograms still differ from
the 3 T references' (the grey-white contrast is weaker); the metric min-max normalises each volume, so the
shape of the histogram matters. The map matches quantiles: knot ``k`` of a contrast sends the output's
quantile ``q_k`` (over the head's voxels of the fitting subjects) to the 3 T target's quantile ``q_k``; between
knots it interpolates linearly, outside them it shifts with slope 1 (the background is not crushed), and the
result is clipped to the output range like any output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import WeightsError
from .intensity import OUTPUT_CEILING
from .layouts import CONTRASTS

REMAP_KEY = "output_remap"
REMAP_FORMAT = 1
QUANTILES = tuple(float(q) for q in np.linspace(0.5, 99.5, 199))  # the knots' quantiles, in percent


@dataclass(frozen=True)
class OutputRemap:
    """Per contrast, the knots ``source`` (output quantiles) -> ``target`` (3 T quantiles), both increasing; a
    contrast without knots is left as it is (the remap is kept only for contrasts where it was measured to help)."""

    source: dict[str, tuple[float, ...]]
    target: dict[str, tuple[float, ...]]

    def apply(self, volume: np.ndarray) -> np.ndarray:
        """``volume`` (3, X, Y, Z) in network units, remapped per contrast (float32, clipped to the output range)."""
        out = volume.astype(np.float32, copy=True)
        for index, contrast in enumerate(CONTRASTS):
            if contrast not in self.source:
                continue
            source, target = np.asarray(self.source[contrast]), np.asarray(self.target[contrast])
            v = volume[index].astype(np.float32)
            mapped = np.interp(v, source, target)
            mapped = np.where(v < source[0], target[0] + (v - source[0]), mapped)
            mapped = np.where(v > source[-1], target[-1] + (v - source[-1]), mapped)
            out[index] = np.clip(mapped, -1.0, OUTPUT_CEILING)
        return out

    def to_record(self) -> dict[str, Any]:
        return {c: {"source": [round(x, 6) for x in self.source[c]], "target": [round(x, 6) for x in self.target[c]]}
                for c in CONTRASTS if c in self.source}

    def only(self, contrasts) -> "OutputRemap":
        """The remap of ``contrasts`` alone (the others left as they are)."""
        return OutputRemap({c: self.source[c] for c in contrasts}, {c: self.target[c] for c in contrasts})

    @classmethod
    def from_record(cls, record: dict[str, Any], where: str) -> "OutputRemap":
        """From a manifest's knots, checked: both lists per contrast, equally long, increasing."""
        source, target = {}, {}
        if not isinstance(record, dict) or not set(record) <= set(CONTRASTS):
            raise WeightsError(f"{where}: the output remap's knots must be an object keyed by {', '.join(CONTRASTS)}")
        for contrast in CONTRASTS:
            if contrast not in record:
                continue
            knots = record[contrast]
            try:
                s, t = tuple(float(x) for x in knots["source"]), tuple(float(x) for x in knots["target"])
            except (TypeError, KeyError, ValueError):
                raise WeightsError(f"{where}: the output remap of {contrast} is not two lists of numbers "
                                   "('source', 'target')") from None
            if len(s) != len(t) or len(s) < 2 or np.any(np.diff(s) <= 0) or np.any(np.diff(t) < 0):
                raise WeightsError(f"{where}: the output remap of {contrast} needs equally long knot lists, the "
                                   "source strictly increasing and the target not decreasing")
            source[contrast], target[contrast] = s, t
        return cls(source, target)


def fit_output_remap(outputs: list[np.ndarray], targets: list[np.ndarray], heads: list[np.ndarray]) -> OutputRemap:
    """Quantile matching over the head voxels of several subjects: ``outputs`` and ``targets`` (3, X, Y, Z) in
    network units, ``heads`` (X, Y, Z) booleans. The source knots are made strictly increasing (ties, such as a
    clipped tail, are spread by a negligible step) so that the map is a function."""
    source, target = {}, {}
    for index, contrast in enumerate(CONTRASTS):
        made = np.concatenate([o[index][h] for o, h in zip(outputs, heads)])
        wanted = np.concatenate([t[index][h] for t, h in zip(targets, heads)])
        s = np.percentile(made, QUANTILES)
        s = s + np.arange(len(s)) * 1e-6  # strictly increasing
        s = np.maximum.accumulate(s)
        source[contrast] = tuple(float(x) for x in s)
        target[contrast] = tuple(float(x) for x in np.maximum.accumulate(np.percentile(wanted, QUANTILES)))
    return OutputRemap(source, target)
