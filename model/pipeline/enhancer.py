"""The enhancement pipeline: frozen networks and settings turn a normalised low-field volume into a
pseudo high-field one (Algorithm 1, :func:`model.method.sampler.sample`), evaluated by :mod:`model.execution.engine`."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config.settings import SamplerSettings
from ..execution.budget import BudgetChoice, ChainDeadline, Throughput, choose_settings
from ..execution.engine import EvaluationCounts, VolumePlans, WindowEngine
from ..execution.plan import CasePlan, plan_case
from ..method.sampler import EstimateCallback, LevelCallback, Mode
from ..method.sampler import SAMPLERS, Hooks, Networks, Steps
from ..method.schedule import NoiseSchedule, cosine_schedule
from ..networks import NETWORK_NAMES
from ..weights.calibration import ladder_for, levels_outside_training, load_calibration
from ..weights.manifest import load_network, load_schedule

log = logging.getLogger(__name__)


def warn_outside_training(settings: SamplerSettings, weights_dir: Path | None) -> None:
    """A warning when K or the chain's levels lie outside the timesteps the networks were trained on (the
    command line refuses such settings unless forced: :func:`model.weights.calibration.check_trained_levels`)."""
    for phrase in levels_outside_training(settings, weights_dir):
        log.warning("these settings evaluate %s, in the weights %s: outside it, expect a worse result", phrase, weights_dir)


@dataclass(frozen=True)
class Enhancement:
    """What :meth:`Enhancer.enhance` made, and what it ran to make it."""

    volume: np.ndarray  # (3, X, Y, Z) float32, normalised as the input
    plan: CasePlan  # what ran: the settings after a time budget's choice, the chain as far as a deadline let it go
    budget: BudgetChoice | None  # the time budget's choice (None: no deadline)
    counts: EvaluationCounts  # whole-volume evaluations and windows through each network

    @property
    def settings(self) -> SamplerSettings:
        """The settings that ran."""
        return self.plan.settings


class Enhancer:
    """The networks a mode needs, the schedule they were trained with, and the engine that evaluates them.

    ``Enhancer(settings, weights_dir, device)`` loads the networks from a weights folder;
    :meth:`from_networks` takes networks already loaded (a benchmark sharing one U-Net among runs, a test)."""

    def __init__(self, settings: SamplerSettings, weights_dir: Path | None, device: torch.device):
        mode = settings.algorithm.mode
        schedule = cosine_schedule() if mode is Mode.IDENTITY else load_schedule(weights_dir)
        self._assemble(settings, device, schedule, weights_dir,
                       unet=load_network(weights_dir, "diffusion", device) if mode.uses_diffusion else None,
                       bridge=load_network(weights_dir, "bridge", device) if mode.uses_bridge else None)

    @classmethod
    def from_networks(cls, settings: SamplerSettings, device: torch.device, schedule: NoiseSchedule, *,
                      unet: torch.nn.Module | None = None, bridge: torch.nn.Module | None = None,
                      weights_dir: Path | None = None) -> "Enhancer":
        """An enhancer of networks already on ``device`` (``weights_dir``: where they came from, for the trained-
        level warning, the calibrated ladder of a time budget and run records; None: unknown)."""
        enhancer = cls.__new__(cls)
        enhancer._assemble(settings, device, schedule, weights_dir, unet=unet, bridge=bridge)
        return enhancer

    def _assemble(self, settings: SamplerSettings, device: torch.device, schedule: NoiseSchedule,
                  weights_dir: Path | None, *, unet: torch.nn.Module | None, bridge: torch.nn.Module | None) -> None:
        mode = settings.algorithm.mode
        if mode.uses_diffusion and unet is None or mode.uses_bridge and bridge is None:
            raise ValueError(f"mode '{mode.value}' needs the {'diffusion' if unet is None else 'bridge'} network")
        settings.algorithm.check_against(schedule)
        self.settings, self.device, self.schedule, self.weights_dir = settings, device, schedule, weights_dir
        self._ladder: list[tuple[str, SamplerSettings]] | None = None  # the planner's fallbacks (plan_to)
        warn_outside_training(settings, weights_dir)
        self.engine = WindowEngine(settings.engine, device, unet=unet if mode.uses_diffusion else None,
                                   bridge=bridge if mode.uses_bridge else None)

    @property
    def network_names(self) -> tuple[str, ...]:
        """Manifest names of the networks this mode loaded."""
        loaded = {"diffusion": self.engine.unet, "bridge": self.engine.bridge}
        return tuple(name for name in NETWORK_NAMES if loaded[name] is not None)

    @property
    def precision(self) -> str:
        """The networks' arithmetic, resolved for the device."""
        return self.engine.precision

    @property
    def windows_per_call(self) -> int:
        """Windows per network call (lowered after an out-of-memory error)."""
        return self.engine.windows_per_batch

    def plan(self, shape: tuple[int, ...], settings: SamplerSettings | None = None) -> CasePlan:
        """The plan of a volume of ``shape`` (x, y, z) with ``settings`` (default: the enhancer's)."""
        return plan_case(settings or self.settings, shape, self.schedule)

    def prepare(self, case: CasePlan) -> VolumePlans:
        """The window grids of ``case``; compiles the U-Net first when the plan asks for it (``compile="auto"``:
        a case long enough to repay it)."""
        if self.engine.wants_compile(case):
            self.engine.compile_unet()
        return self.engine.window_plans(case)

    def choose_to(self, deadline: float, x0_lf: torch.Tensor) -> tuple[BudgetChoice, ChainDeadline | None]:
        """The configuration that fits until ``deadline`` (``time.monotonic``) on this volume, from the networks'
        throughput measured on it (:mod:`model.execution.budget`), and the chain's deadline."""
        shape = tuple(x0_lf.shape[2:])
        with self.engine.running():
            rates = Throughput(*self.engine.windows_per_second(x0_lf, self.engine.window_plans(self.plan(shape)).main))
        if self._ladder is None:  # the weights' calibrated fallbacks, read once for every case
            self._ladder = ladder_for(self.settings, load_calibration(self.weights_dir), self.weights_dir)
        choice = choose_settings(self.settings, shape, rates, deadline - time.monotonic(), self._ladder, self.schedule)
        log.log(logging.INFO if choice.fits else logging.WARNING, "time budget: %s", choice.describe())
        log.info("time budget: measured %.3g U-Net and %.3g bridge windows per second on %s",
                 rates.unet, rates.bridge, self.device)
        if not choice.plan.levels:
            return choice, None
        per_level = (choice.plan.unet_windows / len(choice.plan.levels)) / rates.unet
        return choice, ChainDeadline(deadline, per_level)

    def enhance(self, volume: np.ndarray, on_level: LevelCallback | None = None, *,
                deadline: float | None = None, on_estimate: EstimateCallback | None = None) -> Enhancement:
        """``volume``: (3, X, Y, Z) float32 in [-1, 1]; returns the enhanced volume (same shape, float32) and the
        plan it ran. With ``deadline`` (``time.monotonic``), the configuration is chosen to finish by then
        (:meth:`choose_to`). ``on_estimate``: the sampler's hook for QC reports
        (:data:`model.method.sampler.EstimateCallback`)."""
        x0_lf = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32))[None].to(self.device)
        choice, chain_deadline = None, None
        if deadline is not None:
            choice, chain_deadline = self.choose_to(deadline, x0_lf)
        case = choice.plan if choice is not None else self.plan(tuple(x0_lf.shape[2:]))
        result = self._sample(x0_lf, case, on_level, chain_deadline, on_estimate)
        if chain_deadline is not None and chain_deadline.stopped_at is not None:
            done = len(chain_deadline.level_starts)
            log.warning("time budget: the chain ended before level %d, %d of %d levels done",
                        chain_deadline.stopped_at, done, len(case.levels))
            case = case.truncated(done)
        return Enhancement(result, case, choice, self.engine.counts)

    def _sample(self, x0_lf: torch.Tensor, case: CasePlan, on_level: LevelCallback | None,
                keep_going: ChainDeadline | None, on_estimate: EstimateCallback | None) -> np.ndarray:
        a, engine = case.settings.algorithm, self.engine
        plans = self.prepare(case)
        log_plans(plans)
        engine.reset_counts()
        networks = Networks(
            denoiser=engine.denoiser(plans, a.seed) if engine.unet is not None else None,
            bridge_residual=timed(engine.bridge_residual(plans), "bridged") if engine.bridge is not None else None)
        hooks = Hooks(on_level=level_logger(on_level), keep_going=keep_going, on_estimate=on_estimate)
        with engine.running():
            result = SAMPLERS[a.sampler](x0_lf, networks, self.schedule, torch.Generator(self.device).manual_seed(a.seed),
                                         Steps.of(a, case.levels), hooks)
        log.info("%d whole-volume evaluations (%d on the early grid), %d windows", engine.counts.evaluations,
                 engine.counts.early_evaluations, engine.counts.windows)
        return result[0].float().cpu().numpy()


def log_plans(plans: VolumePlans) -> None:
    """One line per window grid."""
    log.info("%d windows of %s per whole-volume evaluation of %s", plans.main.num_windows, plans.main.window,
             plans.main.image_shape)
    shifted = [level for level in plans.case.levels if plans.case.shifted(level)]
    if shifted:
        grid = plans.for_level(shifted[0])
        log.info("levels %d..%d: overlap %.2f, %d windows, grid shifted at random per evaluation",
                 shifted[0], shifted[-1], grid.overlap, grid.num_windows)


def timed(fn, what: str):
    """``fn`` logged with its time."""
    def run(*args):
        started = time.perf_counter()
        result = fn(*args)
        log.info("%s in %.1f s", what, time.perf_counter() - started)
        return result

    return run


def level_logger(on_level: LevelCallback | None) -> LevelCallback:
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
