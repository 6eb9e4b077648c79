"""The enhancement pipeline: frozen networks and settings turn a normalised low-field volume into a
pseudo high-field one (Algorithm 1, :func:`model.method.sampler.sample`), evaluated by :mod:`model.execution.engine`."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
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
from ..volumes.head_box import AIR, Box, crop, head_box, paste
from ..volumes.intensity import OUTPUT_CEILING
from ..weights.calibration import ladder_for, levels_outside_training, load_calibration
from ..weights.manifest import load_network, load_output_remap, load_schedule

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
    spread: np.ndarray | None = None  # (3, X, Y, Z) per-voxel standard deviation of the samples; None for one sample
    box: Box | None = None  # head_crop: the head's box the networks ran on (the plan's shape); None: the whole volume

    @property
    def settings(self) -> SamplerSettings:
        """The settings that ran."""
        return self.plan.settings


class Enhancer:
    """The networks a mode needs, the schedule they were trained with, and the engine that evaluates them.

    ``Enhancer(settings, weights_dir, device)`` loads the networks from a weights folder;
    :meth:`from_networks` takes networks already loaded (a benchmark sharing one U-Net among runs, a test)."""

    def __init__(self, settings: SamplerSettings, weights_dir: Path | None, device: torch.device, *,
                 weights_decide: bool = False):
        mode = settings.algorithm.mode
        schedule = cosine_schedule() if mode is Mode.IDENTITY else load_schedule(weights_dir)
        self._assemble(settings, device, schedule, weights_dir,
                       unet=load_network(weights_dir, "diffusion", device) if mode.uses_diffusion else None,
                       bridge=load_network(weights_dir, "bridge", device) if mode.uses_bridge else None,
                       weights_decide=weights_decide)

    @classmethod
    def from_networks(cls, settings: SamplerSettings, device: torch.device, schedule: NoiseSchedule, *,
                      unet: torch.nn.Module | None = None, bridge: torch.nn.Module | None = None,
                      weights_dir: Path | None = None, weights_decide: bool = False) -> "Enhancer":
        """An enhancer of networks already on ``device`` (``weights_dir``: where they came from, for the trained-
        level warning, the calibrated ladder of a time budget and run records; None: unknown)."""
        enhancer = cls.__new__(cls)
        enhancer._assemble(settings, device, schedule, weights_dir, unet=unet, bridge=bridge,
                           weights_decide=weights_decide)
        return enhancer

    def _assemble(self, settings: SamplerSettings, device: torch.device, schedule: NoiseSchedule,
                  weights_dir: Path | None, *, unet: torch.nn.Module | None, bridge: torch.nn.Module | None,
                  weights_decide: bool) -> None:
        mode = settings.algorithm.mode
        if mode.uses_diffusion and unet is None or mode.uses_bridge and bridge is None:
            raise ValueError(f"mode '{mode.value}' needs the {'diffusion' if unet is None else 'bridge'} network")
        settings.algorithm.check_against(schedule)
        self.settings, self.device, self.schedule, self.weights_dir = settings, device, schedule, weights_dir
        # the weights' output remap, applied to each sample of a full run (mode full, ``output_remap`` on)
        self.remap = load_output_remap(weights_dir) if mode is Mode.FULL and settings.algorithm.output_remap else None
        self._ladder: list[tuple[str, SamplerSettings]] | None = None  # the planner's fallbacks (choose_to)
        # --preset auto with nothing the calibration sets changed: under a time budget the calibrated ladder decides
        self.weights_decide = weights_decide
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
            self.engine.compile_networks(bridge_too=case.settings.engine.compile == "on")
        return self.engine.window_plans(case)

    def choose_to(self, deadline: float, x0_lf: torch.Tensor) -> tuple[BudgetChoice, ChainDeadline | None]:
        """The configuration that fits until ``deadline`` (``time.monotonic``) on this volume, from the networks'
        throughput measured on it (:mod:`model.execution.budget`), and the chain's deadline."""
        shape = tuple(x0_lf.shape[2:])
        with self.engine.running():
            rates = Throughput(*self.engine.windows_per_second(x0_lf, self.engine.window_plans(self.plan(shape)).main))
        if self._ladder is None:  # the weights' calibrated fallbacks, read once for every case
            self._ladder = ladder_for(self.settings, load_calibration(self.weights_dir), self.weights_dir)
        choice = choose_settings(self.settings, shape, rates, deadline - time.monotonic(), self._ladder, self.schedule,
                                 ladder_first=self.weights_decide)
        log.log(logging.INFO if choice.fits else logging.WARNING, "time budget: %s", choice.describe())
        log.info("time budget: measured %.3g U-Net and %.3g bridge windows per second on %s",
                 rates.unet, rates.bridge, self.device)
        if not choice.plan.levels:
            return choice, None
        per_level = (choice.plan.unet_windows / choice.plan.samples / len(choice.plan.levels)) / rates.unet
        return choice, ChainDeadline(deadline, per_level)

    def enhance(self, volume: np.ndarray, on_level: LevelCallback | None = None, *,
                deadline: float | None = None, on_estimate: EstimateCallback | None = None) -> Enhancement:
        """``volume``: (3, X, Y, Z) float32 in [-1, 1]; returns the enhanced volume (same shape, float32) and the
        plan it ran. With ``samples`` N > 1 in the settings, the sampler runs N times with the seeds seed, seed + 1,
        ...; the volume is their mean and ``spread`` their per-voxel standard deviation (docs/uncertainty.md).
        With ``deadline`` (``time.monotonic``), the configuration is chosen to finish by then (:meth:`choose_to`),
        and a sample that would not finish in time is not begun. ``on_estimate``: the sampler's hook for QC
        reports (:data:`model.method.sampler.EstimateCallback`), for the first sample. With ``head_crop`` on, all of
        this runs on the head's box (:mod:`model.volumes.head_box`) and the air around it is :data:`AIR` (spread 0)."""
        crops = self.settings.engine.head_crop == "on" and self.settings.algorithm.mode is not Mode.IDENTITY
        box = head_box(volume, self.settings.engine.window) if crops else None
        if box is None:
            return self._enhance(volume, on_level, deadline, on_estimate)
        shape = volume.shape[1:]
        log.info("head box %s of %s: the networks run on %s", [list(axis) for axis in box], shape,
                 tuple(b - a for a, b in box))
        inner = self._enhance(crop(volume, box), on_level, deadline, on_estimate)
        return replace(inner, volume=paste(inner.volume, box, shape, AIR), box=box,
                       spread=None if inner.spread is None else paste(inner.spread, box, shape, 0.0))

    def _enhance(self, volume: np.ndarray, on_level: LevelCallback | None, deadline: float | None,
                 on_estimate: EstimateCallback | None) -> Enhancement:
        """:meth:`enhance` of the volume the networks see."""
        x0_lf = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32))[None].to(self.device)
        choice, chain_deadline = None, None
        if deadline is not None:
            choice, chain_deadline = self.choose_to(deadline, x0_lf)
        case = choice.plan if choice is not None else self.plan(tuple(x0_lf.shape[2:]))
        plans = self.prepare(case)
        log_plans(plans)
        self.engine.reset_counts()
        a, samples = case.settings.algorithm, SampleStatistics()
        started = time.monotonic()
        for index in range(a.samples):
            if index and deadline is not None and time.monotonic() + (time.monotonic() - started) / index > deadline:
                log.warning("time budget: %d of %d samples done, the next would not end in time", index, a.samples)
                break
            progress = None if on_level is None else (
                lambda done, total, i=index: on_level(i * total + done, a.samples * total))
            sample = self._sample(x0_lf, case, plans, (a.seed + index) % 2**64, progress,
                                  chain_deadline if index == 0 else None, on_estimate if index == 0 else None)
            samples.add(sample if self.remap is None or not case.settings.algorithm.output_remap
                        or case.settings.algorithm.mode is not Mode.FULL else self.remap.apply(sample))
            if index == 0 and chain_deadline is not None and chain_deadline.stopped_at is not None:
                done = len(chain_deadline.level_starts)
                log.warning("time budget: the chain ended before level %d, %d of %d levels done",
                            chain_deadline.stopped_at, done, len(case.levels))
                case = case.truncated(done)
                break
        if samples.count < a.samples:
            case = case.with_samples(samples.count)
        log.info("%d whole-volume evaluations (%d on the early grid), %d windows", self.engine.counts.evaluations,
                 self.engine.counts.early_evaluations, self.engine.counts.windows)
        return Enhancement(samples.mean, case, choice, self.engine.counts, samples.std)

    def _sample(self, x0_lf: torch.Tensor, case: CasePlan, plans: VolumePlans, seed: int,
                on_level: LevelCallback | None, keep_going: ChainDeadline | None,
                on_estimate: EstimateCallback | None) -> np.ndarray:
        """One run of the settings' sampler with ``seed`` (the noise, and the early grid's random shifts)."""
        a, engine = case.settings.algorithm, self.engine
        networks = Networks(
            denoiser=engine.denoiser(plans, seed) if engine.unet is not None else None,
            bridge_residual=timed(engine.bridge_residual(plans), "bridged") if engine.bridge is not None else None)
        hooks = Hooks(on_level=level_logger(on_level), keep_going=keep_going, on_estimate=on_estimate)
        with engine.running():
            result = SAMPLERS[a.sampler](x0_lf, networks, self.schedule, torch.Generator(self.device).manual_seed(seed),
                                         Steps.of(a, case.levels), hooks)
        return result[0].float().cpu().numpy()


class SampleStatistics:
    """The running mean and standard deviation of samples (Welford's update, float32), each first clipped to the
    range an output is clipped to (so the mean and spread are those of the outputs a single run would write).
    One sample is kept as it is: its mean is itself and it has no spread."""

    def __init__(self):
        self.count, self.mean, self._m2 = 0, None, None

    def add(self, sample: np.ndarray) -> None:
        self.count += 1
        if self.count == 1:
            self.mean = sample
            return
        if self.count == 2:
            self.mean = np.clip(self.mean, -1.0, OUTPUT_CEILING)
            self._m2 = np.zeros_like(self.mean)
        sample = np.clip(sample, -1.0, OUTPUT_CEILING)
        delta = sample - self.mean
        self.mean = self.mean + delta / self.count
        self._m2 += delta * (sample - self.mean)

    @property
    def std(self) -> np.ndarray | None:
        """The per-voxel standard deviation of the samples (ddof 1), in network units; None for one sample."""
        return None if self.count < 2 else np.sqrt(self._m2 / (self.count - 1)).astype(np.float32)


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
