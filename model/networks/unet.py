"""The epsilon-prediction network: a 3D magnitude-preserving U-Net after EDM2.

Karras et al., "Analyzing and Improving the Training Dynamics of Diffusion Models",
arXiv:2312.02696 ("EDM2"), describe a 2D U-Net whose every layer preserves the magnitude
of its activations (their Config G, architecture in their Fig. 21 / appendix B).  This
module extends that design to 3D volumes with anisotropic windows (docs/method.md: the diffusion network):

* weight-normalised 3D convolutions without biases, forced weight normalisation while
  training (``model.train()``), plain weight normalisation at inference (``model.eval()``);
* an extra constant-ones input channel, pixel normalisation in the encoder, residual
  blocks combined with ``mp_sum`` (balance 0.3), skips joined with ``mp_cat`` (balance
  0.5), cosine self-attention only at selected (by default the coarsest) levels;
* a Fourier embedding of ``c = t / T`` followed by an MP linear layer, which modulates
  every residual block as ``y * (1 + gain * linear(emb))`` with ``gain`` starting at 0;
* an output convolution whose scalar gain starts at zero, so the network outputs exactly
  zero at initialisation;
* per-axis down-sampling: an axis is halved at a level transition only while it is at
  least ``2 * min_size`` long, so the 32-slice z axis of a 128x128x32 window stops halving
  before x and y do.  Inputs of any size are zero-padded internally to a multiple of the
  total down-sampling factor and cropped back.

Written from the paper's text; NVIDIA's reference code (non-commercial licence) was not
used.  ``python -m bench.network_size`` prints the size and cost of the default and a tiny config.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .mp_layers import (
    MPConv3d,
    MPFourier,
    MPLinear,
    cosine_self_attention,
    mp_cat,
    mp_silu,
    mp_sum,
    pixel_norm,
    resample_down,
    resample_up,
)

__all__ = ["MPUNet3D", "UNetBlock"]

from .unet_config import UNetConfig


# ---------------------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------------------


class UNetBlock(nn.Module):
    """One EDM2 residual block, encoder or decoder flavour (EDM2 Fig. 21, Configs D-G).

    Encoder (``flavor="enc"``): optional down-sampling, a 1x1 MP conv when the width
    changes, then pixel normalisation (Sec. 2.4) of the residual stream.  Decoder
    (``flavor="dec"``): optional up-sampling; its input is the ``mp_cat`` of the stream and
    an encoder skip, reduced by a 1x1 MP conv on the residual path after the branch.

    Residual branch: ``conv3(mp_silu(x))``, modulated by ``1 + gain * linear(emb)`` (gain
    a learned scalar starting at 0), ``mp_silu``, dropout, ``conv3``; merged with
    ``mp_sum(x, y, residual_balance)``.  With ``attention`` a cosine self-attention layer
    follows, merged the same way.  Activations are finally clamped to
    ``+-activation_clip``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        embedding_channels: int,
        *,
        flavor: str,
        resample: str | None = None,
        resample_factors: Sequence[int] = (1, 1, 1),
        attention: bool = False,
        num_heads: int = 1,
        dropout: float = 0.0,
        residual_balance: float = 0.3,
        activation_clip: float = 256.0,
    ):
        super().__init__()
        if flavor not in ("enc", "dec"):
            raise ValueError(f"flavor must be 'enc' or 'dec', got {flavor!r}")
        if resample not in (None, "down", "up"):
            raise ValueError(f"resample must be None, 'down' or 'up', got {resample!r}")
        self.flavor = flavor
        self.resample = resample
        self.resample_factors = tuple(int(f) for f in resample_factors)
        self.num_heads = num_heads
        self.dropout = dropout
        self.residual_balance = residual_balance
        self.activation_clip = activation_clip
        self.in_channels = in_channels
        self.out_channels = out_channels

        self.skip_conv = MPConv3d(in_channels, out_channels, 1) if in_channels != out_channels else None
        branch_in = out_channels if flavor == "enc" else in_channels
        self.conv_res0 = MPConv3d(branch_in, out_channels, 3)
        self.emb_linear = MPLinear(embedding_channels, out_channels)
        self.emb_gain = nn.Parameter(torch.zeros([]))
        self.conv_res1 = MPConv3d(out_channels, out_channels, 3)
        if attention:
            self.attn_qkv = MPConv3d(out_channels, 3 * out_channels, 1)
            self.attn_proj = MPConv3d(out_channels, out_channels, 1)
        else:
            self.attn_qkv = None
            self.attn_proj = None

    @property
    def has_attention(self) -> bool:
        return self.attn_qkv is not None

    def _resample(self, x: torch.Tensor) -> torch.Tensor:
        if self.resample == "down":
            return resample_down(x, self.resample_factors)
        if self.resample == "up":
            return resample_up(x, self.resample_factors)
        return x

    def _embedding_scale(self, emb: torch.Tensor) -> torch.Tensor:
        """``1 + gain * linear(emb)`` reshaped to (B, C, 1, 1, 1) (EDM2 Fig. 21)."""
        scale = self.emb_linear(emb, gain=self.emb_gain) + 1
        return scale.reshape(*scale.shape, 1, 1, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        x = self._resample(x)
        if self.flavor == "enc":
            if self.skip_conv is not None:
                x = self.skip_conv(x)
            x = pixel_norm(x)

        y = self.conv_res0(mp_silu(x))
        y = mp_silu(y * self._embedding_scale(emb).to(y.dtype))
        if self.dropout > 0:
            y = F.dropout(y, p=self.dropout, training=self.training)
        y = self.conv_res1(y)

        if self.flavor == "dec" and self.skip_conv is not None:
            x = self.skip_conv(x)
        x = mp_sum(x, y, self.residual_balance)

        if self.has_attention:
            y = cosine_self_attention(self.attn_qkv(x), self.num_heads)
            y = self.attn_proj(y)
            x = mp_sum(x, y, self.residual_balance)

        if self.activation_clip:
            x = x.clamp(-self.activation_clip, self.activation_clip)
        return x


class MPUNet3D(nn.Module):
    """3D magnitude-preserving U-Net epsilon_theta(x_t, t) (EDM2 Config G, docs/method.md: the diffusion network).

    ``forward(x, t)``: ``x`` is (B, in_channels, X, Y, Z), any spatial size (padded
    internally to a multiple of ``config.total_factor`` and cropped back); ``t`` is a (B,)
    tensor (or a scalar, broadcast to the batch) of timesteps in [0, T], any dtype.  The
    output has ``x``'s shape with ``out_channels`` channels and ``x``'s dtype (also under
    autocast).  It is exactly zero at initialisation (output gain starts at 0).

    Layout: ``conv_in`` on ``[x, 1]``; encoder levels (a down-sampling block, then
    ``num_blocks[l]`` blocks); decoder levels from coarsest to finest (an up-sampling block,
    or at the coarsest level nothing, then ``num_blocks[l] + 1`` blocks each fed an encoder
    skip via ``mp_cat``); ``conv_out`` with a learned scalar gain.

    Training mode re-normalises every stored conv weight in place at each forward (forced
    weight normalisation, EDM2 Sec. 2.3); call ``model.eval()`` for inference.
    """

    def __init__(self, config: UNetConfig | None = None):
        super().__init__()
        config = config if config is not None else UNetConfig()
        self.config = config
        channels = config.level_channels
        emb_channels = config.embedding_channels
        factors = config.down_factors
        attention_levels = config.attention_level_set

        def block(cin: int, cout: int, level: int, **kwargs: Any) -> UNetBlock:
            kwargs.setdefault("attention", level in attention_levels)
            return UNetBlock(
                cin, cout, emb_channels,
                num_heads=config.num_heads(cout), dropout=config.dropout,
                residual_balance=config.residual_balance, activation_clip=config.activation_clip,
                **kwargs,
            )

        # Timestep embedding (EDM2 Sec. 2.5): Fourier features of c = t / T, MP linear, MP SiLU.
        self.time_fourier = MPFourier(config.model_channels, scale=config.fourier_scale, seed=config.fourier_seed)
        self.time_linear = MPLinear(config.model_channels, emb_channels)

        # Encoder.
        self.conv_in = MPConv3d(config.in_channels + 1, channels[0], 3)
        self.encoder = nn.ModuleList()
        skip_channels = [channels[0]]
        current = channels[0]
        for level, width in enumerate(channels):
            if level > 0:
                self.encoder.append(block(current, current, level, flavor="enc", resample="down",
                                          resample_factors=factors[level - 1], attention=False))
                skip_channels.append(current)
            for _ in range(config.num_blocks[level]):
                self.encoder.append(block(current, width, level, flavor="enc"))
                current = width
                skip_channels.append(current)

        # Decoder.  ``takes_skip[i]`` says whether decoder block i concatenates a skip.
        self.decoder = nn.ModuleList()
        takes_skip: list[bool] = []
        for level in reversed(range(config.num_levels)):
            width = channels[level]
            if level == config.num_levels - 1:
                self.decoder.append(block(current, width, level, flavor="dec"))
                self.decoder.append(block(width, width, level, flavor="dec"))
                takes_skip += [False, False]
                current = width
            else:
                self.decoder.append(block(current, current, level, flavor="dec", resample="up",
                                          resample_factors=factors[level], attention=False))
                takes_skip.append(False)
            for _ in range(config.num_blocks[level] + 1):
                cin = current + skip_channels.pop()
                self.decoder.append(block(cin, width, level, flavor="dec"))
                takes_skip.append(True)
                current = width
        assert not skip_channels, "encoder/decoder skip bookkeeping is inconsistent"
        self.decoder_takes_skip = tuple(takes_skip)

        self.conv_out = MPConv3d(current, config.out_channels, 3)
        self.out_gain = nn.Parameter(torch.zeros([]))

    # -- pieces of forward -------------------------------------------------------------

    def embed_timesteps(self, t: torch.Tensor | float | int, batch_size: int, device: torch.device) -> torch.Tensor:
        """(B, embedding_channels) embedding of ``t``: ``mp_silu(linear(fourier(t / T)))``."""
        t = torch.as_tensor(t, device=device)
        if t.ndim == 0:
            t = t.expand(batch_size)
        if t.shape != (batch_size,):
            raise ValueError(f"t must be a scalar or have shape ({batch_size},), got {tuple(t.shape)}")
        c = t.to(torch.float32) / self.config.num_timesteps
        return mp_silu(self.time_linear(self.time_fourier(c)))

    def _pad(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[slice, ...]]:
        """Zero-pad the spatial axes to multiples of ``total_factor``; return the crop back."""
        size = x.shape[2:]
        extra = [(-s) % f for s, f in zip(size, self.config.total_factor)]
        crop = tuple(slice(e // 2, e // 2 + s) for e, s in zip(extra, size))
        if not any(extra):
            return x, crop
        channels_last = x.is_contiguous(memory_format=torch.channels_last_3d) and not x.is_contiguous()
        pad: list[int] = []
        for e in reversed(extra):  # F.pad lists the last axis first
            pad += [e // 2, e - e // 2]
        x = F.pad(x, pad)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        return x, crop

    def forward(self, x: torch.Tensor, t: torch.Tensor | float | int) -> torch.Tensor:
        if x.ndim != 5 or x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"x must be (B, {self.config.in_channels}, X, Y, Z), got {tuple(x.shape)}"
            )
        input_dtype = x.dtype
        emb = self.embed_timesteps(t, x.shape[0], x.device)

        # EDM2 Sec. 2.1, Config C: with no biases anywhere, a constant-ones channel lets the
        # first conv see where the data is (padding is zero in every channel).
        h = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
        h, crop = self._pad(h)

        h = self.conv_in(h)
        skips = [h]
        for block in self.encoder:
            h = block(h, emb)
            skips.append(h)
        for block, takes_skip in zip(self.decoder, self.decoder_takes_skip):
            if takes_skip:
                h = mp_cat(h, skips.pop(), t=self.config.concat_balance)
            h = block(h, emb)
        h = self.conv_out(h, gain=self.out_gain)
        return h[(slice(None), slice(None)) + crop].to(input_dtype)
