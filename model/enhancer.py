"""The enhancement pipeline: frozen networks and settings turn a normalised low-field volume into a
pseudo high-field one (Algorithm 1, :func:`model.sampler.sample`), evaluated by :mod:`model.engine`."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from model.budget import ChainDeadline, Plan, Throughput, plan_case
from model.calibration import ladder_for, levels_outside_training, load_calibration
from model.cost import case_cost
from model.engine import VolumePlans, WindowEngine
from model.sampler import EstimateCallback, LevelCallback, Mode, sample
from model.schedule import cosine_schedule
from model.settings import SamplerSettings
from model.weights import load_network, load_schedule

log = logging.getLogger(__name__)


def warn_outside_training(settings: SamplerSettings, weights_dir: Path | None) -> None:
    """A warning when K or the chain's levels lie outside the timesteps the networks were trained on (the
    command line refuses such settings unless forced: :func:`model.calibration.check_trained_levels`)."""
    for phrase in levels_outside_training(settings, weights_dir):
        log.warning("these settings evaluate %s, in the weights %s: outside it, expect a worse result", phrase, weights_dir)


class Enhancer:
    """The networks a mode needs, the schedule they were trained with, and the engine that evaluates them."""

    def __init__(self, settings: SamplerSettings, weights_dir: Path | None, device: torch.device):
        mode = settings.algorithm.mode
        self.settings, self.device = settings, device
        self.weights_dir = weights_dir
        self.last_plan: Plan | None = None  # what the last enhance() under a deadline chose
        self.last_settings: SamplerSettings = settings  # what the last enhance() ran (a deadline may end the chain early)
        self._ladder: list[tuple[str, SamplerSettings]] | None = None  # the planner's fallbacks (plan_to)
        self.schedule = cosine_schedule() if mode is Mode.IDENTITY else load_schedule(weights_dir)
        settings.algorithm.check_against(self.schedule)
        warn_outside_training(settings, weights_dir)
        self.engine = WindowEngine(
            settings.engine, device,
            unet=load_network(weights_dir, "diffusion", device) if mode.uses_diffusion else None,
            bridge=load_network(weights_dir, "bridge", device) if mode.uses_bridge else None,
        )

    @property
    def network_names(self) -> tuple[str, ...]:
        """Manifest names of the networks this mode loaded."""
        return tuple(n for n, net in (("diffusion", self.engine.unet), ("bridge", self.engine.bridge)) if net is not None)

    @property
    def counts(self):
        """What the last :meth:`enhance` cost (:class:`model.engine.EvaluationCounts`)."""
        return self.engine.counts

    def prepare(self, shape: tuple[int, ...], settings: SamplerSettings | None = None) -> VolumePlans:
        """The window plans of a volume of ``shape`` (x, y, z) for ``settings`` (default: the enhancer's);
        compiles the U-Net first when they ask for it and the case is long enough (``compile="auto"``)."""
        settings = settings or self.settings
        if self.engine.wants_compile(case_cost(shape, settings).unet_windows, settings.engine):
            self.engine.compile_unet()
        return self.engine.plans_for(shape, settings.early_levels_above if settings.uses_early_grid else None,
                                     settings.engine)

    def plan_to(self, deadline: float, x0_lf: torch.Tensor) -> tuple[SamplerSettings, ChainDeadline | None]:
        """The settings that fit until ``deadline`` (``time.monotonic``) on this volume, from the networks'
        throughput measured on it (:mod:`model.budget`), and the chain's deadline."""
        shape = tuple(x0_lf.shape[2:])
        with self.engine.running():
            rates = Throughput(*self.engine.windows_per_second(x0_lf, self.engine.plans_for(shape).main))
        if self._ladder is None:  # the weights' calibrated fallbacks, read once for every case
            self._ladder = ladder_for(self.settings, load_calibration(self.weights_dir), self.weights_dir)
        plan = plan_case(self.settings, shape, rates, deadline - time.monotonic(), self._ladder)
        self.last_plan = plan
        log.log(logging.INFO if plan.fits else logging.WARNING, "time budget: %s", plan.describe())
        log.info("time budget: measured %.3g U-Net and %.3g bridge windows per second on %s",
                 rates.unet, rates.bridge, self.device)
        levels = plan.settings.algorithm.level_count if plan.settings.algorithm.mode.uses_diffusion else 0
        if not levels:
            return plan.settings, None
        per_level = (case_cost(shape, plan.settings).unet_windows / levels) / rates.unet
        return plan.settings, ChainDeadline(deadline, per_level)

    def enhance(self, volume: np.ndarray, on_level: LevelCallback | None = None, *,
                deadline: float | None = None, on_estimate: EstimateCallback | None = None) -> np.ndarray:
        """``volume``: (3, X, Y, Z) float32 in [-1, 1]; returns the same shape, float32. With ``deadline``
        (``time.monotonic``), the configuration is planned to finish by then (:meth:`plan_to`). ``on_estimate``:
        the sampler's hook for QC reports (:data:`model.sampler.EstimateCallback`)."""
        x0_lf = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32))[None].to(self.device)
        settings, chain_deadline = self.settings, None
        self.last_plan = None
        if deadline is not None:
            settings, chain_deadline = self.plan_to(deadline, x0_lf)
        result = self._sample(x0_lf, settings, on_level, chain_deadline, on_estimate)
        if chain_deadline is not None and chain_deadline.stopped_at is not None:
            done = len(chain_deadline.level_starts)
            log.warning("time budget: the chain ended before level %d, %d of %d levels done",
                        chain_deadline.stopped_at, done, settings.algorithm.level_count)
            settings = settings.updated(chain_levels=settings.algorithm.visited_levels()[:done]) if done else \
                settings.updated(mode="bridge", chain_levels=())
        self.last_settings = settings
        return result

    def _sample(self, x0_lf: torch.Tensor, settings: SamplerSettings, on_level: LevelCallback | None,
                keep_going: ChainDeadline | None, on_estimate: EstimateCallback | None = None) -> np.ndarray:
        a, engine = settings.algorithm, self.engine
        plans = self.prepare(tuple(x0_lf.shape[2:]), settings)
        log_plans(plans, settings.engine.early_overlap)
        engine.reset_counts()
        with engine.running():
            result = sample(
                x0_lf,
                mode=a.mode,
                denoiser=engine.denoiser(plans, a.seed) if engine.unet is not None else None,
                bridge_residual=timed(engine.bridge_residual(plans), "bridged") if engine.bridge is not None else None,
                schedule=self.schedule,
                generator=torch.Generator(self.device).manual_seed(a.seed),
                bridge_timestep=a.bridge_timestep,
                refinements=a.refinements,
                levels=a.visited_levels(),
                variant=a.remove_noise,
                on_level=level_logger(on_level),
                keep_going=keep_going,
                on_estimate=on_estimate,
            )
        log.info("%d whole-volume evaluations (%d on the early grid), %d windows", engine.counts.evaluations,
                 engine.counts.early_evaluations, engine.counts.windows)
        return result[0].float().cpu().numpy()


def log_plans(plans: VolumePlans, early_overlap: float | None) -> None:
    """One line per window grid."""
    log.info("%d windows of %s per whole-volume evaluation of %s", plans.main.num_windows, plans.main.window,
             plans.main.image_shape)
    if plans.early is not None:
        log.info("levels above %d: overlap %.2f, %d windows, grid shifted at random per evaluation",
                 plans.early_above, early_overlap, plans.early.num_windows)


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
