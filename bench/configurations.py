"""What the benchmark compares: evaluation engines, and how many evaluations a preset costs per case."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch

from model.settings import PRESETS, SamplerSettings


@dataclass(frozen=True)
class Engine:
    """How one whole-volume evaluation is computed."""

    name: str
    naive: bool = False  # MONAI sliding_window_inference, one window per call, float32
    windows_per_batch: int = 4
    channels_last: bool = False
    precision: str = "float32"
    compile: str = "auto"  # SamplerSettings.compile: "off", "auto" (the CPU, long runs), "on"
    cuda_graphs: bool = False
    cuda_only: bool = False

    @property
    def key(self) -> tuple:
        """Engines with the same key compute the same thing the same way (measured once)."""
        return (self.naive, self.windows_per_batch, self.channels_last, self.precision, self.compile, self.cuda_graphs)

    def settings(self, base: SamplerSettings) -> SamplerSettings:
        """``base`` with this engine's evaluation settings."""
        return base.updated(windows_per_batch=self.windows_per_batch, channels_last=self.channels_last,
                            precision=self.precision, compile=self.compile, cuda_graphs=self.cuda_graphs)


NAIVE = Engine("naive: MONAI, 1 window per call, fp32", naive=True, windows_per_batch=1, compile="off")


def engine_of(settings: SamplerSettings, name: str) -> Engine:
    """The fast engine as a preset configures it."""
    return Engine(name, windows_per_batch=settings.windows_per_batch, channels_last=settings.channels_last,
                  precision=settings.precision, compile=settings.compile, cuda_graphs=settings.cuda_graphs)


def default_engine() -> Engine:
    """The engine of the ``paper`` preset: the configuration ``speedup_vs_naive`` is quoted for."""
    return engine_of(PRESETS["paper"], "fast engine (paper preset)")


def engine_variants(device: torch.device, quick: bool) -> list[Engine]:
    """The naive baseline, the default fast engine, and the variants worth measuring on ``device``."""
    d = default_engine()
    wpb, cl = d.windows_per_batch, d.channels_last
    variants = [
        NAIVE,
        d,
        Engine("fast, not compiled", windows_per_batch=wpb, channels_last=cl, compile="off"),
        Engine("fast, not compiled, 1 window per call", windows_per_batch=1, channels_last=cl, compile="off"),
        Engine("fast, channels-last" if not cl else "fast, contiguous", windows_per_batch=wpb, channels_last=not cl,
               compile=d.compile),
        Engine("fast, 8 per call", windows_per_batch=8, channels_last=cl, compile=d.compile),
    ]
    if quick:
        variants = variants[:3]
    if device.type == "cuda":  # compile="auto" leaves CUDA eager: measure compiling there
        variants += [
            Engine("fast, compiled", windows_per_batch=wpb, channels_last=cl, compile="on", cuda_only=True),
            Engine("fast, bf16", windows_per_batch=wpb, precision="bfloat16", compile="off", cuda_only=True),
            Engine("fast, bf16, channels-last", windows_per_batch=wpb, precision="bfloat16", channels_last=True,
                   compile="off", cuda_only=True),
            Engine("fast, bf16, compiled", windows_per_batch=wpb, precision="bfloat16", compile="on", cuda_only=True),
            Engine("fast, bf16, compiled, CUDA graphs", windows_per_batch=wpb, precision="bfloat16", compile="on",
                   cuda_graphs=True, cuda_only=True),
        ]
    unique, seen = [], set()
    for engine in variants:
        if engine.key not in seen:
            seen.add(engine.key)
            unique.append(engine)
    return unique


@dataclass(frozen=True)
class PresetCost:
    """The whole-volume evaluations one case costs under a preset (full mode)."""

    evaluations_by_overlap: dict[float, int]  # eps_theta evaluations per window-grid overlap
    bridge_overlap: float
    at_most: bool  # early stopping may do fewer refinements than counted

    @property
    def evaluations(self) -> int:
        return sum(self.evaluations_by_overlap.values())


def preset_cost(settings: SamplerSettings) -> PresetCost:
    """Evaluations per overlap for one case: J per visited level (an upper bound with early stopping)."""
    counts: Counter[float] = Counter()
    for level in settings.levels:
        counts[settings.overlap_at(level)] += settings.refinements
    return PresetCost(dict(counts), settings.overlap, settings.refine_tolerance > 0 and settings.refinements > 1)


def benchmarked_presets() -> dict[str, SamplerSettings]:
    """Every preset but the test-only ``smoke``."""
    return {name: settings for name, settings in PRESETS.items() if name != "smoke"}
