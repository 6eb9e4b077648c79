"""Sampler settings and the named presets that bundle them (``--preset``)."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from model.operators import RemoveNoiseVariant
from model.sampler import Mode

PRECISIONS = ("float32", "bfloat16")
LEVEL_SPACINGS = ("uniform", "quadratic")
COMPILE_CHOICES = ("off", "auto", "on")


@dataclass(frozen=True)
class SamplerSettings:
    """Everything that decides what Algorithm 1 computes and how it is evaluated."""

    mode: Mode = Mode.FULL
    bridge_timestep: int = 400  # K
    refinements: int = 3  # J
    level_stride: int = 1  # visit every level_stride-th of K..1 (1: the paper)
    # How the ceil(K / level_stride) visited levels are placed: "uniform" (K, K - stride, ...) or
    # "quadratic" (K (j/n)^2, j = n..1: dense near t = 0, where the last estimate is made; DDIM's
    # "quad" spacing). Not in the paper, which visits every level.
    level_spacing: str = "uniform"
    overlap: float = 0.7
    window: tuple[int, int, int] = (128, 128, 32)
    windows_per_batch: int = 4
    precision: str = "float32"  # "bfloat16": autocast on CUDA, float32 accumulation
    remove_noise: RemoveNoiseVariant = RemoveNoiseVariant.X0
    seed: int = 0
    # Speed levers (docs/speed.md). Early levels: the first ``early_levels_fraction`` of the
    # timesteps K..1 (levels t > (1 - fraction) K) are evaluated at ``early_overlap`` on a window
    # grid shifted at random per evaluation, so low-overlap seams do not line up.
    early_overlap: float | None = None  # None: the same overlap as the other levels
    early_levels_fraction: float = 0.0
    # Stop the J refinements of a level once x0 changes by less than this, relatively (0: never).
    refine_tolerance: float = 0.0
    channels_last: bool = False  # windows in channels-last-3D layout (measured: see docs/speed.md)
    # torch.compile the U-Net (inductor, weights frozen): "auto" = on the CPU, for runs long enough to
    # repay the compilation (docs/speed.md); "on" = always, CUDA included; "off" = never.
    compile: str = "auto"
    cuda_graphs: bool = False  # with compile on CUDA: mode "reduce-overhead" (not measured yet)

    def __post_init__(self):
        checks = [
            (1 <= self.bridge_timestep <= 1000, f"--bridge-timestep must be in 1..1000, got {self.bridge_timestep}"),
            (self.refinements >= 1, f"--refine must be at least 1, got {self.refinements}"),
            (self.level_stride >= 1, f"--level-stride must be at least 1, got {self.level_stride}"),
            (self.level_spacing in LEVEL_SPACINGS,
             f"--level-spacing must be one of {LEVEL_SPACINGS}, got {self.level_spacing}"),
            (0 <= self.overlap < 1, f"--overlap must be in [0, 1), got {self.overlap}"),
            (len(self.window) == 3 and all(w >= 1 for w in self.window), f"--window needs 3 positive sizes, got {self.window}"),
            (self.windows_per_batch >= 1, f"--windows-per-batch must be at least 1, got {self.windows_per_batch}"),
            (self.precision in PRECISIONS, f"--precision must be one of {PRECISIONS}, got {self.precision}"),
            (self.early_overlap is None or 0 <= self.early_overlap < 1,
             f"early_overlap must be in [0, 1), got {self.early_overlap}"),
            (0 <= self.early_levels_fraction <= 1, f"early_levels_fraction must be in [0, 1], got {self.early_levels_fraction}"),
            (self.refine_tolerance >= 0, f"refine_tolerance must be at least 0, got {self.refine_tolerance}"),
            (self.compile in COMPILE_CHOICES, f"compile must be one of {COMPILE_CHOICES}, got {self.compile}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        object.__setattr__(self, "mode", Mode(self.mode))
        object.__setattr__(self, "remove_noise", RemoveNoiseVariant(self.remove_noise))
        object.__setattr__(self, "window", tuple(int(w) for w in self.window))

    @property
    def levels(self) -> tuple[int, ...]:
        """The diffusion levels visited, from K down: uniform K, K - stride, ... >= 1, or quadratic
        round(K (j/n)^2) for j = n..1 with n = ceil(K / stride) (levels that round alike visited once)."""
        uniform = tuple(range(self.bridge_timestep, 0, -self.level_stride))
        if self.level_spacing == "uniform":
            return uniform
        n, k = len(uniform), self.bridge_timestep
        return tuple(sorted({max(1, round(k * (j / n) ** 2)) for j in range(1, n + 1)}, reverse=True))

    @property
    def early_levels_above(self) -> int:
        """Levels t above this use the early (low-overlap, shifted) window grid."""
        return round(self.bridge_timestep * (1.0 - self.early_levels_fraction))

    @property
    def uses_early_grid(self) -> bool:
        """Whether some levels run on the early window grid."""
        return (self.early_overlap is not None and self.early_overlap != self.overlap
                and any(level > self.early_levels_above for level in self.levels))

    def overlap_at(self, level: int) -> float:
        """The window overlap used at diffusion level ``level``."""
        if self.uses_early_grid and level > self.early_levels_above:
            return float(self.early_overlap)
        return self.overlap

    def updated(self, **changes: Any) -> "SamplerSettings":
        """A copy with the given fields changed (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form, for logs and result files."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.value if hasattr(value, "value") else list(value) if isinstance(value, tuple) else value
        return out


PRESETS: dict[str, SamplerSettings] = {
    # Faithful to the paper: K = 400, J = 3, every level, overlap 0.7 (1200 whole-volume passes).
    "paper": SamplerSettings(),
    # PROVISIONAL: 1/20.7 of paper's windows (50 levels, J 2, overlap 0.5 on a shifted grid above t = 100),
    # chosen by cost; its score against paper needs a GPU to measure (docs/speed.md).
    "fast": SamplerSettings(level_stride=8, refinements=2, early_overlap=0.5, early_levels_fraction=0.75),
    # For a CPU without a GPU (the demo: about 6 minutes for a whole head on 2 cores): 4 levels placed
    # quadratically (400, 225, 100, 25), one refinement each, overlap 0.25. Measured against the same
    # 4 levels placed evenly (400, 300, 200, 100) on held-out subjects: a higher score at the same cost
    # (docs/speed.md).
    "cpu": SamplerSettings(level_stride=100, level_spacing="quadratic", refinements=1, overlap=0.25),
    # For tests and the container check: the whole pipeline with 2 levels, 1 refinement, no overlap.
    "smoke": SamplerSettings(bridge_timestep=2, refinements=1, overlap=0.0, compile="off"),
}


def preset(name: str) -> SamplerSettings:
    """The named preset, with a clear error listing the known names."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset '{name}'; known presets: {', '.join(PRESETS)}")
    return PRESETS[name]
