"""The two training objectives as modules (so DistributedDataParallel wraps network and loss together),
and one optimiser step of each network.

* :class:`DiffusionObjective` (docs/method.md: the diffusion network): ``x_t = AddNoise(x0, eps, t)``, ``eps_theta(x_t, t)``,
  loss ``||eps - eps_theta||^2 + l_ssim (1 - SSIM3D(x0_hat, x0)) + l_sobel ||grad x0_hat - grad x0||``.
* :class:`BridgeObjective` (docs/method.md: the bridge): one shared ``eps`` noises both fields to ``t``;
  ``x_t^HF_hat = x_t^LF + phi(x_t^LF)`` (eq. 8); loss ``l_lat ||x_t^HF_hat - x_t^HF||^2 +
  l_x0 ||RemoveNoise(x_t^HF_hat, eps, t) - x0^HF||^2``; with ``identity=True`` the separate
  identity step's loss ``l_id ||phi(x_t^HF)||^2`` (eq. 9).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import ContextManager

import torch
from torch import nn

from model.networks.bridge import Bridge
from model.method.operators import add_noise, estimate_x0
from model.method.schedule import cosine_schedule
from model.networks.unet import MPUNet3D
from training import losses
from training.config import BridgeTraining, DiffusionTraining

Autocast = Callable[[], ContextManager]


class DiffusionObjective(nn.Module):
    """The epsilon-network with its loss; ``forward(high, noise, t)`` returns the loss terms and ``loss``."""

    def __init__(self, network: MPUNet3D, section: DiffusionTraining, autocast: Autocast = contextlib.nullcontext):
        super().__init__()
        self.network, self.section, self.autocast = network, section, autocast
        self.schedule = cosine_schedule(section.timesteps)

    def forward(self, high: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> dict[str, torch.Tensor]:
        s = self.section
        x_t = add_noise(high, noise, t, self.schedule)
        with self.autocast():
            predicted = self.network(x_t, t)
        predicted = predicted.float()
        out = {"noise": losses.noise_loss(predicted, noise)}
        loss = out["noise"]
        if s.ssim_weight or s.sobel_weight:
            x0_estimate = estimate_x0(x_t, predicted, t, self.schedule)
            if s.ssim_weight:
                out["ssim"] = losses.ssim_loss(x0_estimate, high, s.ssim_window)
                loss = loss + s.ssim_weight * out["ssim"]
            if s.sobel_weight:
                out["sobel"] = losses.sobel_loss(x0_estimate, high, s.sobel_scale)
                loss = loss + s.sobel_weight * out["sobel"]
        out["loss"] = loss
        return out


class BridgeObjective(nn.Module):
    """The bridge with its losses; ``forward(high, low, noise, t, identity=False)``."""

    def __init__(self, network: Bridge, section: BridgeTraining, autocast: Autocast = contextlib.nullcontext):
        super().__init__()
        self.network, self.section, self.autocast = network, section, autocast
        self.schedule = cosine_schedule(section.timesteps)

    def forward(self, high: torch.Tensor, low: torch.Tensor, noise: torch.Tensor, t: torch.Tensor,
                identity: bool = False) -> dict[str, torch.Tensor]:
        s = self.section
        noisy_high = add_noise(high, noise, t, self.schedule)
        if identity:
            with self.autocast():
                residual = self.network.residual(noisy_high)
            term = losses.identity_loss(residual.float())
            return {"identity": term, "loss": s.identity_weight * term}
        noisy_low = add_noise(low, noise, t, self.schedule)  # the same eps for both fields
        with self.autocast():
            bridged = self.network(noisy_low)
        bridged = bridged.float()
        x0_estimate = estimate_x0(bridged, noise, t, self.schedule)
        out = {"latent": losses.latent_alignment_loss(bridged, noisy_high),
               "x0": losses.clean_estimate_loss(x0_estimate, high)}
        out["loss"] = s.latent_weight * out["latent"] + s.x0_weight * out["x0"]
        return out


def build_objective(kind: str, network: nn.Module, section: DiffusionTraining | BridgeTraining,
                    autocast: Autocast = contextlib.nullcontext) -> nn.Module:
    """The objective module of ``kind`` (diffusion or bridge) around ``network``."""
    return (DiffusionObjective if kind == "diffusion" else BridgeObjective)(network, section, autocast)


def _optimise(compute: Callable[[], dict[str, torch.Tensor]], optimizer: torch.optim.Optimizer,
              parameters: list[nn.Parameter], grad_clip: float) -> dict[str, torch.Tensor]:
    """zero_grad, forward, backward, optional clipping of the global gradient norm, optimiser step."""
    optimizer.zero_grad(set_to_none=True)
    out = compute()
    out["loss"].backward()
    if grad_clip:
        out["grad_norm"] = torch.nn.utils.clip_grad_norm_(parameters, grad_clip)
    optimizer.step()
    return {k: v.detach() for k, v in out.items()}


def train_step(module: nn.Module, batch: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer,
               parameters: list[nn.Parameter], grad_clip: float, identity_step: bool) -> dict[str, torch.Tensor]:
    """One optimiser step on ``batch`` (``module``: an objective, possibly DDP-wrapped); for the bridge
    with ``identity_step``, then the separate identity step on the same noisy high-field patches."""
    metrics = _optimise(lambda: module(**batch), optimizer, parameters, grad_clip)
    if identity_step:
        extra = _optimise(lambda: module(**batch, identity=True), optimizer, parameters, grad_clip)
        metrics["identity"] = extra["identity"]
        if "grad_norm" in extra:
            metrics["identity_grad_norm"] = extra["grad_norm"]
    return metrics
