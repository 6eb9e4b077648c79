"""The foreign scanners: images from tissue k-space, 64 mT k-space truncation, coils, motion, Rician noise.

Every step here is written for this package (scipy FFTs and interpolation; nothing of the training
simulator's acquisition code): per-tissue k-space weighting along the phase-encode axis (echo and readout
trains), a centre-bright dielectric field at 3 T, at 64 mT a small rigid head motion per contrast, a 3D
k-space cut to the acquired voxel with a Tukey roll-off (Gibbs ringing), a receive-coil array, Rician noise
at the acquired voxel, and Keys cubic interpolation back onto the 1 mm grid.
"""

from __future__ import annotations

import numpy as np
from scipy import fft, ndimage

from simulation.foreign.parameters import COILS, DIELECTRIC_AMPLITUDE, DIELECTRIC_WIDTH_MM, K_SPACE_PADDING_MM, CoilArray

PHASE_AXIS = 1  # y (anterior-posterior): the phase-encode axis of the axial acquisitions
HEAD_LEVEL = 0.05  # voxels above this share of the mean brain signal form the head (bias support)


def kappa(n: int, spacing: float, voxel: float) -> np.ndarray:
    """|k| / k_max of the rfft frequencies of an axis of ``n`` voxels of ``spacing`` mm, for an acquisition of
    ``voxel`` mm (k_max = 1 / 2 voxel), clipped to 1 (lines beyond the acquired k-space are cut later)."""
    return np.minimum(np.arange(n // 2 + 1) * 2.0 * voxel / (n * spacing), 1.0)


def phase_encode_spectra(fractions: list[np.ndarray]) -> list[np.ndarray]:
    """Each tissue's fractions Fourier-transformed along the phase-encode axis (complex64)."""
    return [fft.rfft(f, axis=PHASE_AXIS) for f in fractions]


def weighted_image(spectra: list[np.ndarray], profiles: list[np.ndarray], n: int) -> np.ndarray:
    """The signed image sum_t F^-1[ S_t(k_y) F[f_t] ]: each tissue's k-space lines weighted by its signal
    profile (:mod:`simulation.foreign.sequences`), as the lines are acquired at different points of the train."""
    total = np.zeros_like(spectra[0])
    for spectrum, profile in zip(spectra, profiles):
        total += spectrum * profile.astype(np.float32)[None, :, None]
    return fft.irfft(total, n=n, axis=PHASE_AXIS).astype(np.float32)


def rician(signal: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of a signed real signal plus complex white Gaussian noise of SD ``sigma`` per channel:
    Rician-distributed (Gudbjartsson and Patz 1995, MRM 34:910)."""
    real = signal + rng.normal(0.0, sigma, signal.shape).astype(np.float32)
    imaginary = rng.normal(0.0, sigma, signal.shape).astype(np.float32)
    return np.hypot(real, imaginary)


def dielectric_field(shape: tuple[int, ...], spacing: np.ndarray, centre_mm: np.ndarray, rng: np.random.Generator,
                     support: np.ndarray) -> np.ndarray:
    """3 T centre brightening 1 + a exp(-r^2 / 2 w^2) about the brain's centre, mean 1 over ``support``.

    The standing-wave (dielectric) B1 pattern of the head at 128 MHz, bright in the middle (Collins et al.
    2005, MRM 54:1327, simulated B1 in the head at 3 T); a Gaussian dome is our simplification.
    """
    amplitude = rng.uniform(*DIELECTRIC_AMPLITUDE)
    squared = sum(((np.arange(n) * s - c) ** 2).reshape([-1 if a == i else 1 for a in range(3)])
                  for i, (n, s, c) in enumerate(zip(shape, spacing, centre_mm)))
    field = (1.0 + amplitude * np.exp(-0.5 * squared / DIELECTRIC_WIDTH_MM**2)).astype(np.float32)
    return field / field[support].mean()


def loop_sensitivity(distance_mm: np.ndarray, radius_mm: float) -> np.ndarray:
    """A circular receive loop's sensitivity at ``distance_mm`` from its centre, R^3 / (R^2 + d^2)^(3/2):
    the on-axis field of a current loop (Biot-Savart; by reciprocity its receive sensitivity), used at every
    direction (our simplification of the off-axis pattern)."""
    return radius_mm**3 / (radius_mm**2 + distance_mm**2) ** 1.5


def coil_field(axes_mm: list[np.ndarray], centre_mm: np.ndarray, half_extent_mm: np.ndarray, support: np.ndarray,
               rng: np.random.Generator, coils: CoilArray = COILS) -> np.ndarray:
    """The combined receive field of a loop array on a helmet around the head, as a multiplicative bias.

    Loops sit on the ellipsoid of semi-axes ``half_extent_mm`` + standoff about ``centre_mm`` (three quarters
    on a ring just above the brain's centre, the rest higher up), positions jittered; the root-sum-of-squares
    of their sensitivities (Roemer et al. 1990, MRM 16:192) is taken in logs, centred and scaled to an SD
    uniform in ``coils.strength`` over ``support``."""
    ring = int(round(0.75 * coils.loops))
    azimuths = np.concatenate([np.linspace(0, 2 * np.pi, ring, endpoint=False),
                               np.linspace(0, 2 * np.pi, coils.loops - ring, endpoint=False)]) + rng.uniform(0, 2 * np.pi)
    elevations = np.deg2rad(np.concatenate([np.full(ring, 10.0), np.full(coils.loops - ring, 55.0)]))
    semi = half_extent_mm + coils.standoff_mm
    total = np.zeros(support.shape, dtype=np.float32)
    for azimuth, elevation in zip(azimuths, elevations):
        unit = np.array([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)])
        position = centre_mm + semi * unit + rng.normal(0.0, coils.position_jitter_mm, 3)
        squared = sum(((axis - p) ** 2).reshape([-1 if a == i else 1 for a in range(3)])
                      for i, (axis, p) in enumerate(zip(axes_mm, position)))
        total += loop_sensitivity(np.sqrt(squared), coils.loop_radius_mm).astype(np.float32) ** 2
    log_field = 0.5 * np.log(total)
    inside = log_field[support] if support.any() else log_field.ravel()
    log_field -= inside.mean()
    spread = inside.std()
    return np.exp(log_field * (rng.uniform(*coils.strength) / spread if spread > 0 else 0.0)).astype(np.float32)


def rigid_motion(image: np.ndarray, spacing: np.ndarray, rng: np.random.Generator, shift_mm: float,
                 rotation_deg: float) -> np.ndarray:
    """``image`` after a small rigid head motion about the grid's centre (rotation about z, then y, then x,
    angles and translations ~ N(0, sd) per axis), trilinear: the head moved between two contrasts and
    co-registration to the 3 T scan did not quite undo it."""
    angles = np.deg2rad(rng.normal(0.0, rotation_deg, 3))
    shift = rng.normal(0.0, shift_mm, 3) / spacing
    rotation = np.eye(3)
    for axis, angle in enumerate(angles):
        plane = [a for a in range(3) if a != axis]
        turn = np.eye(3)
        turn[np.ix_(plane, plane)] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
        rotation = turn @ rotation
    matrix = np.diag(1.0 / spacing) @ rotation @ np.diag(spacing)  # the rotation in index units
    centre = (np.asarray(image.shape) - 1) / 2.0
    return ndimage.affine_transform(image, matrix, offset=centre - matrix @ centre + shift, order=1, mode="constant",
                                    cval=0.0, output=np.float32)


def tukey(kappa_values: np.ndarray, roll_off: float) -> np.ndarray:
    """Tukey window over |k| / k_max: 1 up to 1 - roll_off, a cosine roll-off to 0 at the edge (Harris 1978,
    Proc IEEE 66:51); scanners apply such raw-data filters to temper Gibbs ringing."""
    if roll_off <= 0:
        return np.ones_like(kappa_values)
    x = np.clip((kappa_values - (1.0 - roll_off)) / roll_off, 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * x))


def truncate_k_space(image: np.ndarray, spacing: np.ndarray, voxel_mm: tuple[float, float, float],
                     roll_off: float) -> tuple[np.ndarray, list[np.ndarray]]:
    """The image as acquired with ``voxel_mm``: zero-padded, Fourier-transformed, cut to the acquired k-space
    (each axis's frequencies up to 1 / 2 voxel; Gibbs ringing at edges), rolled off, transformed back on the
    coarse grid. Returns that grid's image and, per axis, each fine voxel's position in coarse index units."""
    pad = [int(np.ceil(K_SPACE_PADDING_MM / s)) for s in spacing]
    padded = np.pad(image, [(p, p) for p in pad])
    full = padded.shape
    coarse = [min(n, max(2, int(round(n * s / v)))) for n, s, v in zip(full, spacing, voxel_mm)]
    spectrum = fft.rfftn(padded)
    keep = [np.fft.fftfreq(m, 1.0 / m).astype(int) % n for m, n in zip(coarse[:2], full[:2])]
    keep.append(np.arange(coarse[2] // 2 + 1))
    cut = spectrum[np.ix_(*keep)]
    for axis, (indices, m, n) in enumerate(zip(keep, coarse, full)):
        frequency = np.abs(np.where(indices > n // 2, indices - n, indices)) / (m / 2.0)
        cut *= tukey(frequency, roll_off).astype(np.float32).reshape([-1 if a == axis else 1 for a in range(3)])
    acquired = fft.irfftn(cut, s=coarse).astype(np.float32) * np.float32(np.prod(coarse) / np.prod(full))
    positions = [(np.arange(n_fine) + p) * m / n for n_fine, p, m, n in zip(image.shape, pad, coarse, full)]
    return acquired, positions


def keys_weights(positions: np.ndarray, size: int, a: float = -0.5) -> np.ndarray:
    """Dense (len(positions), size) cubic-convolution interpolation matrix (Keys 1981, IEEE TASSP 29:1153,
    a = -0.5), samples beyond the ends clamped to the edge."""
    base = np.floor(positions).astype(int)
    weights = np.zeros((positions.size, size), dtype=np.float32)
    for offset in range(-1, 3):
        x = np.abs(positions - (base + offset))
        w = np.where(x <= 1, (a + 2) * x**3 - (a + 3) * x**2 + 1,
                     np.where(x < 2, a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a, 0.0))
        np.add.at(weights, (np.arange(positions.size), np.clip(base + offset, 0, size - 1)), w)
    return weights


def cubic_resample(coarse: np.ndarray, positions: list[np.ndarray]) -> np.ndarray:
    """The coarse image at the fine positions, separable Keys cubic interpolation (one axis at a time)."""
    out = coarse
    for axis, where in enumerate(positions):
        out = np.moveaxis(np.tensordot(keys_weights(where, out.shape[axis]), out, axes=(1, axis)), 0, axis)
    return np.ascontiguousarray(out, dtype=np.float32)


def head_support(image: np.ndarray, brain_mean: float) -> np.ndarray:
    """Voxels bright enough to be head (the support over which bias fields are normalised)."""
    return np.abs(image) > HEAD_LEVEL * brain_mean
