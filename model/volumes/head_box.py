"""The head's bounding box in a normalised volume: the part of a case the networks are run on when
``head_crop`` is on (docs/speed.md, "Cropping to the head").

A 1 mm head volume holds air around the head; every window over the air costs as much as one over the
brain. The box is found on the normalised low-field input itself (no reference, no mask): each contrast
smoothed (Gaussian, :data:`SMOOTHING_SIGMA` voxels, which averages the 64 mT background noise away), their
voxel-wise maximum thresholded at Otsu's level, the largest connected component kept (a bright artefact
apart from the head does not widen the box), its bounding box grown by :data:`HEAD_MARGIN` voxels of air on
each side. The networks then see the head as they see it in the whole volume, with less air; outside the box
the output is :data:`AIR`, the value the output clip gives air.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu

HEAD_MARGIN = 4  # voxels of air kept on each side of the head's box
SMOOTHING_SIGMA = 2.0  # voxels: the 64 mT background noise averaged away before thresholding
AIR = -1.0  # network units: the normalised value of air (the 0.5th percentile), the output's lower clip
Box = tuple[tuple[int, int], ...]  # (start, stop) per spatial axis


def head_mask(volume: np.ndarray) -> np.ndarray | None:
    """The head's voxels in ``volume`` (C, X, Y, Z) normalised to [-1, 1]: the largest connected component of
    the smoothed contrasts' maximum above Otsu's threshold; None where no threshold separates anything (a
    constant volume)."""
    signal = np.max([ndimage.gaussian_filter(np.asarray(c, dtype=np.float32), SMOOTHING_SIGMA) for c in volume], axis=0)
    if not np.ptp(signal) > 0:
        return None
    mask = signal > threshold_otsu(signal[::2, ::2, ::2] if signal.size > 2**16 else signal)
    labels, count = ndimage.label(mask)
    if count == 0:
        return None
    sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, count + 1))
    return labels == 1 + int(np.argmax(sizes))


def head_box(volume: np.ndarray, minimum: Sequence[int], margin: int = HEAD_MARGIN) -> Box | None:
    """The box around the head in ``volume`` (C, X, Y, Z), ``margin`` voxels wider on each side and at least
    ``minimum`` (the window) along each axis where the volume allows; None when it would be the whole volume
    (nothing to save) or no head is found."""
    shape = volume.shape[1:]
    mask = head_mask(volume)
    if mask is None:
        return None
    voxels = np.argwhere(mask)
    box = []
    for start, stop, size, least in zip(voxels.min(0) - margin, voxels.max(0) + 1 + margin, shape, minimum):
        start, stop = max(int(start), 0), min(int(stop), size)
        short = min(least, size) - (stop - start)
        if short > 0:  # widen to the window, centred, inside the volume
            start = max(0, min(start - short // 2, size - min(least, size)))
            stop = start + min(least, size)
        box.append((start, stop))
    return None if all((a, b) == (0, s) for (a, b), s in zip(box, shape)) else tuple(box)


def crop(volume: np.ndarray, box: Box) -> np.ndarray:
    """``volume`` (C, X, Y, Z) inside ``box``, contiguous."""
    return np.ascontiguousarray(volume[(slice(None), *(slice(a, b) for a, b in box))])


def paste(inner: np.ndarray, box: Box, shape: Sequence[int], fill: float) -> np.ndarray:
    """``inner`` (C, *box) put back into a volume of spatial ``shape`` filled with ``fill`` (the inverse of
    :func:`crop` inside the box)."""
    whole = np.full((inner.shape[0], *shape), fill, dtype=inner.dtype)
    whole[(slice(None), *(slice(a, b) for a, b in box))] = inner
    return whole
