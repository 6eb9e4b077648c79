"""The real anatomy: nilearn's ICBM152 2009 1 mm brain, plus a head model around it (docs/data-and-metric.md).

The template is read from the installed nilearn package (no download, nilearn is not even
imported). It is skull-stripped; the head model adds extra-axial CSF, skull, marrow, scalp fat,
skin and neck muscle as shells around a closed outline of the brain, so that simulated scans look
like real, unstripped heads.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from simulation.geometry import Grid, to_array
from simulation.parameters import HEAD, HeadModel

TEMPLATE_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
BRAIN_THRESHOLD = 0.2  # docs/data-and-metric.md: brain mask = T1 > 0.2 after scaling to [0, 1]
# Tissue stack channels before lesions: the order of ``Template.stack`` / ``head_tissues``.
STACK_CHANNELS = ("csf", "gm", "wm", "fat", "muscle", "brain")


class TemplateMissing(RuntimeError):
    """The nilearn template files are not installed."""


@dataclass(frozen=True)
class Template:
    """The template on its grid, arrays in (x, y, z) order.

    ``gm``/``wm`` are tissue probabilities, ``residual`` = 1 - GM - WM (what CSF or head tissue may
    fill), ``brain`` the brain mask, ``outline`` the closed brain (extended down into a neck),
    ``distance`` the distance in mm from the outline (0 inside), ``skull_weight`` per z index: 1
    where the skull is, fading to 0 (muscle instead of bone) below the brain.
    """

    grid: Grid
    gm: np.ndarray
    wm: np.ndarray
    residual: np.ndarray
    brain: np.ndarray
    outline: np.ndarray
    distance: np.ndarray
    skull_weight: np.ndarray


def template_directory() -> Path:
    """The folder of nilearn's bundled data files, found without importing nilearn."""
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise TemplateMissing("nilearn is not installed; it carries the ICBM152 template (pip install nilearn)")
    folder = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    missing = [name for name in TEMPLATE_FILES.values() if not (folder / name).is_file()]
    if missing:
        raise TemplateMissing(f"the ICBM152 files {missing} are not in {folder}")
    return folder


def _read_maps(shape_scale: float) -> tuple[Grid, dict[str, np.ndarray]]:
    """The three template maps scaled to [0, 1], resampled to spacing 1/shape_scale mm if needed."""
    folder = template_directory()
    images = {key: sitk.Cast(sitk.ReadImage(str(folder / name)), sitk.sitkFloat32) / 255.0
              for key, name in TEMPLATE_FILES.items()}
    grid = Grid.of(images["t1"])
    if shape_scale != 1.0:
        spacing = tuple(s / shape_scale for s in grid.spacing)
        target = grid.resized(spacing)
        # Anti-alias: widen the 1 mm point spread to the new voxel size before sampling.
        sigma = [np.sqrt(max(t * t - s * s, 0.0)) / 2.355 for t, s in zip(spacing, grid.spacing)]
        for key, image in images.items():
            smoothed = sitk.DiscreteGaussian(image, [v * v for v in sigma], 32, 0.01, True) if max(sigma) > 0 else image
            images[key] = sitk.Resample(smoothed, target.reference(), sitk.Transform(), sitk.sitkLinear, 0.0,
                                        sitk.sitkFloat32)
        grid = target
    return grid, {key: np.clip(to_array(image), 0.0, 1.0) for key, image in images.items()}


def _shrink_slice(mask: np.ndarray, factor: float) -> np.ndarray:
    """A 2D mask scaled by ``factor`` about its centroid."""
    centre = np.array(ndimage.center_of_mass(mask))
    matrix = np.full(2, 1.0 / factor)
    offset = centre - centre / factor
    return ndimage.affine_transform(mask.astype(np.float32), matrix, offset=offset, order=1) > 0.5


def _outline(brain: np.ndarray, grid: Grid, head: HeadModel) -> tuple[np.ndarray, np.ndarray]:
    """The closed brain outline extended into a tapering neck, and the skull weight per z index."""
    sigma = [head.outline_smoothing_mm / s for s in grid.spacing]
    outline = (ndimage.gaussian_filter(brain.astype(np.float32), sigma) > head.outline_threshold) | brain
    outline = ndimage.binary_fill_holes(outline)
    area = outline.sum(axis=(0, 1))
    z_ref = int(np.argmax(area >= 0.5 * area.max()))
    for z in range(z_ref):
        factor = 1.0 - head.neck_shrink * (z_ref - z) / max(z_ref, 1)
        outline[:, :, z] |= _shrink_slice(outline[:, :, z_ref], factor)
    heights = (np.arange(grid.size[2]) - z_ref) * grid.spacing[2]
    skull_weight = np.clip((heights + head.neck_fade_mm) / head.neck_fade_mm, 0.0, 1.0).astype(np.float32)
    return outline, skull_weight


@lru_cache(maxsize=3)
def load_template(shape_scale: float = 1.0) -> Template:
    """The template and its head outline at spacing 1/shape_scale mm (cached per process)."""
    grid, maps = _read_maps(shape_scale)
    gm, wm = maps["gm"], maps["wm"]
    brain = ndimage.binary_fill_holes(maps["t1"] > BRAIN_THRESHOLD)
    residual = np.clip(1.0 - gm - wm, 0.0, 1.0).astype(np.float32)
    outline, skull_weight = _outline(brain, grid, HEAD)
    distance = ndimage.distance_transform_edt(~outline, sampling=grid.spacing).astype(np.float32)
    for array in (gm, wm, residual, brain, outline, distance, skull_weight):
        array.setflags(write=False)
    return Template(grid, gm, wm, residual, brain, outline, distance, skull_weight)


def _within(distance: np.ndarray, boundary: float) -> np.ndarray:
    """Fraction of each voxel closer to the outline than ``boundary`` mm (a 1 mm partial-volume ramp)."""
    return np.clip(boundary - distance + 0.5, 0.0, 1.0)


def head_tissues(template: Template, rng: np.random.Generator, head: HeadModel = HEAD) -> np.ndarray:
    """The (x, y, z, 6) tissue stack of one subject before warping, channels :data:`STACK_CHANNELS`.

    Skull and scalp thicknesses are jittered per subject. Fractions sum to at most 1; the rest is
    bone or air, which give no signal.
    """
    skull_factor, scalp_factor = rng.uniform(*head.thickness_jitter, size=2)
    widths = [head.csf, head.inner_table * skull_factor, head.diploe * skull_factor,
              head.outer_table * skull_factor, head.fat * scalp_factor, head.skin * scalp_factor]
    bounds = np.concatenate([[0.0], np.cumsum(widths)])
    outside = template.distance > 0
    layers = []
    for inner, outer in zip(bounds[:-1], bounds[1:]):
        layers.append(np.where(outside, _within(template.distance, outer) - _within(template.distance, inner), 0.0))
    csf_layer, inner_table, diploe, outer_table, fat_layer, skin = layers
    skull = template.skull_weight[None, None, :]
    residual = template.residual
    inside = template.outline.astype(np.float32)
    stack = np.empty(template.grid.size + (len(STACK_CHANNELS),), dtype=np.float32)
    stack[..., 0] = residual * skull * (inside + csf_layer)
    stack[..., 1] = template.gm
    stack[..., 2] = template.wm
    stack[..., 3] = residual * (fat_layer + skull * head.diploe_fat * diploe)
    stack[..., 4] = residual * (skin + (1 - skull) * (inside + csf_layer + inner_table + diploe + outer_table))
    stack[..., 5] = template.brain
    return stack
