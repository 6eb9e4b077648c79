"""Sampler settings and the named presets that bundle them (``--preset``)."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from model.operators import RemoveNoiseVariant
from model.sampler import Mode

PRECISIONS = ("float32", "bfloat16")


@dataclass(frozen=True)
class SamplerSettings:
    """Everything that decides what Algorithm 1 computes and how it is evaluated."""

    mode: Mode = Mode.FULL
    bridge_timestep: int = 400  # K
    refinements: int = 3  # J
    level_stride: int = 1  # visit every level_stride-th of K..1 (1: the paper)
    overlap: float = 0.7
    window: tuple[int, int, int] = (128, 128, 32)
    windows_per_batch: int = 4
    precision: str = "float32"  # "bfloat16": autocast on CUDA, float32 accumulation
    remove_noise: RemoveNoiseVariant = RemoveNoiseVariant.X0
    seed: int = 0

    def __post_init__(self):
        checks = [
            (1 <= self.bridge_timestep <= 1000, f"--bridge-timestep must be in 1..1000, got {self.bridge_timestep}"),
            (self.refinements >= 1, f"--refine must be at least 1, got {self.refinements}"),
            (self.level_stride >= 1, f"--level-stride must be at least 1, got {self.level_stride}"),
            (0 <= self.overlap < 1, f"--overlap must be in [0, 1), got {self.overlap}"),
            (len(self.window) == 3 and all(w >= 1 for w in self.window), f"--window needs 3 positive sizes, got {self.window}"),
            (self.windows_per_batch >= 1, f"--windows-per-batch must be at least 1, got {self.windows_per_batch}"),
            (self.precision in PRECISIONS, f"--precision must be one of {PRECISIONS}, got {self.precision}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        object.__setattr__(self, "mode", Mode(self.mode))
        object.__setattr__(self, "remove_noise", RemoveNoiseVariant(self.remove_noise))
        object.__setattr__(self, "window", tuple(int(w) for w in self.window))

    @property
    def levels(self) -> tuple[int, ...]:
        """The diffusion levels visited: K, K - stride, ..., down to >= 1."""
        return tuple(range(self.bridge_timestep, 0, -self.level_stride))

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
    # For tests and the container check: the whole pipeline with 2 levels, 1 refinement, no overlap.
    "smoke": SamplerSettings(bridge_timestep=2, refinements=1, overlap=0.0),
}


def preset(name: str) -> SamplerSettings:
    """The named preset, with a clear error listing the known names."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset '{name}'; known presets: {', '.join(PRESETS)}")
    return PRESETS[name]
