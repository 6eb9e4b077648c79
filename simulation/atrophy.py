"""Atrophy: grey and white matter next to CSF turned into CSF (wider sulci, larger ventricles)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from simulation.geometry import Grid

ATROPHY_REACH_MM = 2.0  # how far from existing CSF tissue is lost (Gaussian sigma of the CSF neighbourhood)


def apply_atrophy(fractions: np.ndarray, names: tuple[str, ...], amount: float, grid: Grid) -> np.ndarray:
    """Move up to ``amount`` of the grey and white matter next to CSF into CSF, in place; returns ``fractions``.

    The share lost at a voxel is ``amount`` times its CSF neighbourhood (the CSF fraction smoothed
    over :data:`ATROPHY_REACH_MM`, scaled so that a voxel half surrounded by CSF loses all of
    ``amount``): tissue recedes from the ventricles and sulci, the total of every voxel is kept.
    """
    if amount <= 0:
        return fractions
    csf, gm, wm = (names.index(n) for n in ("csf", "gm", "wm"))
    sigma = [ATROPHY_REACH_MM / s for s in grid.spacing]
    neighbourhood = ndimage.gaussian_filter(fractions[..., csf], sigma)
    loss = np.float32(amount) * np.clip(2.0 * neighbourhood, 0.0, 1.0).astype(np.float32)
    lost = (fractions[..., gm] + fractions[..., wm]) * loss
    fractions[..., gm] *= 1.0 - loss
    fractions[..., wm] *= 1.0 - loss
    fractions[..., csf] += lost
    return fractions
