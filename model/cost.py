"""What a configuration costs on a volume, counted in network windows (docs/speed.md: a window costs the
same wherever it lies, so cost = windows). The one cost model of the project: the compile policy, the
benchmark, the quality curve and a time-budget planner all ask :func:`case_cost`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from model.settings import SamplerSettings
from model.windows import window_count


@dataclass(frozen=True)
class CaseCost:
    """The whole-volume evaluations of one case and the windows each costs."""

    levels: tuple[int, ...]  # the diffusion levels visited (empty without diffusion)
    evaluations_by_overlap: dict[float, int]  # eps_theta whole-volume evaluations per window-grid overlap
    windows_by_overlap: dict[float, int]  # windows of one whole-volume evaluation on each grid used
    bridge_overlap: float | None  # the bridge's grid (None: the mode has no bridge)

    @property
    def evaluations(self) -> int:
        """Whole-volume evaluations of eps_theta."""
        return sum(self.evaluations_by_overlap.values())

    @property
    def unet_windows(self) -> int:
        """Windows through eps_theta."""
        return sum(n * self.windows_by_overlap[o] for o, n in self.evaluations_by_overlap.items())

    @property
    def bridge_windows(self) -> int:
        """Windows through the bridge (one whole-volume evaluation)."""
        return 0 if self.bridge_overlap is None else self.windows_by_overlap[self.bridge_overlap]

    @property
    def windows(self) -> int:
        """Windows through both networks."""
        return self.unet_windows + self.bridge_windows


def case_cost(shape: Sequence[int], settings: SamplerSettings) -> CaseCost:
    """The cost of enhancing a volume of ``shape`` (x, y, z) with ``settings``: J evaluations per visited
    level, on the grid of that level's overlap, plus one bridge evaluation on the main grid."""
    a, e = settings.algorithm, settings.engine
    levels = a.visited_levels()
    evaluations: Counter[float] = Counter()
    for level in levels:
        evaluations[settings.overlap_at(level)] += a.refinements
    bridge_overlap = e.overlap if a.mode.uses_bridge else None
    overlaps = set(evaluations) | ({bridge_overlap} if bridge_overlap is not None else set())
    windows = {o: window_count(shape, e.window, o) for o in sorted(overlaps)}
    return CaseCost(levels, dict(evaluations), windows, bridge_overlap)
