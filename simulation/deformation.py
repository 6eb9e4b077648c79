"""Per-subject geometry: a small random affine and a smooth random warp of the template."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from simulation.geometry import Grid, to_array, to_image
from simulation.parameters import DEFORMATION, Deformation


def rotation_matrix(angles_deg: np.ndarray) -> np.ndarray:
    """The 3x3 rotation about x, then y, then z by the given angles (degrees)."""
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def rigid_transform(grid: Grid, rng: np.random.Generator, rotation_sd_deg: float,
                    translation_sd_mm: float) -> sitk.Transform:
    """A random rigid transform about the grid centre (rotation and translation per axis ~ N(0, sd))."""
    transform = sitk.AffineTransform(3)
    transform.SetCenter(grid.centre())
    transform.SetMatrix(rotation_matrix(rng.normal(0.0, rotation_sd_deg, 3)).ravel().tolist())
    transform.SetTranslation(rng.normal(0.0, translation_sd_mm, 3).tolist())
    return transform


def _affine(grid: Grid, rng: np.random.Generator, params: Deformation) -> sitk.AffineTransform:
    """A random affine about the grid centre: rotation, anisotropic scale and translation."""
    transform = sitk.AffineTransform(3)
    transform.SetCenter(grid.centre())
    scale = np.diag(1.0 + rng.normal(0.0, params.scale_sd, 3))
    transform.SetMatrix((rotation_matrix(rng.normal(0.0, params.rotation_sd_deg, 3)) @ scale).ravel().tolist())
    transform.SetTranslation(rng.normal(0.0, params.translation_sd_mm, 3).tolist())
    return transform


def smooth_warp(grid: Grid, rng: np.random.Generator, control_spacing_mm: float, rms_mm: float,
                field_spacing_mm: float = 4.0) -> sitk.DisplacementFieldTransform:
    """A smooth random displacement field over ``grid``: random cubic B-spline coefficients on control
    points ``control_spacing_mm`` apart, sampled every ``field_spacing_mm`` and scaled to RMS ``rms_mm``."""
    extent = [n * s for n, s in zip(grid.size, grid.spacing)]
    mesh = [max(1, int(np.ceil(e / control_spacing_mm))) for e in extent]
    bspline = sitk.BSplineTransformInitializer(grid.reference(), mesh, 3)
    bspline.SetParameters(rng.standard_normal(len(bspline.GetParameters())).tolist())
    coarse = grid.resized((field_spacing_mm,) * 3)
    field = sitk.TransformToDisplacementField(bspline, sitk.sitkVectorFloat64, coarse.size, coarse.origin,
                                              coarse.spacing, coarse.direction)
    values = to_array(field)
    values *= rms_mm / np.sqrt(np.mean(np.sum(values**2, axis=-1)))
    return sitk.DisplacementFieldTransform(to_image(values, coarse))


def random_deformation(grid: Grid, rng: np.random.Generator, params: Deformation = DEFORMATION) -> sitk.Transform:
    """The subject's transform (subject grid point -> template point): an affine after a smooth warp."""
    affine = _affine(grid, rng, params)
    warp = smooth_warp(grid, rng, params.control_spacing_mm, params.warp_rms_mm, params.field_spacing_mm)
    return sitk.CompositeTransform([affine, warp])


def warp_stack(stack: np.ndarray, grid: Grid, transform: sitk.Transform) -> np.ndarray:
    """Resample an (x, y, z, c) stack through ``transform`` with linear interpolation (0 outside)."""
    image = to_image(stack, grid)
    warped = sitk.Resample(image, grid.reference(), transform, sitk.sitkLinear, 0.0, sitk.sitkVectorFloat32)
    return to_array(warped)
