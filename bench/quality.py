"""``python -m bench.quality``: the quality-time curve of the sampler's speed levers and presets.

Each configuration (a preset, or the ``paper`` preset with some levers changed) enhances held-out
simulated subjects end to end; the challenge's final score against the 3 T reference is averaged
over subjects and contrasts. Time is given two ways: measured seconds on the volume that was
enhanced, and the configuration's cost on a full 1 mm head relative to ``paper`` (U-Net windows
of every evaluation plus the bridge's, counted on the full head's window grids; early stopping
scaled by the share of refinements it actually ran), on the presets' window whatever window the
runs used. ``--bench-json`` (a ``python -m bench`` result) turns that into full-head seconds with
the windows per second of its default engine.

Results are written after every run (``--out``/quality.json) and runs already there are skipped,
so an interrupted curve resumes where it stopped. ``--max-run-seconds`` skips configurations whose
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

from bench.case import HELD_OUT_SEED, case_score, simulated_case
from bench.cli import FULL_HEAD_SHAPE, REPO_WEIGHTS
from model.enhancer import Enhancer, select_device
from model.settings import PRESETS, SamplerSettings
from model.windows import plan_windows

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
    "stride 8, J 3, stop 1e-3": "level_stride=8,refine_tolerance=1e-3",
    "stride 4, J 3": "level_stride=4",
    "stride 2, J 3": "level_stride=2",
    "paper": "preset:paper",
}
FIELD_TYPES = {"mode": str, "level_stride": int, "level_spacing": str, "refinements": int, "bridge_timestep": int,
               "overlap": float, "early_overlap": float, "early_levels_fraction": float, "refine_tolerance": float}


def parse_configuration(spec: str) -> SamplerSettings:
    """``key=value,...`` applied to the paper preset, or ``preset:NAME[,key=value,...]`` to that preset."""
    base = PRESETS["paper"]
    if spec.startswith("preset:"):
        name, _, spec = spec.split(":", 1)[1].partition(",")
        base = PRESETS[name]
    changes = {}
    for item in filter(None, spec.split(",")):
        key, value = item.split("=", 1)
        if key not in FIELD_TYPES:
            raise ValueError(f"unknown lever '{key}' (known: {', '.join(FIELD_TYPES)})")
        changes[key] = FIELD_TYPES[key](value)
    return base.updated(**changes)


def full_head_windows(settings: SamplerSettings) -> tuple[int, int]:
    """(U-Net windows of one case at most, bridge windows) on the full 1 mm head's window grids."""
    grids = {o: plan_windows(FULL_HEAD_SHAPE, settings.window, o).num_windows
             for o in {settings.overlap, settings.overlap_at(settings.bridge_timestep)}}
    unet = sum(settings.refinements * grids[settings.overlap_at(level)] for level in settings.levels)
    return (unet if settings.mode.uses_diffusion else 0), (grids[settings.overlap] if settings.mode.uses_bridge else 0)


def warm_up(enhancer: Enhancer, plans, case) -> None:
    """One evaluation, so that compilation (when the settings compile) is not in any run's time."""
    started = time.perf_counter()
    x = torch.from_numpy(case.network_input)[None].to(enhancer.device)
    with torch.inference_mode(), enhancer.autocast():
        enhancer.denoiser(plans)(x, enhancer.settings.bridge_timestep)
    log.info("warm-up evaluation (compilation included) %.0f s", time.perf_counter() - started)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", type=Path, default=REPO_WEIGHTS)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--subjects", type=int, default=2, help="held-out simulated subjects")
    p.add_argument("--seed", type=int, default=HELD_OUT_SEED, help="first subject's seed (then seed+1, ...)")
    p.add_argument("--shape-scale", type=float, default=1.0)
    p.add_argument("--crop", type=int, nargs=3, metavar=("X", "Y", "Z"), help="enhance a centred crop only")
    p.add_argument("--window", type=int, nargs=3, metavar=("X", "Y", "Z"), help="window (default the presets')")
    p.add_argument("--configurations", nargs="*", metavar="LABEL",
                   help=f"labels from the default curve (default all): {', '.join(DEFAULT_CURVE)}")
    p.add_argument("--add", nargs=2, action="append", default=[], metavar=("LABEL", "SPEC"),
                   help="an extra configuration: 'preset:NAME' or 'key=value,...' on the paper preset")
    p.add_argument("--max-run-seconds", type=float, default=math.inf,
                   help="skip configurations estimated to take longer than this per subject")
    p.add_argument("--bench-json", type=Path, help="a python -m bench result, for full-head seconds")
    p.add_argument("--out", type=Path, default=Path("runs/quality"), help="folder for quality.json, .md, .png")
    return p.parse_args(argv)


class Curve:
    """The runs of the curve, kept in ``quality.json`` after each one."""

    def __init__(self, path: Path, meta: dict[str, Any]):
        self.path = path
        self.document = json.loads(path.read_text()) if path.is_file() else {"runs": []}
        self.document.update(meta)

    def done(self, label: str, subject: int) -> bool:
        return any(r["label"] == label and r["subject"] == subject for r in self.document["runs"])

    def add(self, run: dict[str, Any]) -> None:
        self.document["runs"].append(run)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.document, indent=2) + "\n")

    def windows_per_second(self) -> float | None:
        runs = self.document["runs"]
        if not runs:
            return None
        rates = [(r["unet_windows"] + r["bridge_windows"]) / r["seconds"] for r in runs if r["unet_windows"]]
        return float(np.median(rates)) if rates else None


def summarise(document: dict[str, Any], curve: dict[str, SamplerSettings], bench: dict | None) -> list[dict[str, Any]]:
    """Mean score and cost per configuration, in curve order; full-head cost (on the presets' window,
    or the bench's) relative to paper."""
    window = tuple(bench["window"]) if bench is not None else PRESETS["paper"].window
    document["cost_window"] = list(window)
    paper_unet, paper_bridge = full_head_windows(PRESETS["paper"].updated(window=window))
    wps = None
    if bench is not None:
        default = next(r for r in bench["rows"] if r["configuration"] == bench["default_configuration"])
        wps = default["windows_per_second"]
    rows = []
    for label, settings in curve.items():
        runs = [r for r in document["runs"] if r["label"] == label]
        if not runs:
            continue
        unet, bridge = full_head_windows(settings.updated(window=window))
        ran = float(np.mean([r["evaluations"] / r["evaluations_at_most"] if r["evaluations_at_most"] else 1.0
                             for r in runs]))
        windows = unet * ran + bridge
        rows.append({
            "label": label, "settings": settings.to_dict(), "subjects": len(runs),
            "score": float(np.mean([r["metrics"]["score"] for r in runs])),
            "score_per_subject": [r["metrics"]["score"] for r in runs],
            **{m: float(np.mean([r["metrics"][m] for r in runs])) for m in ("ssim", "psnr", "mae", "nmse")},
            "measured_seconds": float(np.mean([r["seconds"] for r in runs])),
            "evaluations": float(np.mean([r["evaluations"] for r in runs])),
            "full_head_windows": windows, "time_vs_paper": windows / (paper_unet + paper_bridge),
            "full_head_seconds": None if wps is None else windows / wps,
        })
    paper = next((r for r in rows if r["label"] == "paper"), None)
    for row in rows:
        row["score_minus_paper"] = None if paper is None else row["score"] - paper["score"]
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


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("model").setLevel(logging.WARNING)
    device = select_device(args.device)
    window = tuple(args.window) if args.window else None
    labels = args.configurations or list(DEFAULT_CURVE)
    curve = {label: parse_configuration(DEFAULT_CURVE[label]).updated(window=window) for label in labels}
    curve.update({label: parse_configuration(spec).updated(window=window) for label, spec in args.add})
    manifest = json.loads((args.weights / "manifest.json").read_text())
    trained = all(entry.get("trained", False) for entry in manifest["networks"].values())
    subjects = [args.seed + i for i in range(args.subjects)]
    meta = {"weights": str(args.weights), "trained": trained, "device": str(device),
            "window": list(next(iter(curve.values())).window), "subject_seeds": subjects,
            "shape_scale": args.shape_scale, "crop": args.crop}
    record = Curve(args.out / "quality.json", meta)
    shared_unet = None  # one U-Net for every configuration: compiled once (on the CPU), in no run's time
    cases = {subject: simulated_case(subject, args.shape_scale, args.crop) for subject in subjects}
    record.document["volume"] = next(iter(cases.values())).name.split(", ", 1)[1]
    for label, settings in curve.items():  # cheap to dear, every subject before the next configuration
        if device.type == "cpu":
            settings = settings.updated(compile="on")
        for subject, case in cases.items():
            if record.done(label, subject):
                continue
            enhancer = Enhancer(settings, args.weights, device)
            if shared_unet is not None and enhancer.unet is not None:
                enhancer.unet = shared_unet
            plans = enhancer.plans_for(case.shape)
            if shared_unet is None and enhancer.unet is not None:
                shared_unet = enhancer.unet
                warm_up(enhancer, plans, case)
            at_most = len(settings.levels) * settings.refinements if settings.mode.uses_diffusion else 0
            estimate_windows = sum(settings.refinements * plans.for_level(level).num_windows for level in settings.levels)
            wps = record.windows_per_second()
            if wps and estimate_windows / wps > args.max_run_seconds:
                log.info("skip %s on subject %d: about %.0f s", label, subject, estimate_windows / wps)
                continue
            started = time.perf_counter()
            enhanced = enhancer.enhance(case.network_input)
            seconds = time.perf_counter() - started
            metrics = case_score(case, enhanced)
            log.info("%s, subject %d: score %.4f in %.0f s (%d evaluations)", label, subject, metrics["score"], seconds,
                     enhancer.counts.evaluations)
            record.add({"label": label, "subject": subject, "settings": settings.to_dict(), "seconds": seconds,
                        "evaluations": enhancer.counts.evaluations, "evaluations_at_most": at_most,
                        "unet_windows": enhancer.counts.windows, "bridge_windows": enhancer.counts.bridge_windows,
                        "metrics": metrics})
    bench = json.loads(args.bench_json.read_text()) if args.bench_json else None
    rows = summarise(record.document, curve, bench)
    record.document["summary"] = rows
    (args.out / "quality.json").write_text(json.dumps(record.document, indent=2) + "\n")
    (args.out / "quality.md").write_text(markdown(rows, record.document))
    from bench.plot import plot_curve

    plot_curve(rows, record.document, args.out / "quality_time.png")
    print(markdown(rows, record.document))
    return 0


if __name__ == "__main__":
    sys.exit(main())
