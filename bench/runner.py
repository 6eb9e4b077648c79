"""Measure whole-volume evaluations of eps_theta (and the bridge) for each engine, interleaved.

Every task is one whole-volume evaluation of one network by one engine at one overlap. Tasks are
run round-robin, ``repeats`` times each (after a warm-up run where compilation or CUDA needs one),
so that a machine shared with other work slows all engines alike; medians are reported. The first
output of each eps_theta task is compared with the naive engine's output on the same input.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from bench.configurations import Engine
from bench.measure import PeakMemory, Timings
from bench.naive import naive_bridge, naive_denoiser
from model.execution.engine import CompiledNetwork
from model.pipeline.enhancer import Enhancer
from model.config.settings import SamplerSettings
from model.weights.manifest import load_network
from model.execution.windows import window_count

log = logging.getLogger(__name__)


@dataclass
class Task:
    """Repeated whole-volume evaluations of one network by one engine at one overlap."""

    engine: Engine
    network: str  # "diffusion" or "bridge"
    overlap: float
    windows: int  # windows per evaluation of the measured volume
    run: Callable[[], torch.Tensor]
    timings: Timings = field(default_factory=Timings)
    peak_host_bytes: int = 0  # peak resident set size of the process during the task's runs
    peak_host_added_bytes: int = 0  # peak growth of the resident set above its size before a run
    peak_gpu_bytes: int | None = None
    max_abs_diff_vs_naive: float | None = None

    compiled: bool = False  # the U-Net went through torch.compile (the warm-up run compiles it)
    warmup_seconds: float | None = None  # the warm-up run, compilation included

    @property
    def needs_warmup(self) -> bool:
        return self.compiled


class TaskFactory:
    """Builds the evaluation tasks of one volume, sharing networks and inputs."""

    def __init__(self, weights: Path, base: SamplerSettings, device: torch.device, x_t: torch.Tensor, level: int):
        self.weights, self.base, self.device, self.x_t, self.level = weights, base, device, x_t, level
        self.shape = tuple(x_t.shape[2:])
        self._naive_networks: dict[str, torch.nn.Module] = {}

    def _naive_network(self, name: str) -> torch.nn.Module:
        if name not in self._naive_networks:
            self._naive_networks[name] = load_network(self.weights, name, self.device)
        return self._naive_networks[name]

    def task(self, engine: Engine, network: str, overlap: float) -> Task:
        """One task; for the fast engine this goes through :class:`model.pipeline.enhancer.Enhancer` and its engine."""
        window = self.base.engine.window
        windows = window_count(self.shape, window, overlap)
        x_t, level = self.x_t, self.level
        if engine.naive:
            if network == "diffusion":
                denoise = naive_denoiser(self._naive_network("diffusion"), window, overlap)
                return Task(engine, network, overlap, windows, lambda: denoise(x_t, level))
            residual = naive_bridge(self._naive_network("bridge"), window, overlap)
            return Task(engine, network, overlap, windows, lambda: residual(x_t))
        # one grid (the task's overlap); the bridge task does not evaluate the U-Net: do not compile it
        execution = replace(engine.settings, window=window, overlap=overlap, early_overlap=None, early_levels_fraction=0.0,
                            compile=engine.settings.compile if network == "diffusion" else "off")
        enhancer = Enhancer(SamplerSettings(self.base.algorithm, execution).updated(mode="full"), self.weights, self.device)
        plans = enhancer.prepare(enhancer.plan(self.shape))  # compiles the U-Net when the settings say so
        evaluate = (enhancer.engine.denoiser(plans, enhancer.settings.algorithm.seed) if network == "diffusion"
                    else enhancer.engine.bridge_residual(plans))
        arguments = (x_t, level) if network == "diffusion" else (x_t,)

        def run() -> torch.Tensor:
            with enhancer.engine.running():
                return evaluate(*arguments)

        return Task(engine, network, overlap, windows, run, compiled=network == "diffusion"
                    and isinstance(enhancer.engine.unet, CompiledNetwork))


def run_tasks(tasks: list[Task], repeats: int, device: torch.device) -> None:
    """Warm up where needed, then run every task ``repeats`` times round-robin; fills in timings,
    peaks and, for eps_theta tasks, the max abs difference to the naive task of the same overlap."""
    for task in tasks:
        if task.needs_warmup:
            log.info("warm-up (compilation) of %s", task.engine.name)
            seconds = Timings()
            seconds.timed(task.run, device)
            task.warmup_seconds = seconds.seconds[0]
    references: dict[tuple[str, float], torch.Tensor] = {}
    for repeat in range(repeats):
        for task in sorted(tasks, key=lambda t: not t.engine.naive):  # naive first: the reference
            with PeakMemory(device) as peak:
                output = task.timings.timed(task.run, device)
            task.peak_host_bytes = max(task.peak_host_bytes, peak.host_bytes)
            task.peak_host_added_bytes = max(task.peak_host_added_bytes, peak.host_added_bytes)
            if peak.gpu_bytes is not None:
                task.peak_gpu_bytes = max(task.peak_gpu_bytes or 0, peak.gpu_bytes)
            log.info("%s, %s, overlap %.2f: %.2f s (run %d/%d)", task.engine.name, task.network, task.overlap,
                     task.timings.seconds[-1], repeat + 1, repeats)
            if repeat == 0:
                key = (task.network, task.overlap)
                if task.engine.naive:
                    references[key] = output.float()
                elif key in references:
                    task.max_abs_diff_vs_naive = float((output.float() - references[key]).abs().max())
            del output
