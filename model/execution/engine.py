"""The execution engine: networks on a device, evaluated over whole volumes through windows (docs/speed.md).

Per volume, the window plans (the main grid, and the low-overlap grid of the early levels when asked
for) and the scratch buffers are made once; windows go through the networks in full batches of one
shape; the loop never waits on the device (random grid shifts are drawn on the host); an out-of-memory
error halves the windows per batch and retries; everything runs under ``torch.inference_mode`` (and
autocast in the resolved precision, :mod:`model.execution.precision`). What the engine computes is decided elsewhere
(:mod:`model.pipeline.enhancer`); how, by :class:`model.config.settings.EngineSettings`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..errors import DeviceError
from ..networks.bridge import BridgeResidual
from .onnx_backend import OnnxBridge, OnnxUNet, resolve_backend
from .plan import CasePlan
from .precision import inference, resolve_precision
from ..config.settings import EngineSettings
from .windows import (
    WindowBuffers,
    WindowFn,
    WindowPlan,
    evaluate_in_windows,
    first_batch,
    plan_windows,
    random_shift,
)

log = logging.getLogger(__name__)

# compile="auto" compiles on the CPU when a case puts at least this many windows through the U-Net:
# compilation takes about 1-2 minutes on the 2-core CPU of docs/speed.md and then saves seconds per window.
COMPILE_MIN_WINDOWS = 1000


# Windows per network call when the settings say 0 (auto). On a GPU a batch fills the device. On the CPU one
# window at a time is faster per window: a 128x128x32 window's full-resolution activations (16 MB in float32
# at width 8) stay in cache, four do not (measured on a 2-core AMD EPYC, one thread: 1.8 s per U-Net window
# alone against 2.3 s in batches of 4; docs/speed.md, "CPU").
AUTO_WINDOWS_PER_CALL = {"cpu": 1, "cuda": 4}


def windows_per_call(requested: int, device: torch.device) -> int:
    """``requested`` windows per network call, or for 0 (auto) the device's :data:`AUTO_WINDOWS_PER_CALL`."""
    return requested if requested >= 1 else AUTO_WINDOWS_PER_CALL.get(device.type, 4)


def is_out_of_memory(error: BaseException) -> bool:
    """A CUDA out-of-memory error, or the CPU allocator's (a plain RuntimeError: "can't allocate memory")."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    message = str(error)
    return isinstance(error, RuntimeError) and ("DefaultCPUAllocator" in message or "can't allocate memory" in message)


class CompiledNetwork:
    """``torch.compile`` of a network (inductor, frozen weights) that falls back to eager if compiling fails.

    Compilation happens at the first call (and again for a new input shape); inductor on the CPU
    needs a C++ compiler, which a slim container may lack: then one warning, and eager from there on.
    """

    def __init__(self, network: torch.nn.Module):
        self.eager = network
        self.compiled = torch.compile(network, dynamic=False, options={"freezing": True})
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


class CompiledBridge:
    """The bridge with its residual phi(x) (what the engine evaluates) compiled; anything else from the eager one."""

    def __init__(self, bridge: torch.nn.Module):
        self.eager = bridge
        self.residual = CompiledNetwork(BridgeResidual(bridge))

    def __getattr__(self, name: str):
        return getattr(self.eager, name)


@dataclass
class EvaluationCounts:
    """What a run cost: whole-volume evaluations and windows through each network (for logs and the bench)."""

    evaluations: int = 0  # whole-volume evaluations of eps_theta
    windows: int = 0  # windows through eps_theta (full batches, so including the filled-up ones)
    bridge_windows: int = 0
    early_evaluations: int = 0  # evaluations on the early (low-overlap, shifted) grid


@dataclass
class VolumePlans:
    """The window grids of one case's plan (:class:`model.execution.plan.CasePlan`) and its scratch buffers,
    made once and used by every evaluation of the case."""

    case: CasePlan
    grids: dict[float, WindowPlan]  # overlap -> grid: the main grid and the early one when the plan has it
    buffers: WindowBuffers = field(default_factory=WindowBuffers)

    @property
    def main(self) -> WindowPlan:
        """The main grid: the bridge's, and every level's without an early grid."""
        return self.grids[self.case.main_overlap]

    def for_level(self, level: int) -> WindowPlan:
        """The grid of diffusion level ``level``, as the plan says."""
        return self.grids[self.case.overlap_at(level)]


class WindowEngine:
    """The U-Net and the bridge (either may be None) on ``device``, evaluated as ``settings`` say."""

    def __init__(self, settings: EngineSettings, device: torch.device, unet: torch.nn.Module | None = None,
                 bridge: torch.nn.Module | None = None):
        self.settings, self.device = settings, device
        self.unet, self.bridge = unet, bridge
        self.windows_per_batch = windows_per_call(settings.windows_per_batch, device)  # lowered after out-of-memory
        self.backend = resolve_backend(settings.backend, device)
        self.precision = "float32" if self.backend == "onnxruntime" else resolve_precision(settings.precision, device)
        if self.precision != settings.precision:
            log.info("precision %s on %s%s: %s", settings.precision, device,
                     " with ONNX Runtime" if self.backend == "onnxruntime" else "", self.precision)
        if self.backend == "onnxruntime":
            self.unet = OnnxUNet(unet) if unet is not None else None
            self.bridge = OnnxBridge(bridge) if bridge is not None else None
        self.counts = EvaluationCounts()

    def reset_counts(self) -> None:
        """Start counting a new run (evaluators made afterwards count into the new counts)."""
        self.counts = EvaluationCounts()

    def wants_compile(self, case: CasePlan) -> bool:
        """The plan's ``compile`` setting: "on", or "auto" on the CPU for a case of at least COMPILE_MIN_WINDOWS
        U-Net windows."""
        compile_ = case.settings.engine.compile
        if self.unet is None or compile_ == "off" or self.backend == "onnxruntime":
            return False
        return compile_ == "on" or (self.device.type == "cpu" and case.unet_windows >= COMPILE_MIN_WINDOWS)

    def compile_networks(self, bridge_too: bool = False) -> None:
        """Wrap the U-Net (and with ``bridge_too`` the bridge's residual) in :class:`CompiledNetwork` (once; each
        compiles at its first evaluation). The bridge is compiled only when asked (``compile="on"``): it runs once
        per case, and its compilation (about a minute on the CPU) is repaid only on large cases."""
        if self.unet is not None and not isinstance(self.unet, CompiledNetwork):
            log.info("compiling the U-Net with torch.compile (the first evaluation includes it)")
            self.unet = CompiledNetwork(self.unet)
        if bridge_too and self.bridge is not None and not isinstance(self.bridge, CompiledBridge):
            log.info("compiling the bridge with torch.compile (its evaluation includes it)")
            self.bridge = CompiledBridge(self.bridge)

    def window_plans(self, case: CasePlan) -> VolumePlans:
        """The window grids of ``case`` (its main overlap and every overlap its levels use) on this device."""
        window = case.settings.engine.window
        overlaps = sorted(set(case.windows_by_overlap) | {case.main_overlap})
        return VolumePlans(case, {o: plan_windows(case.shape, window, o, self.device) for o in overlaps})

    def running(self) -> contextlib.AbstractContextManager:
        """``torch.inference_mode``, under autocast in the resolved precision (:mod:`model.execution.precision`)."""
        return inference(self.precision, self.device)

    def windows_per_second(self, x: torch.Tensor, plan: WindowPlan) -> tuple[float, float]:
        """The U-Net's and the bridge's measured throughput (windows per second; 0 for an absent network) on a
        batch of ``x``'s windows of ``plan``, on this device at this precision (call inside :meth:`running`).
        On CUDA, one warm-up call first (kernel selection), then a timed call of a full batch; on the CPU, where
        a window costs the same in any batch and the first call is no slower, one timed call of one window."""
        batch = first_batch(x, plan, 1 if self.device.type == "cpu" else self.windows_per_batch,
                            self.settings.channels_last)
        timesteps = torch.full((batch.shape[0],), 1.0, device=batch.device)
        calls = {"unet": (lambda: self.unet(batch, timesteps)) if self.unet is not None else None,
                 "bridge": (lambda: self.bridge.residual(batch)) if self.bridge is not None else None}
        rates = {}
        for name, call in calls.items():
            if call is None:
                rates[name] = 0.0
                continue
            if self.device.type == "cuda":
                call()
                torch.cuda.synchronize(self.device)
            started = time.perf_counter()
            call()
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            rates[name] = batch.shape[0] / max(time.perf_counter() - started, 1e-9)
        return rates["unet"], rates["bridge"]

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

    def denoiser(self, plans: VolumePlans, seed: int) -> Callable[[torch.Tensor, int], torch.Tensor]:
        """eps_theta(x_t, t) over the whole volume; early levels on the low-overlap grid, shifted at random
        (from ``seed`` and the evaluation's number)."""
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
            if plans.case.shifted(t):
                shift = random_shift(plan, seed, counts.evaluations)
                counts.early_evaluations += 1
            counts.evaluations += 1
            return self.evaluate(windows, x_t, plan, shift=shift, buffers=plans.buffers)

        return denoise

    def bridge_residual(self, plans: VolumePlans) -> Callable[[torch.Tensor], torch.Tensor]:
        """phi(x) over the whole volume, on the main grid."""
        counts = self.counts

        def windows(batch: torch.Tensor) -> torch.Tensor:
            counts.bridge_windows += batch.shape[0]
            return self.bridge.residual(batch)

        return lambda x: self.evaluate(windows, x, plans.main, buffers=plans.buffers)
