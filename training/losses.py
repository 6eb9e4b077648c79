"""The training losses, one equation per function (paper eqs. 4-9; docs/method.md: the diffusion network, the bridge).

Every loss is a mean over voxels, channels and batch elements, so a loss over a batch equals the
mean of the losses of its halves: what DistributedDataParallel's gradient averaging needs for
several processes to train exactly like one process with the whole batch.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from monai.losses import SSIMLoss


def noise_loss(predicted_noise: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Eq. 4: ``|| eps - eps_theta(x_t, t) ||^2`` (mean squared error)."""
    return F.mse_loss(predicted_noise, noise)


@functools.lru_cache(maxsize=None)
def _sobel_kernels() -> torch.Tensor:
    """The three 3x3x3 Sobel kernels (S_x, S_y, S_z), shape (3, 1, 3, 3, 3), integer weights.

    ``S_x = d (x) s (x) s`` with the central difference ``d = [-1, 0, 1]`` along x and the
    smoothing ``s = [1, 2, 1]`` along y and z (likewise for y and z). On a ramp ``f = a x`` the
    response is ``32 a`` (2 from the difference, 16 from the smoothing).
    """
    d = torch.tensor([-1.0, 0.0, 1.0])
    s = torch.tensor([1.0, 2.0, 1.0])
    kx = torch.einsum("i,j,k->ijk", d, s, s)
    ky = torch.einsum("i,j,k->ijk", s, d, s)
    kz = torch.einsum("i,j,k->ijk", s, s, d)
    return torch.stack([kx, ky, kz])[:, None]


def sobel_responses(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Eq. 5: ``G_x = S_x * x``, ``G_y = S_y * x``, ``G_z = S_z * x`` per channel.

    ``x`` is (B, C, X, Y, Z); returns (B, C, 3, X - 2, Y - 2, Z - 2) (valid convolution, no
    padding, so the borders invent no edges). ``scale`` multiplies the kernels.
    """
    b, c = x.shape[:2]
    kernels = (_sobel_kernels() * scale).to(x.device, x.dtype)
    responses = F.conv3d(x.reshape(b * c, 1, *x.shape[2:]), kernels)
    return responses.reshape(b, c, 3, *responses.shape[2:])


def gradient_magnitude(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Eq. 6: ``grad x = tanh(sqrt(G_x^2 + G_y^2 + G_z^2))``, (B, C, X - 2, Y - 2, Z - 2).

    The square root gets a tiny floor inside so that its gradient stays finite on flat regions.
    """
    squared = sobel_responses(x, scale).square().sum(dim=2)
    return torch.tanh(torch.sqrt(squared + 1e-12))


def sobel_loss(x0_estimate: torch.Tensor, x0: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Eq. 7: ``|| grad x0_hat - grad x0 ||``, as the mean absolute difference (an L1 norm per voxel)."""
    return (gradient_magnitude(x0_estimate, scale) - gradient_magnitude(x0, scale)).abs().mean()


@functools.lru_cache(maxsize=None)
def _ssim(window: int) -> SSIMLoss:
    return SSIMLoss(spatial_dims=3, data_range=2.0, kernel_type="gaussian", win_size=window, kernel_sigma=1.5)


def ssim_loss(x0_estimate: torch.Tensor, x0: torch.Tensor, window: int = 7) -> torch.Tensor:
    """``1 - SSIM3D(x0_hat, x0)`` (docs/method.md: the diffusion network): MONAI's 3D SSIM, data range 2 for [-1, 1] images.

    Gaussian window (sigma 1.5) of ``window`` voxels, valid convolution; SSIM is averaged over
    voxels and channels per sample, ``1 - SSIM`` over the batch.
    """
    return _ssim(window)(x0_estimate.float(), x0.float())


def latent_alignment_loss(bridged: torch.Tensor, noisy_high: torch.Tensor) -> torch.Tensor:
    """Latent alignment (docs/method.md: the bridge): ``|| x_t^HF_hat - x_t^HF ||^2`` with ``x_t^HF_hat = x_t^LF + phi(x_t^LF)`` (eq. 8)."""
    return F.mse_loss(bridged, noisy_high)


def clean_estimate_loss(x0_estimate: torch.Tensor, x0_high: torch.Tensor) -> torch.Tensor:
    """The bridge's clean-image term (docs/method.md: the bridge): ``|| RemoveNoise(x_t^HF_hat, eps, t) - x0^HF ||^2``."""
    return F.mse_loss(x0_estimate, x0_high)


def identity_loss(residual: torch.Tensor) -> torch.Tensor:
    """Eq. 9: ``|| x_t^HF - (x_t^HF + phi(x_t^HF)) ||^2 = || phi(x_t^HF) ||^2`` (mean square)."""
    return residual.square().mean()
