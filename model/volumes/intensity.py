"""Per-contrast intensity mapping to the networks' range [-1, 1] and back (docs/method.md).

Robust to outliers: the percentiles ``low_percentile`` and ``high_percentile`` of the volume map
to -1 and 1 and values beyond are clipped, so one hot voxel cannot squeeze the brain into a
sliver of the range. The inverse maps the network's output back onto the input's own intensity
scale.

Outputs are not clipped at 1: a 3 T volume's brightest voxels (scalp fat, vessels) lie above its
99.5th percentile, up to about 1.2 in network units (measured on simulated heads: 1.19-1.22), and
the challenge's metric min-max normalises each volume, so an output clipped at 1 has its whole brain
brighter, relative to its maximum, than the reference. Networks therefore train on high-field
targets clipped at :data:`OUTPUT_CEILING` instead of 1, and outputs are clipped to
``[-1, OUTPUT_CEILING]`` only as a guard against stray voxels.

:func:`normalisation_record` states all of this as data: the weights manifest records it (its
``"intensity"`` block, written by :func:`model.weights.manifest.save_networks`) and loading refuses weights
trained with another normalisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError

LOW_PERCENTILE = 0.5
HIGH_PERCENTILE = 99.5
INPUT_CEILING = 1.0  # network units: inputs (and the percentile map) clipped to [-1, 1]
OUTPUT_CEILING = 1.25  # network units: above the measured 3 T maxima (1.19-1.22), a guard, not a clip of real signal


@dataclass(frozen=True)
class IntensityMap:
    """The affine map ``[low, high] -> [-1, 1]`` of one contrast."""

    low: float
    high: float

    def to_network(self, volume: np.ndarray, ceiling: float = INPUT_CEILING) -> np.ndarray:
        """Map ``[low, high]`` to [-1, 1] (float32), clipping to ``[-1, ceiling]`` (inputs: 1; targets: OUTPUT_CEILING)."""
        scaled = (volume.astype(np.float32) - self.low) / (self.high - self.low) * 2.0 - 1.0
        return np.clip(scaled, -1.0, ceiling).astype(np.float32)

    def spread_from_network(self, spread: np.ndarray) -> np.ndarray:
        """A standard deviation in network units on the input scale (the map is linear: only its slope acts)."""
        return (spread.astype(np.float32) * ((self.high - self.low) / 2.0)).astype(np.float32)

    def from_network(self, volume: np.ndarray) -> np.ndarray:
        """Map the network's output back to the input scale (float32; clipped to ``[-1, OUTPUT_CEILING]`` first)."""
        clipped = np.clip(volume.astype(np.float32), -1.0, OUTPUT_CEILING)
        return ((clipped + 1.0) / 2.0 * (self.high - self.low) + self.low).astype(np.float32)


def fit_intensity_map(
    volume: np.ndarray,
    name: str = "volume",
    low_percentile: float = LOW_PERCENTILE,
    high_percentile: float = HIGH_PERCENTILE,
) -> IntensityMap:
    """Fit the robust map of one contrast; refuses volumes with no usable intensity range."""
    low, high = np.percentile(volume, [low_percentile, high_percentile])
    if high <= low:  # a mostly constant volume: fall back to the full range
        low, high = float(volume.min()), float(volume.max())
    if high <= low:
        raise InputError(f"{name}: the volume is constant ({low:g} everywhere); expected an MR image")
    return IntensityMap(float(low), float(high))


def normalise_contrasts(arrays: Sequence[np.ndarray], names: Sequence[str],
                        ceiling: float = INPUT_CEILING) -> tuple[np.ndarray, list[IntensityMap]]:
    """Fit one map per contrast and stack the mapped volumes as channels: (C, X, Y, Z) in [-1, ``ceiling``]."""
    maps = [fit_intensity_map(array, name) for array, name in zip(arrays, names)]
    return np.stack([m.to_network(array, ceiling) for m, array in zip(maps, arrays)]), maps


def denormalise_contrasts(volume: np.ndarray, maps: Sequence[IntensityMap]) -> np.ndarray:
    """Inverse of :func:`normalise_contrasts`: each channel back to its contrast's intensity scale."""
    return np.stack([m.from_network(channel) for m, channel in zip(maps, volume)])


def normalisation_record() -> dict[str, Any]:
    """The intensity normalisation this code implements, as the weights manifest records it (``"intensity"``).

    ``method``: each contrast's own robust percentile map; ``input_percentiles``: the percentiles of each
    contrast that :func:`normalise_contrasts` maps to -1 and 1; ``input_clip``: the range inputs are clipped
    to; ``target_ceiling``: the ceiling the high-field training targets are clipped to
    (:data:`OUTPUT_CEILING`); ``output_clip``: the range network outputs are clipped to by
    :func:`denormalise_contrasts`. Weights trained under another record see intensities differently.
    """
    return {
        "method": "percentile",  # each contrast's own percentiles map affinely to [-1, 1]
        "input_percentiles": [LOW_PERCENTILE, HIGH_PERCENTILE],
        "input_clip": [-1.0, INPUT_CEILING],
        "target_ceiling": OUTPUT_CEILING,
        "output_clip": [-1.0, OUTPUT_CEILING],
    }
