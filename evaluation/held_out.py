"""Held-out simulated subjects for the ablation table and the benchmark, and centred crops of them.

Simulated training sets use small seeds (``python -m simulation --seed 0``: subjects 0, 1, ...);
held-out evaluation starts at :data:`HELD_OUT_SEED`, so the two never share a subject. A crop is
taken *after* the whole head has been normalised, so that a cropped run is a part of a full-head run
(the same intensity maps), only cheaper; windows at the crop's faces see less context.
"""

from __future__ import annotations

from collections.abc import Sequence

HELD_OUT_SEED = 90_000


def centred_crop(shape: Sequence[int], size: Sequence[int] | None) -> tuple[slice, ...]:
    """Slices of a centred crop of ``size`` (each axis at most the volume's) of a volume of ``shape``."""
    if size is None:
        return tuple(slice(None) for _ in shape)
    if len(size) != len(shape) or any(c < 1 for c in size):
        raise ValueError(f"a crop needs {len(shape)} positive sizes, got {tuple(size)}")
    return tuple(slice((n - min(c, n)) // 2, (n - min(c, n)) // 2 + min(c, n)) for n, c in zip(shape, size))
