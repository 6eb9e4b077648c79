"""The foreign subject's anatomy: its own deformation of the ICBM template, head shells and lesions.

Only the template's maps (``simulation.anatomy.load_template``: GM, WM, brain, the closed outline's
distance map and the neck's skull weight) are shared with the training simulator: they are the input data.
The deformation (an affine with shear and a sum of Gaussian displacement bumps, evaluated with scipy),
the head shells (skull with diploe, a two-layer scalp, tanh partial-volume edges) and the lesions
(confluent periventricular patches from a thresholded random field) are this package's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from simulation.anatomy import load_template
from simulation.foreign.parameters import ANATOMY, LESIONS, ForeignAnatomy, ForeignLesions
from simulation.geometry import Grid

TISSUES = ("csf", "gm", "wm", "lesion", "fat", "muscle")
FAR_MM = 1000.0  # distance given to points mapped outside the template (air)


@dataclass(frozen=True)
class TemplateMaps:
    """The template's maps as float32 (x, y, z), its grid, the neck's skull weight per z index, the grey
    and white matter's smoothed periventricular band (lesion territory) and the brain's centre (mm, index frame)."""

    grid: Grid
    gm: np.ndarray
    wm: np.ndarray
    brain: np.ndarray
    distance: np.ndarray
    skull_weight: np.ndarray
    band: np.ndarray
    centre_mm: np.ndarray


@lru_cache(maxsize=2)
def template_maps(shape_scale: float) -> TemplateMaps:
    """The template at spacing 1/shape_scale mm with the lesion band (cached per process)."""
    template = load_template(shape_scale)
    spacing = np.asarray(template.grid.spacing)
    gm, wm = template.gm.astype(np.float32), template.wm.astype(np.float32)
    residual = 1.0 - gm - wm
    depth = ndimage.distance_transform_edt(template.brain, sampling=spacing)
    ventricles = template.brain & (residual > 0.6) & (depth > LESIONS.band_mm)
    near = ndimage.distance_transform_edt(~ventricles, sampling=spacing) <= LESIONS.band_mm
    band = ndimage.gaussian_filter((near & (wm > 0.5)).astype(np.float32), 1.0 / spacing)
    centre = np.array(ndimage.center_of_mass(template.brain)) * spacing
    return TemplateMaps(template.grid, gm, wm, template.brain.astype(np.float32), template.distance.astype(np.float32),
                        np.asarray(template.skull_weight, dtype=np.float32), band, centre)


def random_affine(rng: np.random.Generator, params: ForeignAnatomy = ANATOMY) -> np.ndarray:
    """A 3x4 affine (mm): rotation (Euler angles ~ N(0, sd)) @ shear (off-diagonals ~ N(0, sd)) @ scale
    (log-normal per axis), and a translation ~ N(0, sd) per axis; applied about the brain's centre."""
    ax, ay, az = np.deg2rad(rng.normal(0.0, params.rotation_deg, 3))
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rotation = (np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]]) @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
                @ np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]]))
    shear = np.eye(3)
    shear[np.triu_indices(3, 1)] = rng.normal(0.0, params.shear, 3)
    scale = np.diag(np.exp(rng.normal(0.0, params.log_scale, 3)))
    return np.concatenate([rotation @ shear @ scale, rng.normal(0.0, params.translation_mm, (3, 1))], axis=1)


def gaussian_bumps(rng: np.random.Generator, extent_mm: np.ndarray, params: ForeignAnatomy = ANATOMY) -> list:
    """Displacement bumps (centre mm, width mm, amplitude vector mm): centres uniform in the middle 60 % of
    the field of view, widths and amplitudes uniform in their ranges (amplitude at most 0.3 x width, so the
    map stays invertible: the largest gradient of one bump is about 0.6 amplitude / width)."""
    bumps = []
    for _ in range(params.bumps + int(rng.poisson(params.extra_bumps))):
        centre = extent_mm * rng.uniform(0.2, 0.8, 3)
        width = rng.uniform(*params.bump_width_mm)
        direction = rng.standard_normal(3)
        amplitude = min(rng.uniform(*params.bump_amplitude_mm), 0.3 * width)
        bumps.append((centre, width, amplitude * direction / np.linalg.norm(direction)))
    return bumps


def pull_back(grid: Grid, affine: np.ndarray, bumps: list, centre_mm: np.ndarray) -> np.ndarray:
    """Template index coordinates (3, x, y, z) of each subject voxel: y = c + A (x - c) + t + sum_k a_k g_k(x),
    g_k(x) = exp(-|x - c_k|^2 / 2 w_k^2), in the array's mm frame (index x spacing)."""
    spacing = np.asarray(grid.spacing)
    axes = [np.arange(n, dtype=np.float64) * s - c for n, s, c in zip(grid.size, spacing, centre_mm)]
    coords = np.empty((3,) + tuple(grid.size), dtype=np.float32)
    for row in range(3):
        coords[row] = (affine[row, 0] * axes[0][:, None, None] + affine[row, 1] * axes[1][None, :, None]
                       + affine[row, 2] * axes[2][None, None, :] + affine[row, 3] + centre_mm[row])
    for centre, width, amplitude in bumps:
        box, profiles = [], []
        for n, s, c in zip(grid.size, spacing, centre):
            low, high = max(int((c - 3 * width) / s), 0), min(int(np.ceil((c + 3 * width) / s)) + 1, n)
            box.append(slice(low, high))
            profiles.append(np.exp(-0.5 * ((np.arange(low, high) * s - c) / width) ** 2).astype(np.float32))
        if any(b.start >= b.stop for b in box):
            continue
        bump = profiles[0][:, None, None] * profiles[1][None, :, None] * profiles[2][None, None, :]
        for row in range(3):
            coords[(row, *box)] += np.float32(amplitude[row]) * bump
    coords /= spacing.astype(np.float32)[:, None, None, None]
    return coords


def warp(volume: np.ndarray, coords: np.ndarray, outside: float = 0.0) -> np.ndarray:
    """``volume`` sampled at ``coords`` (trilinear; ``outside`` beyond the template)."""
    return ndimage.map_coordinates(volume, coords, order=1, mode="constant", cval=outside, output=np.float32)


def lesion_occupancy(maps: TemplateMaps, rng: np.random.Generator, params: ForeignLesions = LESIONS) -> np.ndarray:
    """Confluent periventricular lesions in template space, occupancy in [0, 1].

    A Gaussian random field (white noise smoothed by ``smoothness_mm``) is thresholded inside the
    periventricular white-matter band so that the voxels above it hold a volume log-uniform in
    ``volume_ml``; a soft edge of ``edge`` standard deviations and the band's own soft border shape it
    (caps and bands around the ventricles, as in small-vessel disease and MS; our own shape model).
    """
    spacing = np.asarray(maps.grid.spacing)
    field = ndimage.gaussian_filter(rng.standard_normal(maps.band.shape, dtype=np.float32),
                                    params.smoothness_mm / spacing)
    inside = maps.band > 0.5
    values = field[inside]
    if values.size == 0:
        return np.zeros_like(field)
    field /= values.std()
    volume_voxels = np.exp(rng.uniform(*np.log(params.volume_ml))) * 1000.0 / np.prod(spacing)
    share = min(volume_voxels / values.size, 0.5)
    threshold = np.quantile(field[inside], 1.0 - share)
    return np.clip((field - threshold) / params.edge + 0.5, 0.0, 1.0) * maps.band


def soft_step(distance: np.ndarray, boundary: float, edge: float) -> np.ndarray:
    """The share of a voxel at ``distance`` (mm) from the outline that lies inside ``boundary``:
    0.5 (1 - tanh((d - b) / edge)), a smooth partial-volume ramp (our own form)."""
    return 0.5 * (1.0 - np.tanh((distance - boundary) / edge))


def head_fractions(gm: np.ndarray, wm: np.ndarray, lesion: np.ndarray, distance: np.ndarray, skull_weight: np.ndarray,
                   rng: np.random.Generator, params: ForeignAnatomy = ANATOMY) -> dict[str, np.ndarray]:
    """Tissue fractions (:data:`TISSUES`) of the warped head: brain tissue, then shells outward from the
    outline: CSF, skull (no signal; fatty diploe in its middle third), scalp fat, skin and galea
    (muscle-like). Below the brain, where the skull weight fades, the outline holds neck muscle."""
    skull_factor, scalp_factor = rng.uniform(*params.thickness_jitter, 2)
    csf_edge = params.csf_mm
    skull_edge = csf_edge + params.skull_mm * skull_factor
    scalp_edge = skull_edge + params.scalp_mm * scalp_factor
    third = (skull_edge - csf_edge) / 3.0
    step = lambda boundary: soft_step(distance, boundary, params.edge_mm)  # noqa: E731
    inner = step(csf_edge)
    skull = step(skull_edge) - inner
    diploe = step(skull_edge - third) - step(csf_edge + third)
    fat_layer = step(scalp_edge - params.skin_mm * scalp_factor) - step(skull_edge)
    skin = step(scalp_edge) - step(scalp_edge - params.skin_mm * scalp_factor)
    residual = np.clip(1.0 - gm - wm, 0.0, 1.0)
    return {
        "csf": residual * skull_weight * inner,
        "gm": gm,
        "wm": wm * (1.0 - lesion),
        "lesion": wm * lesion,
        "fat": residual * (fat_layer + skull_weight * params.marrow * diploe),
        "muscle": residual * (skin + (1.0 - skull_weight) * (inner + skull)),
    }


def subject_anatomy(shape_scale: float, lesions: bool, rngs: dict[str, np.random.Generator]) -> tuple:
    """The subject's grid, tissue fractions (:data:`TISSUES` order, float32 (x, y, z) each) and brain mask.

    ``rngs``: the "deformation", "head" and "lesions" random streams.
    """
    maps = template_maps(shape_scale)
    grid = maps.grid
    extent = np.asarray(grid.size) * np.asarray(grid.spacing)
    affine = random_affine(rngs["deformation"])
    coords = pull_back(grid, affine, gaussian_bumps(rngs["deformation"], extent), maps.centre_mm)
    gm, wm = warp(maps.gm, coords), warp(maps.wm, coords)
    brain = warp(maps.brain, coords) > 0.5
    distance = ndimage.map_coordinates(maps.distance, coords, order=1, mode="nearest", output=np.float32)
    distance[(coords < 0).any(axis=0) | (coords > (np.asarray(grid.size) - 1)[:, None, None, None]).any(axis=0)] = FAR_MM
    skull_weight = np.interp(coords[2], np.arange(grid.size[2]), maps.skull_weight).astype(np.float32)
    lesion = warp(lesion_occupancy(maps, rngs["lesions"]), coords) if lesions else np.zeros_like(gm)
    del coords
    fractions = head_fractions(gm, wm, lesion, distance, skull_weight, rngs["head"])
    return grid, {name: fractions[name].astype(np.float32) for name in TISSUES}, brain
