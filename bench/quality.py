"""``python -m bench.quality``: the quality-time curve of the sampler's speed levers and presets.

Each configuration (a preset, or the ``paper`` preset with some levers changed) enhances held-out
simulated subjects end to end; the challenge's final score against the 3 T reference is averaged
over subjects and contrasts. Time is given two ways: measured seconds on the volume that was
enhanced, and the configuration's cost on a full 1 mm head relative to ``paper`` (U-Net windows
of every evaluation plus the bridge's, counted on the full head's window grids,
:func:`model.execution.plan.plan_case`), on the presets' window whatever window the runs used. ``--bench-json`` (a ``python -m bench`` result) turns that into full-head seconds with
the windows per second of its default engine.

The identity row scores the raw low-field input (as the paper's row 1, the demo and the organisers do),
not the input after the product's percentile clipping.

Runs are recorded as they finish (``--out``/quality.jsonl, :mod:`bench.sweep`) and runs already there
are skipped when they were made with the same weights, settings, device, held-out set and crop, so an
interrupted curve resumes where it stopped; quality.json, .md and .png are written
at the end. ``--max-run-seconds`` skips configurations whose
estimated time (from the windows per second measured so far) is larger.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.case import HELD_OUT_SEED, add_variation, simulated_case
from bench.cli import FULL_HEAD_SHAPE
from bench.sweep import RunLog, enhance_and_score, run_key, scored, sweep, weights_checksums
from model.execution.plan import plan_case
from model.execution.device import select_device
from model.pipeline.enhancer import Enhancer
from model.cli.options import add_crop, add_device, add_subject_seed, add_weights, add_window, configured, window_of
from model.config.settings import PRESETS, SamplerSettings

log = logging.getLogger("bench.quality")

# label -> changes to the paper preset (or "preset:NAME"); ordered from cheap to dear.
DEFAULT_CURVE: dict[str, str] = {
    "identity (input as output)": "mode=identity",
    "bridge only": "mode=bridge",
    "cpu": "preset:cpu",
    "cpu, uniform levels": "preset:cpu,level_spacing=uniform",
    "cpu, 8 levels": "preset:cpu,level_stride=50",
    "stride 40, J 1": "level_stride=40,refinements=1",
    "stride 40, J 1, quadratic": "level_stride=40,refinements=1,level_spacing=quadratic",
    "stride 16, J 1": "level_stride=16,refinements=1",
    "fast": "preset:fast",
    "stride 8, J 1": "level_stride=8,refinements=1",
    "stride 16, J 3": "level_stride=16",
    "stride 8, J 3, early 0 (3/4)": "level_stride=8,early_overlap=0.0,early_levels_fraction=0.75",
    "stride 8, J 3, early 0.25 (3/4)": "level_stride=8,early_overlap=0.25,early_levels_fraction=0.75",
    "stride 8, J 2": "level_stride=8,refinements=2",
    "stride 8, J 3, early 0.5 (3/4)": "level_stride=8,early_overlap=0.5,early_levels_fraction=0.75",
    "stride 8, J 3": "level_stride=8",
    "stride 4, J 3": "level_stride=4",
    "stride 2, J 3": "level_stride=2",
    "paper": "preset:paper",
}
def warm_up(enhancer: Enhancer, case) -> None:
    """One evaluation, so that compilation (when the settings compile) is not in any run's time."""
    started = time.perf_counter()
    x = torch.from_numpy(case.network_input)[None].to(enhancer.device)
    plans = enhancer.prepare(enhancer.plan(case.shape))
    with enhancer.engine.running():
        enhancer.engine.denoiser(plans, 0)(x, enhancer.settings.algorithm.bridge_timestep)
    log.info("warm-up evaluation (compilation included) %.0f s", time.perf_counter() - started)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__.split("\n\n")[0])
    add_weights(p)
    add_device(p)
    p.add_argument("--subjects", type=int, default=2, help="held-out simulated subjects")
    add_subject_seed(p, HELD_OUT_SEED, "first subject's seed (then seed+1, ...)")
    p.add_argument("--shape-scale", type=float, default=1.0)
    add_crop(p)
    add_window(p)
    add_variation(p)
    p.add_argument("--configurations", nargs="*", metavar="LABEL",
                   help=f"labels from the default curve (default all): {', '.join(DEFAULT_CURVE)}")
    p.add_argument("--add", nargs=2, action="append", default=[], metavar=("LABEL", "SPEC"),
                   help="an extra configuration: 'preset:NAME[,key=value,...]' or 'key=value,...' on the paper preset")
    p.add_argument("--max-run-seconds", type=float, default=math.inf,
                   help="skip configurations estimated to take longer than this per subject")
    p.add_argument("--bench-json", type=Path, help="a python -m bench result, for full-head seconds")
    p.add_argument("--no-compile", action="store_true",
                   help="on the CPU, leave the U-Net eager (default: compiled once, which takes minutes and pays "
                        "off only for long curves)")
    p.add_argument("--out", type=Path, default=Path("runs/quality"), help="folder for quality.json, .md, .png")
    return p.parse_args(argv)


def windows_per_second(runs: RunLog) -> float | None:
    """The median windows per second of the runs so far (None before the first run of a network)."""
    rates = [(r["unet_windows"] + r["bridge_windows"]) / r["seconds"] for r in runs.runs() if r["unet_windows"]]
    return float(np.median(rates)) if rates else None


def summarise(runs: RunLog, curve: dict[str, SamplerSettings], bench: dict | None,
              document: dict[str, Any], subjects: list[int] | None = None,
              keys: dict[str, dict] | None = None) -> list[dict[str, Any]]:
    """Mean score and cost per configuration, in curve order; full-head cost (on the presets' window,
    or the bench's) relative to paper. With ``subjects`` and ``keys`` (label -> :func:`bench.sweep.run_key`),
    only the runs of those subjects under their configuration's key count."""
    window = tuple(bench["window"]) if bench is not None else PRESETS["paper"].engine.window
    document["cost_window"] = list(window)
    paper = plan_case(PRESETS["paper"].updated(window=window), FULL_HEAD_SHAPE).windows
    wps = None
    if bench is not None:
        default = next(r for r in bench["rows"] if r["configuration"] == bench["default_configuration"])
        wps = default["windows_per_second"]
    rows = []
    for label, settings in curve.items():
        finished = runs.runs(label) if keys is None else runs.current(label, subjects, keys[label])
        if not finished:
            continue
        windows = plan_case(settings.updated(window=window), FULL_HEAD_SHAPE).windows
        rows.append({
            "label": label, "settings": settings.to_dict(), "subjects": len(finished),
            "score": float(np.mean([r["metrics"]["score"] for r in finished])),
            "score_per_subject": [r["metrics"]["score"] for r in finished],
            **{m: float(np.mean([r["metrics"][m] for r in finished])) for m in ("ssim", "psnr", "mae", "nmse")},
            "measured_seconds": float(np.mean([r["seconds"] for r in finished])),
            "evaluations": float(np.mean([r["evaluations"] for r in finished])),
            "full_head_windows": windows, "time_vs_paper": windows / paper,
            "full_head_seconds": None if wps is None else windows / wps,
        })
    reference = next((r for r in rows if r["label"] == "paper"), None)
    for row in rows:
        row["score_minus_paper"] = None if reference is None else row["score"] - reference["score"]
    return rows


def markdown(rows: list[dict[str, Any]], document: dict[str, Any]) -> str:
    lines = [f"Held-out simulated subjects {document['subject_seeds']}, {document['volume']}, window "
             f"{'x'.join(map(str, document['window']))}, weights {document['weights']} (trained: {document['trained']}).",
             "", "| configuration | evals | time vs paper (full head) | full-head s | measured s | score | "
             "score - paper | SSIM | PSNR |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        full = "-" if r["full_head_seconds"] is None else f"{r['full_head_seconds']:.0f}"
        delta = "-" if r["score_minus_paper"] is None else f"{r['score_minus_paper']:+.4f}"
        ratio = f"1/{1 / r['time_vs_paper']:.1f}" if r["time_vs_paper"] else "0"
        lines.append(f"| {r['label']} | {r['evaluations']:.0f} | {ratio} | {full} | "
                     f"{r['measured_seconds']:.0f} | {r['score']:.4f} | {delta} | {r['ssim']:.4f} | {r['psnr']:.2f} |")
    return "\n".join(lines) + "\n"


class CurveRun:
    """One run of the curve: one U-Net for every configuration, compiled once (on the CPU) and warmed up
    in no run's time; configurations estimated above ``max_seconds`` are skipped."""

    def __init__(self, args: argparse.Namespace, device: torch.device, runs: RunLog):
        self.args, self.device, self.runs = args, device, runs
        self.shared_unet = None

    def __call__(self, label: str, settings: SamplerSettings, subject: int) -> dict[str, Any] | None:
        if self.device.type == "cpu":
            settings = settings.updated(compile="off" if self.args.no_compile else "on")
        case = simulated_case(subject, self.args.shape_scale, self.args.crop, variation=self.args.variation)
        enhancer = Enhancer(settings, self.args.weights, self.device)
        if enhancer.engine.unet is not None:  # one U-Net (compiled once, when compiled) shared by every run
            if self.shared_unet is None:
                if enhancer.settings.engine.compile != "off":
                    warm_up(enhancer, case)
                self.shared_unet = enhancer.engine.unet
            enhancer = Enhancer.from_networks(settings, self.device, enhancer.schedule, unet=self.shared_unet,
                                              bridge=enhancer.engine.bridge, weights_dir=self.args.weights)
        wps, windows = windows_per_second(self.runs), plan_case(settings, case.shape).windows
        if wps and windows / wps > self.args.max_run_seconds:
            log.info("skip %s on subject %d: about %.0f s", label, subject, windows / wps)
            return None
        return enhance_and_score(enhancer, case)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("model").setLevel(logging.WARNING)
    device = select_device(args.device)
    labels = args.configurations or list(DEFAULT_CURVE)
    specs = {**{label: DEFAULT_CURVE[label] for label in labels}, **dict(args.add)}
    curve = {label: configured(spec).updated(window=window_of(args)) for label, spec in specs.items()}
    if device.type == "cpu":  # as CurveRun runs them, so that the runs' keys say so
        curve = {label: s.updated(compile="off" if args.no_compile else "on") for label, s in curve.items()}
    manifest = json.loads((args.weights / "manifest.json").read_text())
    subjects = [args.subject_seed + i for i in range(args.subjects)]
    runs = RunLog(args.out / "quality.jsonl")
    checksums = weights_checksums(args.weights)
    keys = {label: run_key(checksums, settings, crop=args.crop, variation=args.variation, shape_scale=args.shape_scale,
                           device=device.type, scoring=scored(settings)) for label, settings in curve.items()}
    sweep(curve, subjects, runs, CurveRun(args, device, runs), key=lambda label, settings: keys[label])
    document = {"weights": str(args.weights), "device": str(device),
                "trained": all(entry.get("trained", False) for entry in manifest["networks"].values()),
                "window": list(next(iter(curve.values())).engine.window), "subject_seeds": subjects,
                "shape_scale": args.shape_scale, "crop": args.crop,
                "volume": simulated_case(subjects[0], args.shape_scale, args.crop,
                                         variation=args.variation).name.split(", ", 1)[1],
                "variation": args.variation,
                "runs": [r for label in curve for r in runs.current(label, subjects, keys[label])]}
    bench = json.loads(args.bench_json.read_text()) if args.bench_json else None
    rows = summarise(runs, curve, bench, document, subjects, keys)
    document["summary"] = rows
    (args.out / "quality.json").write_text(json.dumps(document, indent=2) + "\n")
    (args.out / "quality.md").write_text(markdown(rows, document))
    from bench.plot import plot_curve

    plot_curve(rows, document, args.out / "quality_time.png")
    print(markdown(rows, document))
    return 0


if __name__ == "__main__":
    sys.exit(main())
