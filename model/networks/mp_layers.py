"""Magnitude-preserving (MP) building blocks for a 3D EDM2-style U-Net.

Everything here follows the design principles of

    T. Karras, M. Aittala, J. Lehtinen, J. Hellsten, T. Aila, S. Laine,
    "Analyzing and Improving the Training Dynamics of Diffusion Models",
    CVPR 2024, arXiv:2312.02696 (called "EDM2" below).

The goal of EDM2 (its Sec. 2) is that, at initialisation and throughout training,
every activation tensor keeps an expected magnitude (root mean square) of about one,
and that learned weights keep a fixed norm so that the effective learning rate does not
drift.  The paper walks through a sequence of configurations; the pieces implemented
here are:

* Config D, Sec. 2.2 "Standardizing activation magnitudes": weight-normalised learned
  layers without biases (``MPConv3d``/``MPLinear``), cosine attention
  (``cosine_self_attention``).
* Config E, Sec. 2.3 "Standardizing weights and updates": *forced* weight
  normalisation, i.e. the stored weight is projected back onto its hypersphere before
  each training step (done in ``MPConv3d.forward`` when ``self.training``).
* Config F, Sec. 2.4 "Removing group normalizations": pixel normalisation
  (``pixel_norm``) in the encoder instead of group norm.
* Config G, Sec. 2.5 "Magnitude-preserving fixed-function layers" (derivations in the
  paper's appendix B): ``mp_silu``, ``mp_sum``, ``mp_cat``, ``MPFourier`` and the learned
  output gain initialised at zero.

This is an independent implementation written from the paper's text; NVIDIA's reference
code (non-commercial licence) was not used.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "normalize",
    "pixel_norm",
    "mp_silu",
    "mp_sum",
    "mp_cat",
    "MPConv3d",
    "MPLinear",
    "MPFourier",
    "cosine_self_attention",
    "resample_down",
    "resample_up",
    "MP_SILU_SCALE",
]

#: RMS of SiLU(x) for x ~ N(0, 1):  sqrt(E[silu(x)^2]) ~= 0.596 (EDM2 Sec. 2.5, Config G).
MP_SILU_SCALE = 0.596

_DEFAULT_EPS = 1e-4


def normalize(x: torch.Tensor, dim: int | Sequence[int] | None = None, eps: float = _DEFAULT_EPS) -> torch.Tensor:
    """Scale ``x`` to unit RMS over ``dim`` (EDM2 Sec. 2.2-2.3, Configs D/E).

    With ``dim=None`` the RMS is taken per *output unit*: over every dimension except the
    first, which is what weight normalisation needs for a weight tensor of shape
    (out, in, *kernel).  With ``dim=1`` it is the per-voxel channel normalisation of
    ``pixel_norm``.

    The norm is accumulated in float32 (so it is safe for bf16/fp16 activations under
    autocast) and the result keeps ``x``'s dtype.  ``eps`` keeps all-zero units finite.
    """
    if dim is None:
        dim = tuple(range(1, x.ndim))
    rms = torch.linalg.vector_norm(x, dim=dim, keepdim=True, dtype=torch.float32)
    count = x.numel() / max(rms.numel(), 1)
    rms = rms / math.sqrt(count)
    return x * (1.0 / (eps + rms)).to(x.dtype)


def pixel_norm(x: torch.Tensor, eps: float = _DEFAULT_EPS) -> torch.Tensor:
    """Pixel normalisation: unit RMS across channels at every voxel (EDM2 Sec. 2.4, Config F).

    ``x`` has layout (B, C, *spatial); the normalisation is along dim 1.
    """
    return normalize(x, dim=1, eps=eps)


def mp_silu(x: torch.Tensor) -> torch.Tensor:
    """Magnitude-preserving SiLU: ``silu(x) / 0.596`` (EDM2 Sec. 2.5, Config G).

    Dividing by the RMS of SiLU under a standard normal input keeps unit-variance inputs
    at (about) unit magnitude.
    """
    return F.silu(x) / MP_SILU_SCALE


def mp_sum(a: torch.Tensor, b: torch.Tensor, t: float = 0.5) -> torch.Tensor:
    """Magnitude-preserving weighted sum (EDM2 Sec. 2.5, Config G).

    Computes ``((1 - t) a + t b) / sqrt((1 - t)^2 + t^2)``: a linear interpolation with
    weight ``t`` on ``b``, rescaled so that two independent unit-magnitude inputs give a
    unit-magnitude output.  EDM2 uses ``t = 0.3`` for residual branches (``a`` the
    residual stream, ``b`` the branch) and ``t = 0.5`` for embedding sums.
    """
    return a.lerp(b.to(a.dtype), t) / math.sqrt((1.0 - t) ** 2 + t**2)


def mp_cat(a: torch.Tensor, b: torch.Tensor, dim: int = 1, t: float = 0.5) -> torch.Tensor:
    """Magnitude-preserving concatenation along ``dim`` (EDM2 Sec. 2.5, Config G).

    ``a`` (with N_a channels) and ``b`` (N_b channels) are scaled so that the result has
    unit RMS over all N_a + N_b channels when both inputs have unit RMS, while ``t`` sets
    the share of the total energy contributed by ``b``: ``a`` gets ``(1-t)^2 / ((1-t)^2 +
    t^2)`` of it and ``b`` the rest, independently of the channel counts.  The U-Net uses
    ``t = 0.5`` for its encoder-to-decoder skips.
    """
    n_a, n_b = a.shape[dim], b.shape[dim]
    total_scale = math.sqrt((n_a + n_b) / ((1.0 - t) ** 2 + t**2))
    weight_a = total_scale / math.sqrt(n_a) * (1.0 - t)
    weight_b = total_scale / math.sqrt(n_b) * t
    return torch.cat([a * weight_a, (b * weight_b).to(a.dtype)], dim=dim)


def _as_triple(value: int | Sequence[int]) -> tuple[int, int, int]:
    if isinstance(value, int):
        return (value, value, value)
    value = tuple(int(v) for v in value)
    if len(value) != 3:
        raise ValueError(f"expected an int or 3 ints, got {value!r}")
    return value  # type: ignore[return-value]


def _autocast_enabled(device_type: str) -> bool:
    """Whether autocast is on for ``device_type`` (False for device types autocast lacks, e.g. meta)."""
    try:
        return torch.is_autocast_enabled(device_type)
    except RuntimeError:
        return False


class MPConv3d(nn.Module):
    """Weight-normalised 3D convolution without bias (EDM2 Sec. 2.2-2.3, Configs D and E).

    The stored weight ``w`` of shape (out, in, kx, ky, kz) is used as
    ``gain * normalize(w) / sqrt(fan_in)``: every output unit's weight vector has unit
    L2 norm, so a layer fed with unit-magnitude, uncorrelated inputs produces
    unit-magnitude outputs (Config D).  ``fan_in = in * kx * ky * kz``.

    Forced weight normalisation (Config E): in training mode the *stored* weight is
    re-normalised in place to unit RMS per output unit before it is used, so the
    parameter stays on a fixed-norm hypersphere and optimiser updates change its
    direction only.  This follows ``module.train()`` / ``module.eval()``; in eval mode the
    stored weight is never touched.  The in-place update bypasses autograd's version
    counter, so several training-mode forwards may precede one backward pass.

    ``kernel_size=()`` (or use :class:`MPLinear`) turns the layer into a fully connected
    one acting on (B, in) vectors, as EDM2 uses for its embedding layers.  Odd kernels use
    "same" zero padding.  ``gain`` (a float or a tensor broadcastable to a scalar) scales
    the effective weight, as EDM2 does for its learned scalar gains.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int] = 3):
        super().__init__()
        if isinstance(kernel_size, (tuple, list)) and len(kernel_size) == 0:
            self.kernel_size: tuple[int, ...] = ()
        else:
            self.kernel_size = _as_triple(kernel_size)  # type: ignore[arg-type]
            if any(k % 2 == 0 for k in self.kernel_size):
                raise ValueError(f"MPConv3d needs odd kernel sizes for 'same' padding, got {self.kernel_size}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, *self.kernel_size))

    @property
    def fan_in(self) -> int:
        return self.weight[0].numel()

    @torch.no_grad()
    def force_normalize_(self) -> None:
        """Project the stored weight back to unit RMS per output unit (EDM2 Sec. 2.3, Config E)."""
        self.weight.data.copy_(normalize(self.weight.data))

    def effective_weight(self, gain: float | torch.Tensor = 1.0) -> torch.Tensor:
        """The weight actually applied: ``gain * normalize(w) / sqrt(fan_in)`` (EDM2 Sec. 2.2)."""
        return normalize(self.weight) * (gain / math.sqrt(self.fan_in))

    def forward(self, x: torch.Tensor, gain: float | torch.Tensor = 1.0) -> torch.Tensor:
        if self.training:
            self.force_normalize_()
        weight = self.effective_weight(gain)
        if not _autocast_enabled(x.device.type):
            weight = weight.to(x.dtype)  # under autocast the op casts both operands itself
        if not self.kernel_size:
            return F.linear(x, weight)
        padding = tuple(k // 2 for k in self.kernel_size)
        return F.conv3d(x, weight, padding=padding)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"


class MPLinear(MPConv3d):
    """Weight-normalised fully connected layer without bias (EDM2 Sec. 2.2, Config D).

    An :class:`MPConv3d` with an empty kernel, acting on (B, in_features) tensors;
    forced weight normalisation applies in training mode as for the convolution.
    """

    def __init__(self, in_features: int, out_features: int):
        super().__init__(in_features, out_features, kernel_size=())


class MPFourier(nn.Module):
    """Magnitude-preserving Fourier features of a scalar (EDM2 Sec. 2.5, Config G).

    ``y_i = sqrt(2) * cos(2 pi (f_i c + p_i))`` with fixed random frequencies
    ``f_i ~ N(0, scale^2)`` and phases ``p_i ~ U[0, 1)``.  A cosine of a uniformly random
    phase has RMS ``1/sqrt(2)``, so the ``sqrt(2)`` makes the embedding unit-magnitude.
    Frequencies and phases are buffers (saved in the state dict, never trained) drawn from
    a private generator seeded with ``seed``, so two instances with the same arguments are
    identical.
    """

    def __init__(self, num_channels: int, scale: float = 1.0, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("freqs", torch.randn(num_channels, generator=generator) * scale)
        self.register_buffer("phases", torch.rand(num_channels, generator=generator))

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        """Map a (B,) tensor of scalars to (B, num_channels) float32 features."""
        c = c.to(torch.float32).reshape(-1, 1)
        angle = 2.0 * math.pi * (c * self.freqs.to(torch.float32) + self.phases.to(torch.float32))
        return torch.cos(angle) * math.sqrt(2.0)


def cosine_self_attention(qkv: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Multi-head cosine self-attention over all voxels (EDM2 Sec. 2.2, Config D).

    ``qkv`` has shape (B, 3*C, *spatial) and holds queries, keys and values stacked along
    the channel axis in that order.  Queries, keys and values are each normalised per
    head to unit RMS over the head's channels, so with the usual ``1/sqrt(head_dim)``
    scaling the logits are ``sqrt(head_dim) * cos(q, k)``: bounded, whatever the weight
    norms (cosine attention), and the values stay at unit magnitude.  Uses
    :func:`torch.nn.functional.scaled_dot_product_attention`, so fused flash / memory
    efficient kernels are picked when available.  Returns (B, C, *spatial).
    """
    batch, three_channels, *spatial = qkv.shape
    channels = three_channels // 3
    if channels % num_heads:
        raise ValueError(f"{channels} channels do not split into {num_heads} heads")
    head_dim = channels // num_heads
    num_voxels = math.prod(spatial)
    qkv = qkv.reshape(batch, 3, num_heads, head_dim, num_voxels)
    qkv = normalize(qkv, dim=3)
    # each (B, heads, N, head_dim), contiguous: the fused CPU kernel needs the last axis contiguous and falls back
    # to the unfused path (4x slower at the U-Net's 16x16x8 bottleneck, docs/speed.md) otherwise
    q, k, v = (qkv[:, i].transpose(-1, -2).contiguous() for i in range(3))
    out = F.scaled_dot_product_attention(q, k, v)
    return out.transpose(-1, -2).reshape(batch, channels, *spatial)


def resample_down(x: torch.Tensor, factors: Sequence[int]) -> torch.Tensor:
    """Anisotropic down-sampling with a box ([1, 1]) filter (EDM2 architecture, its Fig. 21 / App. B).

    Averages non-overlapping ``factors`` blocks (each factor 1 or 2 per axis): the
    normalised [1, 1] filter of EDM2, generalised per axis.  Smooth signals keep their
    magnitude; the encoder re-normalises after it with ``pixel_norm``.
    """
    factors = tuple(int(f) for f in factors)
    if all(f == 1 for f in factors):
        return x
    return F.avg_pool3d(x, kernel_size=factors, stride=factors)


def resample_up(x: torch.Tensor, factors: Sequence[int]) -> torch.Tensor:
    """Anisotropic nearest-neighbour up-sampling (the transpose of ``resample_down`` times the factor).

    Replicating every voxel ``factors`` times preserves the magnitude exactly.
    """
    factors = tuple(int(f) for f in factors)
    if all(f == 1 for f in factors):
        return x
    return F.interpolate(x, scale_factor=factors, mode="nearest")
