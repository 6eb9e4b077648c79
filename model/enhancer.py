"""The enhancement pipeline: frozen networks and settings turn a normalised low-field volume into a
pseudo high-field one (Algorithm 1, :func:`model.sampler.sample`), evaluated by :mod:`model.engine`."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from model.cost import case_cost
from model.engine import VolumePlans, WindowEngine
from model.sampler import LevelCallback, Mode, sample
from model.schedule import cosine_schedule
from model.settings import SamplerSettings
from model.weights import load_network, load_schedule, trained_timesteps

log = logging.getLogger(__name__)


def warn_outside_training(settings: SamplerSettings, weights_dir: Path | None) -> None:
    """A warning when K or the chain's levels lie outside the timesteps the networks were trained on
    (e.g. the paper preset's K = 400 with weights trained for K <= 250): it runs, but expect worse."""
    a = settings.algorithm
    checks = (("bridge", (a.bridge_timestep,), a.mode.uses_bridge), ("diffusion", a.visited_levels(), True))
    for name, levels, used in checks:
        trained = trained_timesteps(weights_dir, name) if used and levels and weights_dir is not None else None
        if trained and not all(trained[0] <= t <= trained[1] for t in levels):
            log.warning("the %s network in %s was trained on t = %d..%d; these settings use t = %s: outside it, "
                        "expect a worse result (the weights' README section says which settings they are for)",
                        name, weights_dir, trained[0], trained[1], ", ".join(map(str, sorted(set(levels), reverse=True)[:6]))
                        + (", ..." if len(set(levels)) > 6 else ""))


class Enhancer:
    """The networks a mode needs, the schedule they were trained with, and the engine that evaluates them."""

    def __init__(self, settings: SamplerSettings, weights_dir: Path | None, device: torch.device):
        mode = settings.algorithm.mode
        self.settings, self.device = settings, device
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

    def prepare(self, shape: tuple[int, ...]) -> VolumePlans:
        """The window plans of a volume of ``shape`` (x, y, z); compiles the U-Net first when the settings
        ask for it and the case is long enough (``compile="auto"``)."""
        if self.engine.wants_compile(case_cost(shape, self.settings).unet_windows):
            self.engine.compile_unet()
        return self.engine.plans_for(shape, self.settings.early_levels_above if self.settings.uses_early_grid else None)

    def enhance(self, volume: np.ndarray, on_level: LevelCallback | None = None) -> np.ndarray:
        """``volume``: (3, X, Y, Z) float32 in [-1, 1]; returns the same shape, float32."""
        a, engine = self.settings.algorithm, self.engine
        x0_lf = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32))[None].to(self.device)
        plans = self.prepare(tuple(x0_lf.shape[2:]))
        log_plans(plans, self.settings.engine.early_overlap)
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
