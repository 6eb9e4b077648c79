"""Held-out metrics on fixed validation patches, computed with the EMA weights (first process only).

* diffusion, at each ``diffusion.validation_timesteps`` t: the noise MSE (eq. 4), and the MSE and
  SSIM of the one-step clean estimate ``x0_hat`` against ``x0``;
* bridge, at ``bridge.validation_timestep`` K: the latent MSE between ``x_K^HF`` and the bridged
  ``x_K^LF`` (paper: 0.05) and between ``x_K^HF`` and ``x_K^LF`` without the bridge (paper: 0.32),
  and the MSE/SSIM of the bridge-only clean estimate (ablation 2) and of the low field itself
  (ablation 1) against the high field.

Every validation patch is head-centred and drawn from the validation subjects with fixed seeds,
so the numbers are comparable across steps and runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ContextManager

import torch
import torch.nn.functional as F
from torch import nn

from model.method.operators import add_noise, estimate_x0
from model.method.schedule import NoiseSchedule
from training import losses
from training.config import RunConfig
from training.data import PreparedSubject
from training.patches import validation_batch


class Validator:
    """Fixed validation batches of one run and the metrics on them."""

    def __init__(self, kind: str, config: RunConfig, subjects: list[PreparedSubject], device: torch.device,
                 autocast: Callable[[], ContextManager], schedule: NoiseSchedule):
        self.kind, self.config, self.subjects, self.device = kind, config, subjects, device
        self.autocast, self.schedule = autocast, schedule
        section = config.section(kind)
        self.timesteps = (tuple(section.validation_timesteps) if kind == "diffusion"
                          else (section.validation_timestep,))
        self.chunk = config.train.batch_size
        self._batches: dict[int, dict[str, torch.Tensor]] = {}

    @property
    def available(self) -> bool:
        return bool(self.subjects)

    def batch(self, t: int) -> dict[str, torch.Tensor]:
        if t not in self._batches:
            self._batches[t] = validation_batch(self.subjects, self.config.train.validation_patches,
                                                self.config.data.patch, t, self.kind == "bridge", self.config.seed)
        return self._batches[t]

    def _chunks(self, batch: dict[str, torch.Tensor]):
        count = batch["high"].shape[0]
        for start in range(0, count, self.chunk):
            yield {k: v[start:start + self.chunk].to(self.device) for k, v in batch.items()}

    @torch.no_grad()
    def run(self, network: nn.Module) -> tuple[dict[str, float], list[torch.Tensor]]:
        """``(metrics, panel rows)``; the panel shows the first validation patch."""
        network.eval()
        evaluate = self._diffusion if self.kind == "diffusion" else self._bridge
        metrics: dict[str, float] = {}
        rows: list[torch.Tensor] = []
        for t in self.timesteps:
            sums: dict[str, float] = {}
            count = 0
            for chunk in self._chunks(self.batch(t)):
                values, images = evaluate(network, chunk)
                n = chunk["high"].shape[0]
                for name, value in values.items():
                    sums[name] = sums.get(name, 0.0) + float(value) * n
                count += n
                if not rows and t == self.timesteps[len(self.timesteps) // 2]:
                    rows = [image[0].cpu() for image in images]
            suffix = f"@{t}" if self.kind == "diffusion" else ""
            metrics.update({f"val/{name}{suffix}": total / count for name, total in sums.items()})
        if self.kind == "diffusion":
            metrics["val/noise_mse"] = sum(metrics[f"val/noise_mse@{t}"] for t in self.timesteps) / len(self.timesteps)
        return metrics, rows

    def _diffusion(self, network: nn.Module, b: dict[str, torch.Tensor]):
        x_t = add_noise(b["high"], b["noise"], b["t"], self.schedule)
        with self.autocast():
            predicted = network(x_t, b["t"]).float()
        x0_estimate = estimate_x0(x_t, predicted, b["t"], self.schedule)
        values = {"noise_mse": F.mse_loss(predicted, b["noise"]),
                  "x0_mse": F.mse_loss(x0_estimate, b["high"]),
                  "x0_ssim": 1.0 - losses.ssim_loss(x0_estimate.clamp(-1, 1), b["high"])}
        return values, [b["high"], x_t, x0_estimate]

    def _bridge(self, network: nn.Module, b: dict[str, torch.Tensor]):
        noisy_high = add_noise(b["high"], b["noise"], b["t"], self.schedule)
        noisy_low = add_noise(b["low"], b["noise"], b["t"], self.schedule)
        with self.autocast():
            bridged = network(noisy_low).float()
        x0_estimate = estimate_x0(bridged, b["noise"], b["t"], self.schedule)
        values = {"latent_mse": F.mse_loss(bridged, noisy_high),
                  "latent_mse_no_bridge": F.mse_loss(noisy_low, noisy_high),
                  "x0_mse": F.mse_loss(x0_estimate, b["high"]),
                  "x0_ssim": 1.0 - losses.ssim_loss(x0_estimate.clamp(-1, 1), b["high"]),
                  "x0_mse_no_bridge": F.mse_loss(b["low"], b["high"]),
                  "x0_ssim_no_bridge": 1.0 - losses.ssim_loss(b["low"], b["high"])}
        return values, [b["low"], x0_estimate, b["high"]]
