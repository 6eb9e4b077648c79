"""Randomised-contrast 64 mT inputs for bridge training pairs, in the manner of SynthSeg / SynthSR.

A physical simulator teaches the bridge one family of low-field contrasts; a network trained only on it
may lean on that family's particular tissue ordering. Here the low-field side of a training pair is
synthesised from the subject's tissue labels with an appearance drawn at random, so that contrast is a
nuisance the bridge must see through (Billot et al., SynthSeg, Med. Image Anal. 2023; Iglesias et al.,
SynthSR, Sci. Adv. 2023). The 3 T target is never touched.

Per contrast and per sample, independently (:data:`RANGES`):

1. **tissue intensities**: each label > 0 gets a mean drawn uniformly in [0, 1] and a Gaussian spread
   (sd uniform in [0, 0.1]); label 0 (air, bone: no signal) stays 0. The contrasts' means are drawn
   independently, so any tissue order occurs, inversions included. Labels are hard (the dominant
   tissue per voxel): partial volumes come only from the blur below.
2. **bias field**: ``exp`` of a random field, normal values (sd uniform in [0, 0.3]) on a 4 x 4 x 4 grid
   of control points over the whole volume, interpolated trilinearly (log-normal, smooth).
3. **gamma**: ``x ** gamma`` (intensities clamped at 0 first), gamma log-uniform in [0.5, 2].
4. **resolution**: a Gaussian blur with FWHM uniform in [1, 3] mm on two axes and [2, 6] mm (slice
   thickness) on the third, which is drawn at random; with probability 0.5 the thick axis is then
   sampled at the slice thickness and interpolated back (linear), as a thick-slice acquisition
   resampled to 1 mm.
5. **noise**: Gaussian or (probability 0.5) Rician, sd = the mean non-background signal / SNR, SNR
   log-uniform in [4, 40].
6. **normalisation**: the inference map (:func:`model.volumes.intensity.fit_intensity_map`: the 0.5th
   and 99.5th percentiles to -1 and 1), clipped to [-1, 1]. Inference fits the percentiles on the whole
   volume, not on a patch, so they are fitted here on a coarse whole-volume *reference*: the subject's
   labels on a strided grid (about 32k voxels), synthesised with the same draws (intensities, bias at
   those positions, gamma, noise; without the blur, which moves these two percentiles little).

:func:`randomised_low_field` does all of it on a patch; :func:`intensity_classes` gives labels to
subjects that have none (real data): classes of the normalised 3 T intensities.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from model.volumes.intensity import fit_intensity_map

MEAN = (0.0, 1.0)  # per-tissue mean, uniform (label 0 stays 0)
SPREAD = (0.0, 0.1)  # per-tissue Gaussian sd, uniform
BIAS_GRID = 4  # control points per axis over the whole volume
BIAS_SD = (0.0, 0.3)  # sd of the log bias at the control points, uniform
GAMMA = (0.5, 2.0)  # log-uniform
IN_PLANE_FWHM_MM = (1.0, 3.0)  # the two thin axes, uniform
SLICE_FWHM_MM = (2.0, 6.0)  # the thick axis (drawn among the three), uniform
RESAMPLE_PROBABILITY = 0.5  # sample the thick axis at the slice thickness and interpolate back
SNR = (4.0, 40.0)  # mean non-background signal / noise sd, log-uniform
RICIAN_PROBABILITY = 0.5  # else Gaussian
REFERENCE_VOXELS = 32768  # about this many voxels of the strided whole-volume reference
DERIVED_CLASSES = 6  # intensity classes of subjects without labels (plus 0: outside the head)

RANGES = {"mean": MEAN, "spread": SPREAD, "bias_grid": BIAS_GRID, "bias_sd": BIAS_SD, "gamma": GAMMA,
          "in_plane_fwhm_mm": IN_PLANE_FWHM_MM, "slice_fwhm_mm": SLICE_FWHM_MM,
          "resample_probability": RESAMPLE_PROBABILITY, "snr": SNR, "rician_probability": RICIAN_PROBABILITY,
          "reference_voxels": REFERENCE_VOXELS}
FWHM_PER_SD = math.sqrt(8.0 * math.log(2.0))  # 2.355


def reference_stride(shape: Sequence[int]) -> int:
    """The stride of the whole-volume reference grid: about :data:`REFERENCE_VOXELS` voxels (1 for small volumes)."""
    return max(1, math.ceil((math.prod(shape) / REFERENCE_VOXELS) ** (1.0 / 3.0)))


def _uniform(generator: torch.Generator, bounds: Sequence[float], *shape: int) -> torch.Tensor:
    return bounds[0] + (bounds[1] - bounds[0]) * torch.rand(shape, generator=generator)


def _log_uniform(generator: torch.Generator, bounds: Sequence[float], *shape: int) -> torch.Tensor:
    return torch.exp(_uniform(generator, (math.log(bounds[0]), math.log(bounds[1])), *shape))


def _interpolation_weights(coordinates: torch.Tensor, size: int, points: int) -> torch.Tensor:
    """(len(coordinates), points): linear interpolation weights of voxel positions on ``points`` control points
    spread evenly over ``0..size-1`` (positions outside are clamped to the border)."""
    u = coordinates.double() / max(size - 1, 1) * (points - 1)
    u = u.clamp(0, points - 1)
    lower = u.floor().clamp(max=points - 2).long()
    fraction = (u - lower).float()
    weights = torch.zeros(len(coordinates), points)
    weights.scatter_(1, lower[:, None], (1 - fraction)[:, None])
    weights.scatter_add_(1, (lower + 1)[:, None], fraction[:, None])
    return weights


def _bias(log_grid: torch.Tensor, axes: Sequence[torch.Tensor], shape: Sequence[int]) -> torch.Tensor:
    """(C, *len(axes)) ``exp`` of the control grids ``log_grid`` (C, G, G, G) interpolated at the voxel positions."""
    wx, wy, wz = (_interpolation_weights(a, s, log_grid.shape[1]) for a, s in zip(axes, shape))
    return torch.einsum("cabd,xa,yb,zd->cxyz", log_grid, wx, wy, wz).exp()


def _blur_matrix(size: int, sd: float) -> torch.Tensor:
    """(size, size): a Gaussian blur of sd ``sd`` voxels along one axis, edges replicated (rows sum to 1)."""
    if sd < 0.2:  # narrower than a fifth of a voxel: no measurable blur
        return torch.eye(size)
    radius = max(1, int(math.ceil(3.0 * sd)))
    offsets = torch.arange(-radius, radius + 1)
    kernel = torch.exp(-0.5 * (offsets.float() / sd) ** 2)
    kernel = kernel / kernel.sum()
    rows = torch.arange(size)[:, None].expand(size, len(offsets))
    columns = (rows + offsets[None]).clamp(0, size - 1)  # replicate the edge voxels
    return torch.zeros(size, size).index_put_((rows, columns), kernel.expand(size, -1).contiguous(), accumulate=True)


def _resample_matrix(size: int, step: float) -> torch.Tensor:
    """(size, size): sample every ``step`` voxels and interpolate back linearly (identity when ``step`` <= 1)."""
    coarse = max(2, int(round(size / step)))
    if coarse >= size:
        return torch.eye(size)
    eye = torch.eye(size)[None]  # rows: unit impulses
    low = F.interpolate(eye, size=coarse, mode="linear", align_corners=True)
    return F.interpolate(low, size=size, mode="linear", align_corners=True)[0].T


def _apply_along_axes(volume: torch.Tensor, matrices: Sequence[torch.Tensor]) -> torch.Tensor:
    """``volume`` (X, Y, Z) with matrix ``matrices[a]`` (n_a, n_a) applied along each axis a."""
    x = torch.tensordot(matrices[0], volume, dims=([1], [0]))
    x = torch.einsum("ij,xjz->xiz", matrices[1], x)
    return torch.matmul(x, matrices[2].T)


def _tissues(labels: torch.Tensor, means: torch.Tensor, spreads: torch.Tensor,
             generator: torch.Generator) -> torch.Tensor:
    """(C, *labels.shape): each label's mean plus Gaussian spread, per contrast."""
    flat = labels.reshape(-1).long()
    values = means[:, flat] + spreads[:, flat] * torch.randn((means.shape[0], flat.numel()), generator=generator)
    return values.view(means.shape[0], *labels.shape)


def _add_noise(volume: torch.Tensor, sd: torch.Tensor, rician: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Gaussian noise of sd ``sd`` (C,), or the magnitude of complex Gaussian noise where ``rician`` (C,)."""
    shape = (-1,) + (1,) * (volume.dim() - 1)
    real = volume + sd.view(shape) * torch.randn(volume.shape, generator=generator)
    if not bool(rician.any()):
        return real
    imaginary = sd.view(shape) * torch.randn(volume.shape, generator=generator)
    return torch.where(rician.view(shape), torch.sqrt(real**2 + imaginary**2), real)


def randomised_low_field(labels: torch.Tensor | np.ndarray, generator: torch.Generator, *,
                         volume_shape: Sequence[int] | None = None,
                         axes: Sequence[torch.Tensor] | None = None,
                         reference: torch.Tensor | np.ndarray | None = None,
                         reference_axes: Sequence[torch.Tensor] | None = None,
                         voxel_mm: float = 1.0, contrasts: int = 3) -> torch.Tensor:
    """A randomised 64 mT-like input (``contrasts``, X, Y, Z), float32 in [-1, 1], for the label patch ``labels``.

    ``labels``: (X, Y, Z) integer tissue labels of the patch (0: no signal). ``volume_shape``: the whole
    volume's shape, and ``axes``: per axis, the voxel index in the volume of each patch voxel (the bias
    field spans the volume). ``reference``: the volume's labels on a strided grid (its voxel indices per
    axis in ``reference_axes``), on which the normalisation's percentiles and the noise level are fitted.
    Absent, the patch is the whole volume (and its own reference). ``voxel_mm``: the grid spacing.
    Every draw comes from ``generator``, in a fixed order.
    """
    labels = torch.as_tensor(np.asarray(labels) if isinstance(labels, np.ndarray) else labels).long()
    if volume_shape is None:
        volume_shape = tuple(labels.shape)
    if axes is None:
        axes = [torch.arange(s) for s in labels.shape]
    if reference is None:
        reference, reference_axes = labels, axes
    reference = torch.as_tensor(np.asarray(reference) if isinstance(reference, np.ndarray) else reference).long()
    count = int(max(int(labels.max()), int(reference.max()))) + 1
    # the draws, per contrast
    means = _uniform(generator, MEAN, contrasts, count)
    spreads = _uniform(generator, SPREAD, contrasts, count)
    means[:, 0] = 0.0
    spreads[:, 0] = 0.0
    bias_sd = _uniform(generator, BIAS_SD, contrasts)
    log_bias = torch.randn((contrasts, BIAS_GRID, BIAS_GRID, BIAS_GRID), generator=generator) * bias_sd.view(-1, 1, 1, 1)
    gamma = _log_uniform(generator, GAMMA, contrasts)
    thick = torch.randint(0, 3, (contrasts,), generator=generator)
    fwhm = _uniform(generator, IN_PLANE_FWHM_MM, contrasts, 3)
    fwhm[torch.arange(contrasts), thick] = _uniform(generator, SLICE_FWHM_MM, contrasts)
    resample = torch.rand(contrasts, generator=generator) < RESAMPLE_PROBABILITY
    snr = _log_uniform(generator, SNR, contrasts)
    rician = torch.rand(contrasts, generator=generator) < RICIAN_PROBABILITY
    gamma_shape = (-1, 1, 1, 1)

    def clean(tissue_labels: torch.Tensor, where: Sequence[torch.Tensor]) -> torch.Tensor:
        volume = _tissues(tissue_labels, means, spreads, generator) * _bias(log_bias, where, volume_shape)
        return volume.clamp(min=0.0) ** gamma.view(gamma_shape)

    # the whole-volume reference: noise level and the percentile map
    reference_clean = clean(reference, reference_axes)
    foreground = reference > 0
    if bool(foreground.any()):
        signal = reference_clean[:, foreground].mean(dim=1)
    else:
        signal = torch.ones(contrasts)
    noise_sd = signal.clamp(min=1e-6) / snr
    reference_noisy = _add_noise(reference_clean, noise_sd, rician, generator).numpy()
    maps = [fit_intensity_map(reference_noisy[c], "randomised contrast reference") for c in range(contrasts)]
    # the patch: blur (and the thick axis resampled) as one matrix per axis
    volume = clean(labels, axes)
    sd = fwhm / FWHM_PER_SD / voxel_mm
    for c in range(contrasts):
        matrices = [_blur_matrix(n, float(sd[c, a])) for a, n in enumerate(labels.shape)]
        if resample[c]:
            a = int(thick[c])
            matrices[a] = _resample_matrix(labels.shape[a], float(fwhm[c, a]) / voxel_mm) @ matrices[a]
        volume[c] = _apply_along_axes(volume[c], matrices)
    volume = _add_noise(volume, noise_sd, rician, generator)
    low = torch.tensor([m.low for m in maps]).view(gamma_shape)
    high = torch.tensor([m.high for m in maps]).view(gamma_shape)
    return ((volume - low) / (high - low) * 2.0 - 1.0).clamp(-1.0, 1.0).float()


def intensity_classes(high: np.ndarray, head: np.ndarray, classes: int = DERIVED_CLASSES,
                      iterations: int = 10) -> np.ndarray:
    """uint8 labels (X, Y, Z) for a subject without a segmentation: 0 outside the head (``head``: flat
    indices), else 1 + the k-means class of the voxel's normalised 3 T intensities (all contrasts), with
    classes ordered by their mean intensity. Deterministic (initialised at quantiles, fitted on a strided
    subsample)."""
    channels = high.shape[0]
    features = np.asarray(high, dtype=np.float32).reshape(channels, -1)[:, head].T
    labels = np.zeros(high.shape[1:], dtype=np.uint8)
    if not len(features):
        return labels
    sample = features[:: max(1, len(features) // 100_000)]
    order = np.argsort(sample.mean(axis=1), kind="stable")
    centres = sample[order[((np.arange(classes) + 0.5) / classes * len(sample)).astype(int)]].copy()
    for _ in range(iterations):
        nearest = _nearest(sample, centres)
        for k in range(classes):
            members = sample[nearest == k]
            if len(members):
                centres[k] = members.mean(axis=0)
    centres = centres[np.argsort(centres.mean(axis=1), kind="stable")]
    assigned = np.concatenate([_nearest(features[i:i + 1_000_000], centres) for i in range(0, len(features), 1_000_000)])
    labels.reshape(-1)[head] = (assigned + 1).astype(np.uint8)
    return labels


def _nearest(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    return ((points[:, None, :] - centres[None]) ** 2).sum(axis=2).argmin(axis=1)
