"""The plan of one case: the levels Algorithm 1 visits, the window grid of each, and what it all costs.

One function, :func:`plan_case`, makes it from (settings, volume shape, noise schedule); everything that
needs to know what a case will do reads the plan instead of working it out again: the engine's window
grids (:meth:`model.execution.engine.WindowEngine.window_plans`), the sampler's levels, the progress bar,
the compile policy, the time-budget planner's estimate (:mod:`model.execution.budget`), the QC and run
records, and the benchmarks. A window costs the same wherever it lies (docs/speed.md), so cost = windows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from ..config.settings import SamplerSettings
from ..method.schedule import NoiseSchedule, cosine_schedule
from .windows import window_count


def early_levels_above(settings: SamplerSettings) -> int:
    """Levels t above this are the early ones: the first ``early_levels_fraction`` of K..1."""
    return round(settings.algorithm.bridge_timestep * (1.0 - settings.engine.early_levels_fraction))


def uses_early_grid(settings: SamplerSettings) -> bool:
    """Whether some visited levels run on the early (low-overlap, randomly shifted) window grid."""
    a, e = settings.algorithm, settings.engine
    return (a.mode.uses_diffusion and e.early_overlap is not None and e.early_overlap != e.overlap
            and a.bridge_timestep > early_levels_above(settings))


def overlap_at(settings: SamplerSettings, level: int) -> float:
    """The window overlap of diffusion level ``level``: the early overlap above :func:`early_levels_above`
    when the settings ask for an early grid, else the main overlap. The one place this is decided."""
    if uses_early_grid(settings) and level > early_levels_above(settings):
        return float(settings.engine.early_overlap)
    return settings.engine.overlap


@dataclass(frozen=True)
class CasePlan:
    """What enhancing one volume with some settings will do: validated levels, grids, network windows."""

    settings: SamplerSettings
    shape: tuple[int, int, int]  # (x, y, z) of the network input
    levels: tuple[int, ...]  # the diffusion levels visited, top down (empty without diffusion)
    level_overlaps: tuple[float, ...]  # the window grid's overlap of each visited level
    bridge_overlap: float | None  # the bridge's grid (None: the mode has no bridge)
    windows_by_overlap: dict[float, int]  # windows of one whole-volume evaluation on each grid used

    @property
    def main_overlap(self) -> float:
        """The overlap of the main grid (the bridge's, and every level's without an early grid)."""
        return self.settings.engine.overlap

    def overlap_at(self, level: int) -> float:
        """The overlap of visited level ``level``."""
        return self.level_overlaps[self.levels.index(level)]

    def shifted(self, level: int) -> bool:
        """Whether level ``level`` runs on the early grid, shifted at random per evaluation."""
        return self.overlap_at(level) != self.main_overlap

    @property
    def samples(self) -> int:
        """How many times the sampler runs (``--samples``): every cost below is per case, all samples included."""
        return self.settings.algorithm.samples

    @property
    def evaluations_by_overlap(self) -> dict[float, int]:
        """Whole-volume evaluations of eps_theta on each grid: J per visited level, per sample."""
        counts: Counter[float] = Counter()
        for overlap in self.level_overlaps:
            counts[overlap] += self.settings.algorithm.refinements * self.samples
        return dict(counts)

    @property
    def evaluations(self) -> int:
        """Whole-volume evaluations of eps_theta."""
        return len(self.levels) * self.settings.algorithm.refinements * self.samples

    @property
    def unet_windows(self) -> int:
        """Windows through eps_theta."""
        return sum(n * self.windows_by_overlap[o] for o, n in self.evaluations_by_overlap.items())

    @property
    def bridge_windows(self) -> int:
        """Windows through the bridge (one whole-volume evaluation on the main grid per sample)."""
        return 0 if self.bridge_overlap is None else self.windows_by_overlap[self.bridge_overlap] * self.samples

    @property
    def windows(self) -> int:
        """Windows through both networks."""
        return self.unet_windows + self.bridge_windows

    def with_samples(self, samples: int) -> "CasePlan":
        """The plan of a run that made ``samples`` samples (a time budget's deadline may stop before N)."""
        return plan_case(self.settings.updated(samples=samples), self.shape)

    def truncated(self, levels_done: int) -> "CasePlan":
        """The plan of a run whose chain ended after ``levels_done`` levels (a time budget's deadline): the
        levels done as an explicit chain, or the bridge alone when none was done."""
        if levels_done >= len(self.levels):
            return self
        if levels_done:
            settings = self.settings.updated(chain_levels=self.levels[:levels_done])
        else:
            settings = self.settings.updated(mode="bridge", chain_levels=())
        return plan_case(settings, self.shape)


def plan_case(settings: SamplerSettings, shape: Sequence[int], schedule: NoiseSchedule | None = None) -> CasePlan:
    """The plan of enhancing a volume of ``shape`` (x, y, z) with ``settings``, validated against ``schedule``
    (the weights' noise schedule; default: the cosine schedule of T = 1000 levels, for cost estimates).
    A :class:`ValueError` names the first setting the schedule cannot take."""
    settings.algorithm.check_against(schedule or cosine_schedule())
    levels = settings.algorithm.visited_levels()
    level_overlaps = tuple(overlap_at(settings, level) for level in levels)
    bridge_overlap = settings.engine.overlap if settings.algorithm.mode.uses_bridge else None
    overlaps = set(level_overlaps) | ({bridge_overlap} if bridge_overlap is not None else set())
    shape = tuple(int(s) for s in shape)
    windows = {o: window_count(shape, settings.engine.window, o) for o in sorted(overlaps)}
    return CasePlan(settings, shape, levels, level_overlaps, bridge_overlap, windows)
