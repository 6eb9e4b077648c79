"""The networks on a device, evaluated over whole volumes through windows, driving the sampler."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from model.errors import DeviceError
from model.sampler import LevelCallback, sample
from model.schedule import cosine_schedule
from model.settings import SamplerSettings
from model.weights import load_network
from model.windows import WindowPlan, evaluate_in_windows, plan_windows

log = logging.getLogger(__name__)


def select_device(requested: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; ``cuda`` without a GPU is refused clearly."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda was asked for, but no CUDA device is available (use --device cpu or auto)")
    if requested not in ("cpu", "cuda"):
        raise DeviceError(f"unknown device '{requested}'; expected auto, cpu or cuda")
    return torch.device(requested)


class Enhancer:
    """Frozen networks plus settings: turns a normalised low-field volume into a pseudo high-field one."""

    def __init__(self, settings: SamplerSettings, weights_dir: Path | None, device: torch.device):
        self.settings = settings
        self.device = device
        self.schedule = cosine_schedule()
        self.unet = load_network(weights_dir, "diffusion", device) if settings.mode.uses_diffusion else None
        self.bridge = load_network(weights_dir, "bridge", device) if settings.mode.uses_bridge else None

    @property
    def network_names(self) -> tuple[str, ...]:
        """Manifest names of the networks this mode loaded."""
        return tuple(n for n, net in (("diffusion", self.unet), ("bridge", self.bridge)) if net is not None)

    def _autocast(self):
        """bf16 autocast on CUDA when asked for; otherwise a no-op."""
        if self.settings.precision == "bfloat16" and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _denoiser(self, plan: WindowPlan) -> Callable[[torch.Tensor, int], torch.Tensor]:
        """eps_theta(x_t, t) over the whole volume."""

        def denoise(x_t: torch.Tensor, t: int) -> torch.Tensor:
            def windows(batch: torch.Tensor) -> torch.Tensor:
                return self.unet(batch, torch.full((batch.shape[0],), float(t), device=batch.device))

            return evaluate_in_windows(windows, x_t, plan, self.settings.windows_per_batch)

        return denoise

    def _bridge_residual(self, plan: WindowPlan) -> Callable[[torch.Tensor], torch.Tensor]:
        """phi(x) over the whole volume."""
        return lambda x: evaluate_in_windows(self.bridge.residual, x, plan, self.settings.windows_per_batch)

    def enhance(self, volume: np.ndarray, on_level: LevelCallback | None = None) -> np.ndarray:
        """``volume``: (3, X, Y, Z) float32 in [-1, 1]; returns the same shape, float32."""
        s = self.settings
        x0_lf = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32))[None].to(self.device)
        plan = plan_windows(x0_lf.shape[2:], s.window, s.overlap, self.device)
        log.debug("window plan: %d windows of %s over %s", plan.num_windows, plan.window, plan.image_shape)
        generator = torch.Generator(self.device).manual_seed(s.seed)
        try:
            with torch.inference_mode(), self._autocast():
                result = sample(
                    x0_lf,
                    mode=s.mode,
                    denoiser=self._denoiser(plan) if self.unet is not None else None,
                    bridge_residual=self._bridge_residual(plan) if self.bridge is not None else None,
                    schedule=self.schedule,
                    generator=generator,
                    bridge_timestep=s.bridge_timestep,
                    refinements=s.refinements,
                    levels=s.levels,
                    variant=s.remove_noise,
                    on_level=on_level,
                )
        except torch.OutOfMemoryError:
            raise DeviceError(
                f"out of memory on {self.device} with {s.windows_per_batch} windows per batch of {s.window}; "
                "retry with a smaller --windows-per-batch"
            ) from None
        return result[0].float().cpu().numpy()
