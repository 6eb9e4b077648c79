"""The naive baseline: Algorithm 1's eps_theta written the obvious way with MONAI.

Every whole-volume evaluation calls MONAI's ``sliding_window_inference`` afresh (window grid,
Gaussian importance map, padding and blending buffers recomputed each time), one window per
network call, float32, under ``torch.no_grad`` (a naive script's usual guard, not inference mode).
The fast engine must give the same output (within 1e-5) for the same configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from monai.inferers import sliding_window_inference
from torch import nn


def naive_denoiser(unet: nn.Module, window: Sequence[int], overlap: float) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """eps_theta(x_t, t) over the whole volume, the naive way."""

    def denoise(x_t: torch.Tensor, t: int) -> torch.Tensor:
        def network(batch: torch.Tensor) -> torch.Tensor:
            return unet(batch, torch.full((batch.shape[0],), float(t), device=batch.device))

        with torch.no_grad():
            return sliding_window_inference(x_t.float(), tuple(window), 1, network, overlap=overlap, mode="gaussian")

    return denoise


def naive_bridge(bridge: nn.Module, window: Sequence[int], overlap: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """phi(x) over the whole volume, the naive way."""

    def residual(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return sliding_window_inference(x.float(), tuple(window), 1, bridge.residual, overlap=overlap,
                                            mode="gaussian")

    return residual
