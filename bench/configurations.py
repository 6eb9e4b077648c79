"""What the benchmark compares: evaluation engines (a preset's cost per case is :func:`model.execution.plan.plan_case`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from model.execution.precision import cpu_has_native_bfloat16
from model.config.settings import PRESETS, EngineSettings, SamplerSettings


@dataclass(frozen=True)
class Engine:
    """How one whole-volume evaluation is computed: a name and the engine settings (or the naive baseline)."""

    name: str
    settings: EngineSettings = field(default_factory=EngineSettings)
    naive: bool = False  # MONAI sliding_window_inference, one window per call, float32
    cuda_only: bool = False

    @property
    def key(self) -> tuple:
        """Engines with the same key compute the same thing the same way (measured once): the window grid
        is the task's, so only how the windows go through the network counts."""
        s = self.settings
        return (self.naive, s.windows_per_batch, s.channels_last, s.precision, s.compile)

    def variant(self, name: str, cuda_only: bool = False, **changes) -> "Engine":
        """This engine with some settings changed."""
        return Engine(name, self.settings.updated(**changes), cuda_only=cuda_only)


NAIVE = Engine("naive: MONAI, 1 window per call, fp32", EngineSettings(windows_per_batch=1, compile="off"), naive=True)


def default_engine(window: tuple[int, int, int] | None = None) -> Engine:
    """The engine of the ``paper`` preset: the configuration ``speedup_vs_naive`` is quoted for."""
    return Engine("fast engine (paper preset)", PRESETS["paper"].engine.updated(window=window))


def engine_variants(device: torch.device, quick: bool, window: tuple[int, int, int] | None = None) -> list[Engine]:
    """The naive baseline, the default fast engine, and the variants worth measuring on ``device``."""
    d = default_engine(window)
    cl = d.settings.channels_last
    variants = [
        NAIVE,
        d,
        d.variant("fast, not compiled", compile="off"),
        d.variant("fast, not compiled, 4 windows per call", windows_per_batch=4, compile="off"),
        d.variant("fast, channels-last" if not cl else "fast, contiguous", channels_last=not cl),
        d.variant("fast, 8 per call", windows_per_batch=8),
    ]
    if quick:
        variants = variants[:3]
    if device.type == "cpu" and cpu_has_native_bfloat16():  # bfloat16 only where the processor computes it
        variants += [
            d.variant("fast, bf16, not compiled", precision="bfloat16", compile="off"),
            d.variant("fast, bf16, channels-last, not compiled", precision="bfloat16", channels_last=True, compile="off"),
            d.variant("fast, fp32, not compiled", precision="float32", compile="off"),
        ]
    if device.type == "cuda":  # compile="auto" leaves CUDA eager: measure compiling there
        variants += [
            d.variant("fast, compiled", compile="on", cuda_only=True),
            d.variant("fast, bf16", precision="bfloat16", channels_last=False, compile="off", cuda_only=True),
            d.variant("fast, bf16, channels-last", precision="bfloat16", channels_last=True, compile="off", cuda_only=True),
            d.variant("fast, bf16, compiled", precision="bfloat16", channels_last=False, compile="on", cuda_only=True),
        ]
    unique, seen = [], set()
    for engine in variants:
        if engine.key not in seen:
            seen.add(engine.key)
            unique.append(engine)
    return unique


def benchmarked_presets() -> dict[str, SamplerSettings]:
    """Every preset but the test-only ``smoke``."""
    return {name: settings for name, settings in PRESETS.items() if name != "smoke"}
