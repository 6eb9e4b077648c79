"""Sampler settings by concern, and the named presets that bundle them (``--preset``).

* :class:`AlgorithmSettings`: what Algorithm 1 computes (mode, K, J, the levels, RemoveNoise, seed).
* :class:`EngineSettings`: how it is evaluated (windows and their overlap, the early grid, batching,
  precision, compilation, memory layout). Two engines that differ only here compute the same result
  up to floating-point rounding and the early grid's window seams.
* :class:`SamplerSettings`: the pair a preset names. Each concern validates itself on construction;
  :meth:`SamplerSettings.updated` routes flat changes (``level_stride=8``) to the concern that owns them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from collections.abc import Sequence
from typing import Any

from ..method.operators import RemoveNoiseVariant
from ..method.sampler import SAMPLERS, Mode
from ..method.schedule import LEVEL_SPACINGS, NoiseSchedule, sampling_levels
from ..networks import WINDOW

# The paper's Algorithm 1: the bridge at K = 400, J = 3 refinements per level.
PAPER_BRIDGE_TIMESTEP, PAPER_REFINEMENTS = 400, 3
# The networks' arithmetic (model.execution.precision): auto = float16 on a T4, bfloat16 on sm_80+ and on a CPU
# with native bfloat16, else float32. The training stage's ``train.precision`` takes the same words.
PRECISIONS = ("auto", "float32", "bfloat16", "float16")
MAX_SAMPLES = 64  # --samples: each sample costs a whole run
COMPILE_CHOICES = ("off", "auto", "on")
BACKENDS = ("torch", "onnxruntime")
HEAD_CROP = ("off", "on")  # run the networks on the head's box only (model/volumes/head_box.py)


class RegisteredNames(Sequence):
    """The names of a registry as they are now (a sampler registered after import is a valid choice)."""

    def __init__(self, registry: dict):
        self.registry = registry

    def __getitem__(self, index):
        return list(self.registry)[index]

    def __len__(self) -> int:
        return len(self.registry)


CHOICES = {  # the settings whose values are words, and the words
    "sampler": RegisteredNames(SAMPLERS), "mode": tuple(m.value for m in Mode), "remove_noise": tuple(v.value for v in RemoveNoiseVariant),
    "level_spacing": LEVEL_SPACINGS, "precision": PRECISIONS, "compile": COMPILE_CHOICES, "backend": BACKENDS,
    "head_crop": HEAD_CROP,
}


def _check(checks: list[tuple[bool, str]]) -> None:
    for ok, message in checks:
        if not ok:
            raise ValueError(message)


@dataclass(frozen=True)
class AlgorithmSettings:
    """What Algorithm 1 computes (docs/method.md: Algorithm 1, the ablations)."""

    sampler: str = "algorithm-1"  # a name in model.method.sampler.SAMPLERS
    mode: Mode = Mode.FULL
    bridge_timestep: int = PAPER_BRIDGE_TIMESTEP  # K
    refinements: int = PAPER_REFINEMENTS  # J
    level_stride: int = 1  # visit ceil(K / level_stride) of the levels K..1 (1: every level, the paper)
    level_spacing: str = "uniform"  # how they are placed: model.method.schedule.sampling_levels
    remove_noise: RemoveNoiseVariant = RemoveNoiseVariant.X0
    seed: int = 0
    samples: int = 1  # N runs of the sampler (seeds seed..seed+N-1): their mean, and their spread as uncertainty
    output_remap: bool = True  # mode full: apply the weights' output intensity remap, when their manifest has one
    # An explicit chain: the levels visited after the bridge, descending, each in 1..K (a subset of
    # Algorithm 1's levels; it may start below K: a deviation from the paper, docs/speed.md).
    # Empty: ceil(K / level_stride) levels from K placed by level_spacing (the paper with stride 1).
    chain_levels: tuple[int, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "chain_levels", tuple(int(t) for t in self.chain_levels))
        chain = self.chain_levels
        _check([
            (all(1 <= t <= self.bridge_timestep for t in chain) and all(a > b for a, b in zip(chain, chain[1:])),
             f"chain_levels must descend strictly within 1..K={self.bridge_timestep}, got {list(chain)}"),
            (self.refinements >= 1, f"--refine must be at least 1, got {self.refinements}"),
            (1 <= self.samples <= MAX_SAMPLES, f"--samples must be in 1..{MAX_SAMPLES}, got {self.samples}"),
            (self.level_stride >= 1, f"--level-stride must be at least 1, got {self.level_stride}"),
            (self.sampler in SAMPLERS, f"--sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}"),
            (self.level_spacing in LEVEL_SPACINGS,
             f"--level-spacing must be one of {LEVEL_SPACINGS}, got {self.level_spacing}"),
        ])
        object.__setattr__(self, "mode", Mode(self.mode))
        object.__setattr__(self, "remove_noise", RemoveNoiseVariant(self.remove_noise))

    @property
    def level_count(self) -> int:
        """How many of the levels K..1 are visited (placed by :func:`model.method.schedule.sampling_levels`)."""
        return len(self.chain_levels) if self.chain_levels else math.ceil(self.bridge_timestep / self.level_stride)

    def visited_levels(self) -> tuple[int, ...]:
        """The levels the diffusion chain visits, from the top down: ``chain_levels`` when given, else
        :func:`model.method.schedule.sampling_levels` of (K, level_count, level_spacing); none without diffusion."""
        if not self.mode.uses_diffusion:
            return ()
        return self.chain_levels or sampling_levels(self.bridge_timestep, self.level_count, self.level_spacing)

    def check_against(self, schedule: NoiseSchedule) -> None:
        """K must be a level of the schedule the networks were trained with: the one check of K (the chain's
        levels are checked within 1..K on construction; the sampler trusts both)."""
        _check([(1 <= self.bridge_timestep <= schedule.num_timesteps,
                 f"--bridge-timestep must be in 1..{schedule.num_timesteps} (the weights' {schedule.name} schedule), "
                 f"got {self.bridge_timestep}")])


@dataclass(frozen=True)
class EngineSettings:
    """How each whole-volume evaluation is computed (docs/speed.md)."""

    window: tuple[int, int, int] = WINDOW
    overlap: float = 0.7
    # Early levels: the first ``early_levels_fraction`` of the timesteps K..1 (levels t > (1 - fraction) K)
    # are evaluated at ``early_overlap`` on a window grid shifted at random per evaluation, so that
    # low-overlap seams do not line up. None: the same overlap as the other levels.
    early_overlap: float | None = None
    early_levels_fraction: float = 0.0
    windows_per_batch: int = 0  # windows per network call; 0: auto (model.execution.engine.windows_per_call: 1 on the CPU, 4 on a GPU)
    precision: str = "auto"  # one of PRECISIONS
    # torch.compile the U-Net (inductor, weights frozen): "auto" = on the CPU, for runs long enough to
    # repay the compilation (docs/speed.md); "on" = always, CUDA included; "off" = never.
    compile: str = "auto"
    channels_last: bool = False  # windows in channels-last-3D layout (measured: see docs/speed.md)
    backend: str = "torch"  # "onnxruntime": the networks through ONNX Runtime on the CPU (float32; optional dependency)
    # "on": the networks see the head's bounding box only, air around it is not windowed; off by default, as the
    # shipped networks' outputs depend on how much air a window holds (docs/speed.md, "Cropping to the head")
    head_crop: str = "off"

    def __post_init__(self):
        _check([
            (len(self.window) == 3 and all(w >= 1 for w in self.window), f"--window needs 3 positive sizes, got {self.window}"),
            (0 <= self.overlap < 1, f"--overlap must be in [0, 1), got {self.overlap}"),
            (self.early_overlap is None or 0 <= self.early_overlap < 1,
             f"early_overlap must be in [0, 1), got {self.early_overlap}"),
            (0 <= self.early_levels_fraction <= 1, f"early_levels_fraction must be in [0, 1], got {self.early_levels_fraction}"),
            (self.windows_per_batch >= 0, f"--windows-per-batch must be at least 1 (or 0: auto), got {self.windows_per_batch}"),
            (self.precision in PRECISIONS, f"--precision must be one of {PRECISIONS}, got {self.precision}"),
            (self.compile in COMPILE_CHOICES, f"compile must be one of {COMPILE_CHOICES}, got {self.compile}"),
            (self.backend in BACKENDS, f"--backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}"),
            (self.head_crop in HEAD_CROP, f"--head-crop must be one of {', '.join(HEAD_CROP)}, got {self.head_crop!r}"),
        ])
        object.__setattr__(self, "window", tuple(int(w) for w in self.window))

    def updated(self, **changes: Any) -> "EngineSettings":
        """A copy with the given fields changed (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


CONCERNS = {"algorithm": AlgorithmSettings, "engine": EngineSettings}
FIELD_CONCERN = {f.name: concern for concern, cls in CONCERNS.items() for f in fields(cls)}


@dataclass(frozen=True)
class SamplerSettings:
    """A preset: what Algorithm 1 computes, and how the engine evaluates it."""

    algorithm: AlgorithmSettings = field(default_factory=AlgorithmSettings)
    engine: EngineSettings = field(default_factory=EngineSettings)

    def updated(self, **changes: Any) -> "SamplerSettings":
        """A copy with the given fields of either concern changed (``None`` values are ignored)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        unknown = sorted(set(changes) - set(FIELD_CONCERN))
        if unknown:
            raise ValueError(f"unknown setting(s) {', '.join(unknown)} (known: {', '.join(FIELD_CONCERN)})")
        parts = {concern: {k: v for k, v in changes.items() if FIELD_CONCERN[k] == concern} for concern in CONCERNS}
        return SamplerSettings(**{concern: replace(getattr(self, concern), **parts[concern]) for concern in CONCERNS})

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly flat form (field names are unique across the concerns), for logs and result files."""
        out = {}
        for concern in CONCERNS:
            part = getattr(self, concern)
            for f in fields(part):
                value = getattr(part, f.name)
                out[f.name] = value.value if hasattr(value, "value") else list(value) if isinstance(value, tuple) else value
        return out


def _preset(**changes: Any) -> SamplerSettings:
    return SamplerSettings().updated(**changes)


PRESETS: dict[str, SamplerSettings] = {
    # Faithful to the paper: K = 400, J = 3, every level, overlap 0.7 (1200 whole-volume passes).
    "paper": SamplerSettings(),
    # The shipped CPU-trained weights' settings (README, "Weights"; docs/speed.md): the bridge at K = 100 (trained
    # on t = 50..250), then a short chain 25, 10, 1 that starts below K (a subset of Algorithm 1's levels: a
    # deviation from the paper). Measured on held-out crops: re-noising the bridge's output at K and descending
    # from there (150, 75, 35, 15, 5, 1) scored 0.697, below the bridge alone (0.716); 25, 10, 1 scored 0.728.
    # "fast": the same chain with J = 2 and the paper's overlap (provisional: unmeasured on a GPU).
    "fast": _preset(bridge_timestep=100, chain_levels=(25, 10, 1), refinements=2),
    # "cpu": one refinement per level, overlap 0.25 (the demo: a whole head in a few minutes on 2 cores).
    "cpu": _preset(bridge_timestep=100, chain_levels=(25, 10, 1), refinements=1, overlap=0.25),
    # For tests and the container check: the whole pipeline with 2 levels, 1 refinement, no overlap.
    "smoke": _preset(bridge_timestep=2, refinements=1, overlap=0.0, compile="off"),
}


def preset(name: str) -> SamplerSettings:
    """The named preset, with a clear error listing the known names."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset '{name}'; known presets: {', '.join(PRESETS)}")
    return PRESETS[name]
