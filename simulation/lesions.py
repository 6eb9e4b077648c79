"""Optional white-matter lesions: soft-edged ellipsoids in deep white matter."""

from __future__ import annotations

import numpy as np

from simulation.geometry import Grid
from simulation.parameters import LESIONS, Lesions


def _ellipsoid(grid: Grid, centre: np.ndarray, radii: np.ndarray,
               shape: tuple[int, ...]) -> tuple[tuple[slice, ...], np.ndarray]:
    """A soft ellipsoid (1 inside, a 1 mm ramp at the edge) in the box around ``centre`` (voxel index)."""
    spacing = np.asarray(grid.spacing)
    half = np.ceil((radii + 1.0) / spacing).astype(int)
    low = np.maximum(centre - half, 0)
    high = np.minimum(centre + half + 1, shape)
    axes = [(np.arange(lo, hi) - c) * s / r for lo, hi, c, s, r in zip(low, high, centre, spacing, radii)]
    rho = np.sqrt(axes[0][:, None, None] ** 2 + axes[1][None, :, None] ** 2 + axes[2][None, None, :] ** 2)
    profile = np.clip((1.0 - rho) * radii.mean() + 0.5, 0.0, 1.0).astype(np.float32)
    return tuple(slice(lo, hi) for lo, hi in zip(low, high)), profile


def lesion_map(white_matter: np.ndarray, grid: Grid, rng: np.random.Generator, params: Lesions = LESIONS) -> np.ndarray:
    """A lesion occupancy map in [0, 1]: 1 + Poisson(mean_count) ellipsoids centred in deep white matter."""
    occupancy = np.zeros(white_matter.shape, dtype=np.float32)
    candidates = np.flatnonzero(white_matter >= params.min_white_matter)
    if candidates.size == 0:
        return occupancy
    count = 1 + rng.poisson(params.mean_count)
    for flat in rng.choice(candidates, size=count):
        centre = np.array(np.unravel_index(flat, white_matter.shape))
        radii = rng.uniform(*params.radius_mm) * rng.uniform(0.6, 1.4, 3)
        box, profile = _ellipsoid(grid, centre, radii, white_matter.shape)
        np.maximum(occupancy[box], profile, out=occupancy[box])
    return occupancy
