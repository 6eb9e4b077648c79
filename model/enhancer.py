"""The networks on a device, evaluated over whole volumes through windows, driving the sampler.

This is the fast engine (docs/speed.md): per volume, the window plans (the main grid, and the
low-overlap grid of the early levels when asked for) and the scratch buffers are made once; windows
go through the networks in full batches of one shape; the loop never waits on the device (random
grid shifts are drawn on the host, the only synchronisation is the optional early-stopping test,
once per refinement); everything runs under ``torch.inference_mode`` (and bf16 autocast on CUDA
when asked for).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from model.errors import DeviceError
from model.sampler import LevelCallback, sample
from model.schedule import cosine_schedule
from model.settings import SamplerSettings
from model.weights import load_network
from model.windows import WindowBuffers, WindowFn, WindowPlan, evaluate_in_windows, plan_windows, random_shift

log = logging.getLogger(__name__)

# compile="auto" compiles on the CPU when a case puts at least this many windows through the U-Net:
# compilation takes about 1-2 minutes on the 2-core CPU of docs/speed.md and then saves seconds per window.
COMPILE_MIN_WINDOWS = 1000


@dataclass
class EvaluationCounts:
    """What a run cost: whole-volume evaluations and windows through each network (for logs and the bench)."""

    evaluations: int = 0  # whole-volume evaluations of eps_theta
    windows: int = 0  # windows through eps_theta (full batches, so including the filled-up ones)
    bridge_windows: int = 0
    early_evaluations: int = 0  # evaluations on the early (low-overlap, shifted) grid


@dataclass
class VolumePlans:
    """The window plans and buffers of one volume, made once and used by every evaluation."""

    main: WindowPlan
    early: WindowPlan | None = None  # the low-overlap grid of the early levels
    early_above: int = 0  # levels t > early_above use ``early``
    buffers: WindowBuffers = field(default_factory=WindowBuffers)

    def for_level(self, level: int) -> WindowPlan:
        """The plan of diffusion level ``level``."""
        return self.early if self.early is not None and level > self.early_above else self.main


class CompiledNetwork:
    """``torch.compile`` of a network (inductor, frozen weights) that falls back to eager if compiling fails.

    Compilation happens at the first call (and again for a new input shape); inductor on the CPU
    needs a C++ compiler, which a slim container may lack: then one warning, and eager from there on.
    """

    def __init__(self, network: torch.nn.Module, mode: str | None = None):
        self.eager = network
        options = None if mode == "reduce-overhead" else {"freezing": True}
        self.compiled = torch.compile(network, mode=mode, dynamic=False, options=options)
        self.failed = False

    def __getattr__(self, name: str):
        return getattr(self.eager, name)

    def __call__(self, *args: torch.Tensor) -> torch.Tensor:
        if self.failed:
            return self.eager(*args)
        try:
            return self.compiled(*args)
        except Exception as error:  # noqa: BLE001 - inductor and its C++ toolchain fail in many ways
            if is_out_of_memory(error):
                raise
            self.failed = True
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            log.warning("torch.compile failed (%s); continuing without compilation", reason[:200])
            return self.eager(*args)


def is_out_of_memory(error: BaseException) -> bool:
    """A CUDA out-of-memory error, or the CPU allocator's (a plain RuntimeError: "can't allocate memory")."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    message = str(error)
    return isinstance(error, RuntimeError) and ("DefaultCPUAllocator" in message or "can't allocate memory" in message)


class RelativeChangeStop:
    """Early stopping of the J refinements: stop once ``|x0_new - x0_old| / |x0_old|`` < ``tolerance``.

    Called by the sampler after each refinement; one host synchronisation per call (the comparison).
    ``stops`` counts the levels cut short.
    """

    def __init__(self, tolerance: float):
        self.tolerance = tolerance
        self.stops = 0

    def __call__(self, previous: torch.Tensor, current: torch.Tensor, level: int) -> bool:
        change = torch.linalg.vector_norm(current.float() - previous.float())
        scale = torch.linalg.vector_norm(previous.float()).clamp_min(torch.finfo(torch.float32).tiny)
        settled = bool(change / scale < self.tolerance)
        self.stops += settled
        return settled


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
        self.counts = EvaluationCounts()  # of the last enhance()

    @property
    def network_names(self) -> tuple[str, ...]:
        """Manifest names of the networks this mode loaded."""
        return tuple(n for n, net in (("diffusion", self.unet), ("bridge", self.bridge)) if net is not None)

    def autocast(self):
        """bf16 autocast on CUDA when asked for; otherwise a no-op."""
        if self.settings.precision == "bfloat16" and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def plans_for(self, shape: tuple[int, ...]) -> VolumePlans:
        """The window plans of a volume of ``shape`` (x, y, z), computed once per volume; compiles the
        U-Net first when the settings ask for it and the case is long enough (``compile="auto"``)."""
        s = self.settings
        plans = VolumePlans(plan_windows(shape, s.window, s.overlap, self.device))
        if s.mode.uses_diffusion and s.uses_early_grid:
            plans.early = plan_windows(shape, s.window, s.early_overlap, self.device)
            plans.early_above = s.early_levels_above
        if self.unet is not None and not isinstance(self.unet, CompiledNetwork) and self._should_compile(plans):
            log.info("compiling the U-Net with torch.compile (the first evaluation includes it)")
            self.unet = CompiledNetwork(self.unet, "reduce-overhead" if s.cuda_graphs else None)
        return plans

    def _should_compile(self, plans: VolumePlans) -> bool:
        """``compile``: "on", or "auto" on the CPU for at least COMPILE_MIN_WINDOWS U-Net windows per case."""
        s = self.settings
        if s.compile == "off":
            return False
        if s.compile == "on":
            return True
        windows = sum(s.refinements * plans.for_level(level).num_windows for level in s.levels)
        return self.device.type == "cpu" and windows >= COMPILE_MIN_WINDOWS

    def evaluate(self, fn: WindowFn, x: torch.Tensor, plan: WindowPlan, *, shift=None,
                 buffers: WindowBuffers | None = None) -> torch.Tensor:
        """One whole-volume evaluation; on out-of-memory, retry with half as many windows per batch."""
        while True:
            try:
                return evaluate_in_windows(fn, x, plan, self.windows_per_batch, shift=shift, buffers=buffers,
                                           channels_last=self.settings.channels_last)
            except (torch.OutOfMemoryError, RuntimeError) as error:
                if not is_out_of_memory(error):
                    raise
                if self.windows_per_batch == 1:
                    raise DeviceError(
                        f"out of memory on {self.device} even with one {self.settings.window} window per batch; "
                        "use a smaller --window or a larger device"
                    ) from None
                self.windows_per_batch = max(1, self.windows_per_batch // 2)
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                log.warning("out of memory on %s: retrying with %d windows per batch", self.device, self.windows_per_batch)

    def denoiser(self, plans: VolumePlans) -> Callable[[torch.Tensor, int], torch.Tensor]:
        """eps_theta(x_t, t) over the whole volume; early levels on the shifted low-overlap grid."""
        counts = self.counts

        def denoise(x_t: torch.Tensor, t: int) -> torch.Tensor:
            timesteps: dict[int, torch.Tensor] = {}  # per batch size, made once per evaluation

            def windows(batch: torch.Tensor) -> torch.Tensor:
                n = batch.shape[0]
                if n not in timesteps:
                    timesteps[n] = torch.full((n,), float(t), device=batch.device)
                counts.windows += n
                return self.unet(batch, timesteps[n])

            plan, shift = plans.for_level(t), None
            if plan is not plans.main:
                shift = random_shift(plan, self.settings.seed, counts.evaluations)
                counts.early_evaluations += 1
            counts.evaluations += 1
            return self.evaluate(windows, x_t, plan, shift=shift, buffers=plans.buffers)

        return denoise

    def bridge_residual(self, plans: VolumePlans) -> Callable[[torch.Tensor], torch.Tensor]:
        """phi(x) over the whole volume, logged with its time."""
        counts = self.counts

        def windows(batch: torch.Tensor) -> torch.Tensor:
            counts.bridge_windows += batch.shape[0]
            return self.bridge.residual(batch)

        def bridge(x: torch.Tensor) -> torch.Tensor:
            started = time.perf_counter()
            residual = self.evaluate(windows, x, plans.main, buffers=plans.buffers)
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
        plans = self.plans_for(tuple(x0_lf.shape[2:]))
        log.info("%d windows of %s per whole-volume evaluation of %s", plans.main.num_windows, plans.main.window,
                 plans.main.image_shape)
        if plans.early is not None:
            log.info("levels above %d: overlap %.2f, %d windows, grid shifted at random per evaluation",
                     plans.early_above, s.early_overlap, plans.early.num_windows)
        self.counts = EvaluationCounts()
        generator = torch.Generator(self.device).manual_seed(s.seed)
        with torch.inference_mode(), self.autocast():
            result = sample(
                x0_lf,
                mode=s.mode,
                denoiser=self.denoiser(plans) if self.unet is not None else None,
                bridge_residual=self.bridge_residual(plans) if self.bridge is not None else None,
                schedule=self.schedule,
                generator=generator,
                bridge_timestep=s.bridge_timestep,
                refinements=s.refinements,
                levels=s.levels,
                variant=s.remove_noise,
                on_level=self._level_logger(on_level),
                **self._early_stopping(),
            )
        log.info("%d whole-volume evaluations (%d on the early grid), %d windows", self.counts.evaluations,
                 self.counts.early_evaluations, self.counts.windows)
        return result[0].float().cpu().numpy()

    def _early_stopping(self) -> dict:
        """``stop_refining=`` for the sampler when ``refine_tolerance`` asks for early stopping."""
        s = self.settings
        if s.refine_tolerance <= 0 or s.refinements == 1 or not s.mode.uses_diffusion:
            return {}
        return {"stop_refining": RelativeChangeStop(s.refine_tolerance)}
