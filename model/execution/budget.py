"""A run planned to a time budget (``--time-budget``, ``ULF_TIME_BUDGET``; docs/speed.md, "Time budget").

Three parts, each testable with a fake clock and a fake throughput:

* :class:`TimeBudget`: the whole run's seconds, counted from the start of the command, shared out
  among the cases still to do (each keeps room for reading and writing, as measured on the way).
* :func:`choose_settings`: the requested settings when their estimated time fits a case's allowance, else
  the first configuration of the weights' calibrated ladder (:mod:`model.weights.calibration`, best measured
  quality first) that fits; when
  nothing fits, the minimum work (the bridge alone on the coarsest grid), flagged as over the budget.
  The estimate is the case plan's windows (:func:`model.execution.plan.plan_case`) over the throughput measured
  on this device, this precision and this volume (:meth:`model.execution.engine.WindowEngine.windows_per_second`).
* :class:`ChainDeadline`: during sampling, ends the diffusion chain before a level that would not
  finish in time (its time measured on the levels already done); the estimate so far is the output.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..method.schedule import NoiseSchedule
from .plan import CasePlan, plan_case
from ..errors import UsageError
from ..method.sampler import Mode
from ..config.settings import SamplerSettings

log = logging.getLogger(__name__)

# A plan fills at most this share of a case's allowance: the estimate's own error (blending, host
# copies, a busy machine) must not push the run over; the chain's deadline catches the rest.
PLAN_FILL = 0.85


@dataclass(frozen=True)
class Throughput:
    """Windows per second of each network, measured on this device at this precision."""

    unet: float
    bridge: float

    def seconds(self, plan: CasePlan) -> float:
        """The estimated sampling time of a case's plan."""
        return plan.unet_windows / self.unet + plan.bridge_windows / self.bridge


@dataclass(frozen=True)
class BudgetChoice:
    """What a case will run under a time budget, and why."""

    label: str
    plan: CasePlan
    estimate: float  # seconds
    allowance: float  # seconds this case may take for sampling
    fits: bool  # False: the minimum work, over the allowance

    @property
    def settings(self) -> SamplerSettings:
        """The settings chosen."""
        return self.plan.settings

    def describe(self) -> str:
        """One log line."""
        a, visited = self.settings.algorithm, self.plan.levels
        chain = (f", levels [{', '.join(map(str, visited[:6]))}{', ...' if len(visited) > 6 else ''}], J {a.refinements}"
                 if visited else "")
        what = f"{self.label}: mode {a.mode.value}, K {a.bridge_timestep}{chain}, overlap {self.settings.engine.overlap:g}"
        if not self.fits:
            left = (f"OVER the {self.allowance:.0f} s left for it" if self.allowance >= 0.5 else
                    "OVER the budget: nothing of it was left for this case" if self.allowance > -0.5 else
                    f"OVER the budget: it was spent {-self.allowance:.0f} s before this case's sampling began")
            return (f"{what}; estimated {self.estimate:.0f} s, {left}: the budget is too small for anything but the "
                    "minimum work, which runs anyway")
        return f"{what}; estimated {self.estimate:.0f} s of the {self.allowance:.0f} s left for it"


Options = list[tuple[str, SamplerSettings]]  # (label, settings), in the order the planner tries them


def candidates(requested: SamplerSettings, ladder: Options, ladder_first: bool = False) -> Options:
    """The requested settings first, then what the planner may fall back to: ``ladder``, the weights'
    calibrated configurations, best first (:func:`model.weights.calibration.ladder_for`). ``ladder_first``
    (``--preset auto`` with no option changed: the weights decide): the ladder alone, so that a configuration
    scoring above the single-sample default (several samples) runs when it fits.

    ``full``: the ladder. ``bridge``: the ladder's bridge-only rungs on coarser grids than requested.
    ``identity``: nothing to plan. ``diffusion`` (an ablation without a measured ladder) is refused with a budget."""
    mode = requested.algorithm.mode
    if ladder_first and ladder and mode is Mode.FULL and requested.algorithm.samples == 1:
        return list(ladder)
    unplanned = replace(requested.engine, compile="off")
    first = [("as requested", SamplerSettings(requested.algorithm, unplanned))]
    if mode is Mode.DIFFUSION:
        raise UsageError("--time-budget plans the full and bridge modes; --mode diffusion (an ablation) has no "
                         "measured fallback: run it without a budget (--time-budget 0 or ULF_TIME_BUDGET=0)")
    if mode is Mode.IDENTITY:
        return first
    if mode is Mode.BRIDGE:
        options = first + [(label, SamplerSettings(requested.algorithm, replace(unplanned, overlap=s.engine.overlap)))
                           for label, s in ladder
                           if s.algorithm.mode is Mode.BRIDGE and s.engine.overlap < requested.engine.overlap]
    else:
        options = first + list(ladder)
    samples = requested.algorithm.samples
    if samples == 1:
        return options
    # N samples: each configuration with N, then each with one sample (no uncertainty map, but an output in time)
    with_n = [(label if s.algorithm.samples == samples else f"{label}, {samples} samples",
               s.updated(samples=samples)) for label, s in options]
    return with_n + [(f"{label}, 1 sample", s.updated(samples=1)) for label, s in options[1:]]


def choose_settings(requested: SamplerSettings, shape: tuple[int, ...], throughput: Throughput, allowance: float,
                    ladder: Options, schedule: NoiseSchedule | None = None, ladder_first: bool = False) -> BudgetChoice:
    """The first candidate whose estimate fills at most :data:`PLAN_FILL` of ``allowance``, else the cheapest
    (the minimum work), marked as not fitting; each candidate's cost is its case plan on ``shape``."""
    plans = [(label, plan_case(settings, shape, schedule))
             for label, settings in candidates(requested, ladder, ladder_first)]
    estimated = [(label, plan, throughput.seconds(plan)) for label, plan in plans]
    for label, plan, estimate in estimated:
        if estimate <= PLAN_FILL * allowance:
            return BudgetChoice(label, plan, estimate, allowance, fits=True)
    label, plan, estimate = min(estimated, key=lambda option: option[2])
    return BudgetChoice(label, plan, estimate, allowance, fits=False)


def process_started(clock: Callable[[], float] = time.monotonic) -> float:
    """When this process started, on ``clock`` (``time.monotonic``): a budget counts Python's start-up and
    imports too. Linux: from /proc (start time since boot); elsewhere: now."""
    try:
        after_name = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        start_seconds = int(after_name[19]) / os.sysconf("SC_CLK_TCK")  # field 22, starttime, in clock ticks
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return clock() - max(0.0, uptime - start_seconds)
    except (OSError, ValueError, IndexError):
        return clock()


@dataclass
class TimeBudget:
    """The seconds a whole run may take, from ``started`` (the command's start) on ``clock``; with
    ``per_case`` (``--budget-scope case``), the seconds each case may take instead, the first counted from the
    command's start and each later one from its own start (a Grand Challenge job is one case: a local rerun
    of a cohort then plans every case as the platform planned it)."""

    seconds: float
    clock: Callable[[], float] = time.monotonic
    started: float | None = None
    io_seconds: list[float] = field(default_factory=list)  # reading + writing, per case done
    per_case: bool = False
    cases_started: int = 0

    def __post_init__(self):
        if not (math.isfinite(self.seconds) and self.seconds > 0):
            raise UsageError(f"--time-budget must be a finite, positive number of seconds (0: no budget), "
                             f"got {self.seconds:g}")
        if self.started is None:
            self.started = self.clock()

    def start_case(self) -> None:
        """A case begins (before it is read): with ``per_case``, every case after the first gets its own clock."""
        if self.per_case and self.cases_started:
            self.started = self.clock()
        self.cases_started += 1

    def remaining(self) -> float:
        """Seconds left of the run."""
        return self.seconds - (self.clock() - self.started)

    def case_allowance(self, cases_left: int, read_seconds: float) -> float:
        """Sampling seconds for the case just read (``read_seconds`` to read it), one of ``cases_left``
        (itself included): the time left, less its writing (as long as its reading) and the reading and
        writing of the cases after it (as measured so far), shared equally."""
        if self.per_case:
            cases_left = 1
        per_case_io = max(self.io_seconds) if self.io_seconds else 2 * read_seconds
        left = self.remaining() - read_seconds - (cases_left - 1) * per_case_io
        return max(0.0, left / cases_left)

    def record_io(self, seconds: float) -> None:
        """A finished case's reading and writing time."""
        self.io_seconds.append(seconds)


class ChainDeadline:
    """``keep_going(level)`` for :func:`model.method.sampler.refine_with_diffusion`: False before a level that would
    end after ``deadline`` (on ``clock``). A level's time is the mean of the levels done so far (before the
    first: ``first_level_estimate``)."""

    def __init__(self, deadline: float, first_level_estimate: float, clock: Callable[[], float] = time.monotonic):
        self.deadline, self.clock = deadline, clock
        self.first_level_estimate = first_level_estimate
        self.level_starts: list[float] = []
        self.stopped_at: int | None = None  # the level the chain ended before, if it did

    def __call__(self, level: int) -> bool:
        now = self.clock()
        self.level_starts.append(now)
        done = len(self.level_starts) - 1
        per_level = (now - self.level_starts[0]) / done if done else self.first_level_estimate
        if now + per_level > self.deadline:
            self.stopped_at = level
            self.level_starts.pop()
            return False
        return True
