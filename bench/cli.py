"""``python -m bench``: naive baseline vs the fast engine, and the cost of each preset, on a simulated head.

One whole-volume evaluation of eps_theta is timed per engine (median of ``--repeats``, engines
interleaved). A window costs the same wherever it lies, so times for the full 1 mm head
(197x233x189) come from the measured windows per second and the head's window count at each
overlap: measured when the benchmark volume is the full head (``--full-volume``, the default on
CUDA), extrapolated from a centred crop otherwise (12 windows at overlap 0.7 on the CPU, 2 with
``--quick``). A case is the number of evaluations a preset makes on each window grid, plus one
bridge evaluation; per-case times are extrapolated unless a preset is run end to end
(``--score-budget``), which also gives its score against the 3 T reference.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import sys
from pathlib import Path
from typing import Any

import torch

from bench.case import HELD_OUT_SEED, case_score, simulated_case
from bench.configurations import NAIVE, Engine, benchmarked_presets, default_engine, engine_variants
from bench.measure import MB, PeakMemory, Timings
from bench.network_size import unet_flops_per_window
from bench.peak import achieved_tflops, compute_floor_seconds, matmul_peak_tflops
from bench.report import table, write_json
from bench.runner import Task, TaskFactory, run_tasks
from model.execution.plan import early_levels_above, plan_case, uses_early_grid
from model.execution.device import select_device
from model.execution.engine import windows_per_call
from model.pipeline.enhancer import Enhancer
from model.method.operators import add_noise
from model.cli.options import add_crop, add_device, add_subject_seed, add_weights, add_window, window_of
from model.config.settings import PRESETS, SamplerSettings
from model.weights.manifest import MANIFEST_NAME, load_schedule
from model.execution.windows import window_count

log = logging.getLogger("bench")

FULL_HEAD_SHAPE = (197, 233, 189)  # the simulated 1 mm head (the ICBM152 grid)
CPU_CROP = (166, 166, 50)  # 2 x 2 x 3 windows of 128x128x32 at overlap 0.7
QUICK_CROP = (128, 128, 41)  # 1 x 1 x 2 windows



def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    add_weights(p)
    add_device(p)
    p.add_argument("--quick", action="store_true", help="a 2-window crop, fewer engines, 2 repeats (minutes on a CPU)")
    p.add_argument("--full-volume", action="store_true", help="time the whole head (default on CUDA)")
    p.add_argument("--json", type=Path, help="also write the rows and the summary to this JSON file")
    add_subject_seed(p, HELD_OUT_SEED, "simulated subject (held out from training)")
    p.add_argument("--shape-scale", type=float, default=1.0, help="simulation grid scale (1: the 1 mm head)")
    add_crop(p, f"time a centred crop of the head (CPU default {' '.join(map(str, CPU_CROP))})")
    add_window(p)
    p.add_argument("--repeats", type=int, help="timed evaluations per engine (default 3, --quick 2)")
    p.add_argument("--level", type=int, default=200, help="diffusion level t of the timed evaluations")
    p.add_argument("--score-budget", type=float, default=0.0, metavar="SECONDS",
                   help="run a preset end to end on the benchmark volume (for its score) when its extrapolated "
                        "time on that volume is below this")
    p.add_argument("--presets", nargs="*", help="presets to cost (default: all but smoke)")
    p.add_argument("--peak", choices=("auto", "on", "off"), default="auto",
                   help="measure the device's matmul peak for achieved-vs-peak and the compute floor (auto: on CUDA)")
    p.add_argument("--quality-json", type=Path,
                   help="a python -m bench.quality result: preset rows take their score from it (labelled)")
    args = p.parse_args(argv)
    if args.quick:
        args.crop = args.crop or list(QUICK_CROP)
        args.repeats = args.repeats or 2
    args.repeats = args.repeats or 3
    return args


def crop_for(args: argparse.Namespace, device: torch.device) -> list[int] | None:
    """The benchmark volume's crop: as asked, none for --full-volume or on CUDA, else the CPU crop."""
    if args.crop or args.full_volume:
        return None if args.full_volume else args.crop
    return None if device.type == "cuda" else list(CPU_CROP)


def machine(device: torch.device) -> dict[str, Any]:
    """What ran the benchmark (timings on a shared machine are noisy: the load average says how)."""
    model = platform.processor()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), model)
    except OSError:
        pass
    info = {"cpu": model, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def preset_label(name: str, s: SamplerSettings) -> tuple[str, str]:
    """('preset NAME: K, J, levels', 'overlap description') of a preset."""
    a, e = s.algorithm, s.engine
    label = f"preset {name}: K {a.bridge_timestep}, J {a.refinements}, {len(plan_case(s, (1, 1, 1)).levels)} levels"
    label += f" ({a.level_spacing})" if a.level_stride > 1 else ""
    overlaps = f"{e.overlap:g}"
    if uses_early_grid(s):
        overlaps += f"; {e.early_overlap:g} shifted above t={early_levels_above(s)}"
    return label, overlaps


class Benchmark:
    """Collects the tasks, runs them, and turns them into rows."""

    def __init__(self, args: argparse.Namespace, device: torch.device):
        self.args, self.device = args, device
        self.load_average_start = os.getloadavg()
        window = self.window = window_of(args)
        presets = benchmarked_presets()
        if args.presets:
            presets = {name: presets[name] for name in args.presets}
        self.presets = {name: s.updated(window=window) for name, s in presets.items()}
        self.paper = PRESETS["paper"].updated(window=window)
        self.case = simulated_case(args.subject_seed, args.shape_scale, crop_for(args, device))
        log.info("benchmark volume: %s", self.case.name)
        x0 = torch.from_numpy(self.case.network_input)[None].to(device)
        noise = torch.randn(x0.shape, generator=torch.Generator(device).manual_seed(0), device=device)
        x_t = add_noise(x0, noise, args.level, load_schedule(args.weights))
        self.factory = TaskFactory(args.weights, self.paper, device, x_t, args.level)
        self.tasks: dict[tuple, Task] = {}
        self.full_head = self.case.shape == FULL_HEAD_SHAPE
        self.quality = json.loads(args.quality_json.read_text()) if args.quality_json else None
        self.unet_flops = unet_flops_per_window(args.weights, self.paper.engine.window)
        self.peak = self.measure_peak()

    def measure_peak(self) -> dict[str, float] | None:
        """The device's measured matmul TFLOP/s per dtype (``--peak``; auto: on CUDA only)."""
        if self.args.peak == "off" or (self.args.peak == "auto" and self.device.type != "cuda"):
            return None
        cuda = self.device.type == "cuda"
        dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16} if cuda else {"float32": torch.float32}
        torch.backends.cuda.matmul.allow_tf32 = False
        peak = {name: matmul_peak_tflops(self.device, dtype, 8192 if cuda else 2048) for name, dtype in dtypes.items()}
        log.info("measured matmul peak: %s", ", ".join(f"{k} {v:.1f} TFLOP/s" for k, v in peak.items()))
        return peak

    def need(self, engine: Engine, network: str, overlap: float) -> Task:
        key = (engine.key, network, overlap)
        if key not in self.tasks:
            self.tasks[key] = self.factory.task(engine, network, overlap)
        return self.tasks[key]

    def full_head_windows(self, overlap: float) -> int:
        """Windows of one evaluation of the full head at ``overlap``."""
        return window_count(FULL_HEAD_SHAPE, self.paper.engine.window, overlap)

    def seconds_full_head(self, task: Task, overlap: float | None = None) -> float:
        """Seconds per evaluation of the full head at ``overlap`` (default the task's): measured, or
        from the task's windows per second."""
        overlap = task.overlap if overlap is None else overlap
        if self.full_head and overlap == task.overlap:
            return task.timings.median
        return self.full_head_windows(overlap) / (task.windows / task.timings.median)

    def run(self) -> dict[str, Any]:
        engines = engine_variants(self.device, self.args.quick, self.window)
        overlap = self.paper.engine.overlap
        for engine in engines:
            self.need(engine, "diffusion", overlap)
        for engine in (NAIVE, default_engine(self.window)):
            self.need(engine, "bridge", overlap)
        for name, settings in self.presets.items():  # presets with engine settings of their own
            engine = Engine(f"preset {name}", settings.engine)
            self.need(engine, "diffusion", overlap)
            self.need(engine, "bridge", overlap)
        log.info("%d tasks, %d repeats each", len(self.tasks), self.args.repeats)
        run_tasks(list(self.tasks.values()), self.args.repeats, self.device)
        rows = [self.engine_row(engine) for engine in engines]
        paper_seconds = rows[1]["seconds_per_case"]
        rows += [self.preset_row(name, s, paper_seconds) for name, s in self.presets.items()]
        default = rows[1]
        for row in rows:
            row["achieved_tflops"] = achieved_tflops(self.unet_flops, row["windows_per_second"])
        paper_windows = plan_case(self.paper, FULL_HEAD_SHAPE).unet_windows
        return {
            "unet_gflop_per_window": self.unet_flops / 1e9,
            "measured_peak_tflops": self.peak,
            "paper_compute_floor_seconds": None if self.peak is None else {
                dtype: compute_floor_seconds(self.unet_flops, paper_windows, tflops) for dtype, tflops in self.peak.items()},
            "benchmark": "python -m bench" + (" --quick" if self.args.quick else ""),
            "machine": {**machine(self.device), "load_average_start": self.load_average_start,
                        "load_average_end": os.getloadavg()},
            "volume": self.case.name, "full_head_shape": list(FULL_HEAD_SHAPE), "window": list(self.paper.engine.window),
            "level": self.args.level, "repeats": self.args.repeats, "weights": str(self.args.weights),
            "extrapolated": "seconds marked *_source=extrapolated are full-head times from measured windows per second",
            "default_configuration": default["configuration"],
            "speedup_vs_naive": default["speedup_vs_naive"],
            "max_abs_diff_vs_naive": default["max_abs_diff_vs_naive"],
            "rows": rows,
        }

    def _timing_fields(self, task: Task) -> dict[str, Any]:
        return {
            "windows_measured": task.windows, "seconds_measured": task.timings.seconds,
            "windows_per_second": task.windows / task.timings.median,
            "seconds_per_evaluation": self.seconds_full_head(task),
            "seconds_per_evaluation_source": "measured" if self.full_head else "extrapolated",
            "peak_host_mb": task.peak_host_bytes / MB, "peak_host_added_mb": task.peak_host_added_bytes / MB,
            "peak_gpu_mb": None if task.peak_gpu_bytes is None else task.peak_gpu_bytes / MB,
        }

    def engine_row(self, engine: Engine) -> dict[str, Any]:
        """One engine at the paper preset's settings; a case is the paper's K x J evaluations."""
        overlap = self.paper.engine.overlap
        task = self.need(engine, "diffusion", overlap)
        naive = self.need(NAIVE, "diffusion", overlap)
        bridge = self.need(NAIVE if engine.naive else default_engine(self.window), "bridge", overlap)
        evaluations = plan_case(self.paper, FULL_HEAD_SHAPE).evaluations
        windows = self.full_head_windows(overlap)
        voxels = math.prod(self.paper.engine.window)
        timing = self._timing_fields(task)
        e = engine.settings
        return {
            "configuration": engine.name, "kind": "engine", "overlaps": f"{overlap:g}",
            "windows_per_batch": windows_per_call(e.windows_per_batch, self.device), "channels_last": e.channels_last,
            "precision": e.precision, "compile": e.compile,
            "compiled": task.compiled, "warmup_seconds": task.warmup_seconds,
            "windows_per_evaluation": windows, "network_voxels_per_evaluation": windows * voxels,
            "network_voxels_per_case": (evaluations + 1) * windows * voxels,
            **timing, "evaluations_per_case": evaluations,
            "seconds_per_case": evaluations * timing["seconds_per_evaluation"] + self.seconds_full_head(bridge),
            "seconds_per_case_source": "extrapolated", "score": None,
            "bridge_seconds_per_evaluation": self.seconds_full_head(bridge),
            "speedup_vs_naive": naive.timings.median / task.timings.median,
            "max_abs_diff_vs_naive": 0.0 if engine.naive else task.max_abs_diff_vs_naive,
        }

    def preset_row(self, name: str, settings: SamplerSettings, paper_seconds: float) -> dict[str, Any]:
        """One preset with its own engine settings; per-case time summed over its window grids
        (evaluations on each grid times its full-head windows over the engine's windows per second)."""
        engine = Engine(f"preset {name}", settings.engine)
        cost = plan_case(settings, FULL_HEAD_SHAPE)
        overlap, voxels = settings.engine.overlap, math.prod(settings.engine.window)
        main = self.need(engine, "diffusion", self.paper.engine.overlap)
        bridge = self.need(engine, "bridge", self.paper.engine.overlap)
        seconds = self.seconds_full_head(bridge, overlap) + sum(
            n * self.seconds_full_head(main, o) for o, n in cost.evaluations_by_overlap.items())
        label, overlaps = preset_label(name, settings)
        row = {
            "configuration": label, "kind": "preset", "preset": name, "settings": settings.to_dict(),
            "overlaps": overlaps, "windows_per_evaluation": cost.windows_by_overlap[overlap],
            "network_voxels_per_evaluation": cost.windows_by_overlap[overlap] * voxels,
            "network_voxels_per_case": cost.windows * voxels, **self._timing_fields(main),
            "seconds_per_evaluation": self.seconds_full_head(main, overlap),
            "seconds_per_evaluation_source": "measured" if self.full_head and overlap == main.overlap
            else "extrapolated",
            "evaluations_per_case": str(cost.evaluations),
            "evaluations_by_overlap": {f"{o:g}": n for o, n in cost.evaluations_by_overlap.items()},
            "seconds_per_case": seconds, "seconds_per_case_source": "extrapolated",
            "time_vs_paper": paper_seconds / seconds, "score": None,
        }
        volume_seconds = seconds * main.windows / self.full_head_windows(self.paper.engine.overlap)  # about
        if self.args.score_budget and volume_seconds <= self.args.score_budget:
            row.update(self.end_to_end(settings))
        elif self.quality is not None:
            measured = next((r for r in self.quality.get("summary", []) if r["label"] == name), None)
            if measured is not None:
                row.update(score=measured["score"], score_source=f"python -m bench.quality: subjects "
                           f"{self.quality['subject_seeds']}, {self.quality.get('volume')}, window "
                           f"{self.quality['window']}, trained networks: {self.quality['trained']}")
        return row

    def end_to_end(self, settings: SamplerSettings) -> dict[str, Any]:
        """Run a preset on the benchmark volume end to end: measured seconds, evaluations and score."""
        enhancer = Enhancer(settings.updated(mode="full"), self.args.weights, self.device)
        timings = Timings()
        with PeakMemory(self.device) as peak:
            enhancement = timings.timed(lambda: enhancer.enhance(self.case.network_input), self.device)
        enhanced = enhancement.volume
        scores = case_score(self.case, enhanced)
        return {"score": scores["score"], "metrics": scores, "end_to_end_seconds": timings.seconds[0],
                "end_to_end_evaluations": enhancement.counts.evaluations,
                "end_to_end_peak_host_mb": peak.host_bytes / MB, "end_to_end_volume": self.case.name}


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    if not (args.weights / MANIFEST_NAME).is_file():
        print(f"no {MANIFEST_NAME} in {args.weights}: pass --weights DIR (a scratch folder of random networks: "
              "python -m bench.scratch_weights DIR)", file=sys.stderr)
        return 3
    device = select_device(args.device)
    document = Benchmark(args, device).run()
    print(table(document["rows"]))
    print(f"\n{document['volume']}; window {document['window']}; level t={document['level']}; median of "
          f"{document['repeats']} runs; * = full 1 mm head extrapolated from measured windows per second.")
    print(f"default configuration ({document['default_configuration']}): {document['speedup_vs_naive']:.2f}x the naive "
          f"baseline per evaluation, max |difference| {document['max_abs_diff_vs_naive']:.1e}")
    if document["measured_peak_tflops"]:
        for dtype, tflops in document["measured_peak_tflops"].items():
            print(f"measured {dtype} matmul peak {tflops:.3g} TFLOP/s; the paper preset's compute floor "
                  f"{document['paper_compute_floor_seconds'][dtype]:.0f} s ({document['unet_gflop_per_window']:.1f} "
                  "GFLOP per U-Net window)")
    if args.json:
        write_json(args.json, document)
    return 0
