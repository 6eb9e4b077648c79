"""The networks on a device, evaluated over whole volumes through windows, driving the sampler."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from model.errors import DeviceError
from model.sampler import LevelCallback, sample
from model.schedule import cosine_schedule
from model.settings import SamplerSettings
from model.weights import load_network
from model.windows import WindowFn, WindowPlan, evaluate_in_windows, plan_windows

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
        self.windows_per_batch = settings.windows_per_batch  # lowered after an out-of-memory error

    @property
    def network_names(self) -> tuple[str, ...]:
        """Manifest names of the networks this mode loaded."""
        return tuple(n for n, net in (("diffusion", self.unet), ("bridge", self.bridge)) if net is not None)

    def _autocast(self):
        """bf16 autocast on CUDA when asked for; otherwise a no-op."""
        if self.settings.precision == "bfloat16" and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def evaluate(self, fn: WindowFn, x: torch.Tensor, plan: WindowPlan) -> torch.Tensor:
        """One whole-volume evaluation; on out-of-memory, retry with half as many windows per batch."""
        while True:
            try:
                return evaluate_in_windows(fn, x, plan, self.windows_per_batch)
            except torch.OutOfMemoryError:
                if self.windows_per_batch == 1:
                    raise DeviceError(
                        f"out of memory on {self.device} even with one {self.settings.window} window per batch; "
                        "use a smaller --window or a larger device"
                    ) from None
                self.windows_per_batch = max(1, self.windows_per_batch // 2)
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                log.warning("out of memory on %s: retrying with %d windows per batch", self.device, self.windows_per_batch)

    def _denoiser(self, plan: WindowPlan) -> Callable[[torch.Tensor, int], torch.Tensor]:
        """eps_theta(x_t, t) over the whole volume."""

        def denoise(x_t: torch.Tensor, t: int) -> torch.Tensor:
            def windows(batch: torch.Tensor) -> torch.Tensor:
                return self.unet(batch, torch.full((batch.shape[0],), float(t), device=batch.device))

            return self.evaluate(windows, x_t, plan)

        return denoise

    def _bridge_residual(self, plan: WindowPlan) -> Callable[[torch.Tensor], torch.Tensor]:
        """phi(x) over the whole volume, logged with its time."""

        def bridge(x: torch.Tensor) -> torch.Tensor:
            started = time.perf_counter()
            residual = self.evaluate(self.bridge.residual, x, plan)
            log.info("bridged at K=%d in %.1f s", self.settings.bridge_timestep, time.perf_counter() - started)
            return residual

        return bridge

    def _level_logger(self, on_level: LevelCallback | None) -> LevelCallback:
        """Log 'level i/K' (every level at debug, about every tenth at info) and pass it on."""
        started = time.perf_counter()

        def log_level(done: int, total: int) -> None:
            elapsed = time.perf_counter() - started
            level = logging.INFO if done == total or done % max(1, total // 10) == 0 else logging.DEBUG
            log.log(level, "level %d/%d done, %.1f s elapsed, about %.0f s left", done, total, elapsed,
                    elapsed / done * (total - done))
            if on_level is not None:
                on_level(done, total)

        return log_level

    def enhance(self, volume: np.ndarray, on_level: LevelCallback | None = None) -> np.ndarray:
        """``volume``: (3, X, Y, Z) float32 in [-1, 1]; returns the same shape, float32."""
        s = self.settings
        x0_lf = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32))[None].to(self.device)
        plan = plan_windows(x0_lf.shape[2:], s.window, s.overlap, self.device)
        log.info("%d windows of %s per whole-volume evaluation of %s", plan.num_windows, plan.window, plan.image_shape)
        generator = torch.Generator(self.device).manual_seed(s.seed)
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
                on_level=self._level_logger(on_level),
            )
        return result[0].float().cpu().numpy()
