"""Acquiring a noise-free volume: point spread, misregistration, bias field, Rician noise, regridding."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.special import eval_legendre

from simulation.deformation import rigid_transform, smooth_warp
from simulation.geometry import Grid, to_array, to_image
from simulation.parameters import Acquisition

HEAD_FRACTION = 0.05  # voxels brighter than this fraction of the mean brain signal are "head" (bias support)
INTERPOLATORS = {"linear": sitk.sitkLinear, "bspline": sitk.sitkBSpline}


def bias_field(grid: Grid, rng: np.random.Generator, strength: float, degree: int, support: np.ndarray) -> np.ndarray:
    """A smooth multiplicative field exp(p) on ``grid``, p a random Legendre polynomial of total degree
    ``degree`` over the grid, shifted to mean 0 and scaled to standard deviation ``strength`` over
    ``support`` (the head: the polynomial's wild corners lie in the air and do not count)."""
    coords = [c / max(abs(c).max(), 1e-6) for c in grid.axis_coordinates()]
    basis = [np.stack([eval_legendre(k, c) for k in range(degree + 1)]).astype(np.float32) for c in coords]
    coefficients = rng.standard_normal((degree + 1,) * 3)
    log_field = np.zeros(grid.size, dtype=np.float32)
    for i in range(degree + 1):
        for j in range(degree + 1 - i):
            along_z = np.tensordot(coefficients[i, j, : degree + 1 - i - j], basis[2][: degree + 1 - i - j], axes=1)
            plane = basis[0][i][:, None, None] * basis[1][j][None, :, None]
            log_field += plane * along_z[None, None, :].astype(np.float32)
    inside = log_field[support] if support.any() else log_field
    log_field -= inside.mean()
    spread = inside.std()
    if spread > 0:
        log_field *= strength / spread
    return np.exp(log_field)


def rician(clean: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """The magnitude of ``clean`` plus complex Gaussian noise of standard deviation ``sigma`` per channel."""
    real = clean + sigma * rng.standard_normal(clean.shape, dtype=np.float32)
    imaginary = sigma * rng.standard_normal(clean.shape, dtype=np.float32)
    return np.sqrt(real * real + imaginary * imaginary)


def point_spread_sigma(voxel_mm: tuple[float, float, float], grid: Grid) -> list[float]:
    """Gaussian sigma (in voxels of ``grid``) that widens the grid's own resolution to FWHM = ``voxel_mm``."""
    return [np.sqrt(max(v * v - s * s, 0.0)) / 2.355 / s for v, s in zip(voxel_mm, grid.spacing)]


def acquire_high_field(clean: np.ndarray, grid: Grid, brain: np.ndarray, acquisition: Acquisition,
                       rng: np.random.Generator) -> np.ndarray:
    """The 3 T scan on its own grid: point spread (none at 1 mm), mild bias field, Rician noise."""
    sigma_voxels = point_spread_sigma(acquisition.voxel_mm, grid)
    blurred = ndimage.gaussian_filter(clean, sigma_voxels) if max(sigma_voxels) > 0 else clean
    brain_mean = float(clean[brain].mean())
    head = clean > HEAD_FRACTION * brain_mean
    biased = blurred * bias_field(grid, rng, acquisition.bias_strength, acquisition.bias_degree, head)
    noise_sigma = brain_mean / acquisition.snr
    return rician(biased, noise_sigma, rng)


def acquire_low_field(clean: np.ndarray, grid: Grid, brain: np.ndarray, acquisition: Acquisition,
                      rng: np.random.Generator) -> np.ndarray:
    """The 64 mT scan, brought back onto ``grid``.

    The volume is blurred to the acquired resolution, sampled on the thick-slice grid through a
    small rigid misregistration and a smooth geometric distortion, given a bias field and Rician
    noise there, then resampled back onto the 1 mm grid (as the challenge did with its low-field
    scans).
    """
    point_spread = tuple(v * acquisition.psf_factor for v in acquisition.voxel_mm)
    blurred = ndimage.gaussian_filter(clean, point_spread_sigma(point_spread, grid))
    acquired_grid = grid.resized(acquisition.voxel_mm)
    misregistration = rigid_transform(grid, rng, acquisition.misregistration_deg, acquisition.misregistration_mm)
    if acquisition.distortion_rms_mm > 0:
        distortion = smooth_warp(grid, rng, acquisition.distortion_spacing_mm, acquisition.distortion_rms_mm)
        misregistration = sitk.CompositeTransform([misregistration, distortion])
    acquired = to_array(sitk.Resample(to_image(blurred, grid), acquired_grid.reference(), misregistration,
                                      sitk.sitkLinear, 0.0, sitk.sitkFloat32))
    brain_mean = float(clean[brain].mean())
    head = acquired > HEAD_FRACTION * brain_mean
    biased = acquired * bias_field(acquired_grid, rng, acquisition.bias_strength, acquisition.bias_degree, head)
    noise_sigma = brain_mean / acquisition.snr
    noisy = rician(biased, noise_sigma, rng)
    back = sitk.Resample(to_image(noisy, acquired_grid), grid.reference(), sitk.Transform(),
                         INTERPOLATORS[acquisition.interpolation], 0.0, sitk.sitkFloat32)
    return np.maximum(to_array(back), 0.0)
