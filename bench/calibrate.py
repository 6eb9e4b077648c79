"""``python -m bench.calibrate --weights DIR --write``: measure what a weights folder does and record it in
its manifest, where the time-budget planner and the ``auto`` preset read it (:mod:`model.weights.calibration`).

Each configuration the planner may choose (:data:`CONFIGURATIONS`, those inside the networks' trained
timesteps) enhances the held-out subjects of the three sets — **ordinary** (simulator parameters drawn from
the training ranges), **shifted** (every parameter outside them) and **foreign** (another simulator,
:mod:`simulation.foreign`: its own signal model, tissues, anatomy deformation and 64 mT acquisition, never
trained on) — and is scored with the challenge's metric against the 3 T reference inside the brain mask; the
raw low-field input (the identity) is scored beside them. The score that orders the ladder is the mean over
the sets (:data:`SETS`) of each set's mean over subjects and contrasts. The networks run in the precision ``--precision auto`` gives on this CPU (bfloat16
where the processor computes it natively: scores within 0.0005 of float32, docs/speed.md), recorded. Each configuration's cost is its windows on a full 1 mm head (:func:`model.execution.plan.plan_case`).

Runs are logged as they finish (``--out``/calibration.jsonl) keyed on the weights' checksums, the settings,
the set and the crop (:mod:`bench.sweep`), so an interrupted calibration resumes and never mixes weights.
``--write`` puts the ``"calibration"`` block into ``DIR/manifest.json`` (atomically) with the networks'
checksums, the command, the date and the machine; without it the table is only printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.case import VALIDATION_SEED, simulated_case
from bench.cli import FULL_HEAD_SHAPE
from bench.sweep import RunLog, enhance_and_score, run_key, scored, sweep, weights_checksums
from model.weights.calibration import (CALIBRATION_FORMAT, CALIBRATION_KEY, RUNG_FIELDS, Rung, levels_outside_training,
                               auto_settings, network_checksums)
from model.weights.calibration import rung as configuration
from model.execution.plan import plan_case
from model.pipeline.enhancer import Enhancer
from model.cli.options import add_crop, add_weights, add_window, window_of
from model.execution.precision import resolve_precision
from model.config.settings import SamplerSettings, preset
from model.weights.manifest import MANIFEST_NAME, read_manifest

log = logging.getLogger("bench.calibrate")

# held-out set -> simulator parameters (simulation/variation.py), or the foreign simulator (simulation/foreign/)
SETS = {"ordinary": "training", "shifted": "shifted", "foreign": "foreign"}
DEFAULT_CROP = (128, 160, 64)
METRICS = ("score", "ssim", "psnr", "mae", "nmse")


# What the planner may choose, for networks trained around K = 100 and below t = 32 (the shipped ones): the
# bridge at K = 100, then the chain 25, 10, 1 (or its cheaper tails) on three window grids, or the bridge alone.
CONFIGURATIONS: tuple[Rung, ...] = (
    # several samples (their mean: docs/uncertainty.md): never --preset auto, a time budget's choice when they fit
    configuration("chain 25,10,1, J 1, overlap 0.7, 4 samples", overlap=0.7, samples=4),
    configuration("chain 25,10,1, J 1, overlap 0.7, 2 samples", overlap=0.7, samples=2),
    configuration("chain 25,10,1, J 1, overlap 0.7", overlap=0.7),
    configuration("chain 25,10,1, J 1, overlap 0.5", overlap=0.5),
    configuration("chain 25,10,1, J 1, overlap 0.25", overlap=0.25),
    configuration("chain 25,10,1, J 2, overlap 0.25", overlap=0.25, refinements=2),
    configuration("chain 10,1, overlap 0.25", chain=(10, 1)),
    configuration("chain 10, overlap 0.25", chain=(10,)),
    *(configuration(f"bridge, overlap {overlap:g}", mode="bridge", overlap=overlap) for overlap in (0.7, 0.5, 0.25)),
)
IDENTITY = configuration("identity (raw input)", mode="identity")


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.calibrate", description=__doc__.split("\n\n")[0])
    add_weights(p)
    p.add_argument("--subjects", type=int, default=2, help="held-out subjects per set (default 2)")
    p.add_argument("--subject-seed", type=int, default=VALIDATION_SEED, help="first subject's seed of each set (default: the validation subjects)")
    add_crop(p, help=f"centred crop of each normalised head (default {' '.join(map(str, DEFAULT_CROP))})")
    p.add_argument("--shape-scale", type=float, default=1.0, help="simulated heads at 1/scale mm (tests: smaller heads)")
    add_window(p, help="window size (default the engine's: 128 128 32; tests: smaller networks)")
    p.add_argument("--configurations", nargs="*", metavar="LABEL",
                   help=f"only these (default all): {', '.join(r.label for r in CONFIGURATIONS)}")
    p.add_argument("--out", type=Path, default=Path("runs/calibration"), help="folder for the run log and the table")
    p.add_argument("--write", action="store_true", help="write the calibration into the weights' manifest")
    p.add_argument("--no-progress", action="store_true", help="warnings only")
    args = p.parse_args(argv)
    args.crop = tuple(args.crop) if args.crop else DEFAULT_CROP
    args.window = tuple(args.window) if args.window else None
    if args.subjects < 1:
        p.error("--subjects must be at least 1")
    return args


PRECISION = resolve_precision("auto", torch.device("cpu"))  # what `auto` runs on this CPU, named in keys and the block


def settings_of(rung: Rung, window: tuple[int, int, int] | None = None) -> SamplerSettings:
    """A configuration as the planner runs it on this CPU: no compilation, the precision ``auto`` resolves to
    here (named, so that runs logged on another processor are not reused), the engine's defaults otherwise."""
    return rung.settings(SamplerSettings().updated(window=window, precision=PRECISION), planned=True)


def key_of(args: argparse.Namespace, checksums: dict[str, str], rung: Rung, variation: str) -> dict[str, Any]:
    """The key a run of ``rung`` on a set is logged and found under (:func:`bench.sweep.run_key`)."""
    settings = settings_of(rung, args.window)
    return run_key(checksums, settings, crop=args.crop, variation=variation, shape_scale=args.shape_scale, device="cpu",
                   scoring=scored(settings))


def measure(args: argparse.Namespace, rungs: list[Rung], device: torch.device) -> RunLog:
    """Every configuration (and the identity) on every subject of every set, logged and resumable."""
    runs = RunLog(args.out / "calibration.jsonl")
    checksums = weights_checksums(args.weights)
    subjects = list(range(args.subject_seed, args.subject_seed + args.subjects))
    for set_name, variation in SETS.items():
        configurations = {f"{set_name}: {rung.label}": rung for rung in [IDENTITY, *rungs]}

        def key(label: str, rung: Rung, variation: str = variation) -> dict[str, Any]:
            return key_of(args, checksums, rung, variation)

        def run(label: str, rung: Rung, subject: int, variation: str = variation) -> dict[str, Any]:
            enhancer = Enhancer(settings_of(rung, args.window), None if rung.changes["mode"] == "identity" else args.weights,
                                device)
            case = simulated_case(subject, shape_scale=args.shape_scale, crop=args.crop, variation=variation)
            return enhance_and_score(enhancer, case)

        sweep(configurations, subjects, runs, run, key=key)
    return runs


def set_metrics(runs: RunLog, label: str, subjects: list[int], key: dict[str, Any]) -> dict[str, float]:
    """A configuration's metrics on one set: means over subjects (of their means over contrasts), from the
    runs logged under ``key`` only."""
    finished = runs.current(label, subjects, key)
    if len(finished) != len(subjects):
        raise RuntimeError(f"{label}: {len(finished)} of {len(subjects)} subjects measured")
    return {m: round(float(np.mean([r["metrics"][m] for r in finished])), 4) for m in METRICS} | \
        {"subjects": len(finished)}


def calibration_block(args: argparse.Namespace, rungs: list[Rung], runs: RunLog, argv: list[str]) -> dict[str, Any]:
    """The manifest's ``calibration`` block (:mod:`model.weights.calibration` reads it)."""
    subjects = list(range(args.subject_seed, args.subject_seed + args.subjects))
    manifest = read_manifest(args.weights)
    checksums = weights_checksums(args.weights)

    def metrics(rung: Rung) -> dict[str, dict[str, float]]:
        return {name: set_metrics(runs, f"{name}: {rung.label}", subjects, key_of(args, checksums, rung, variation))
                for name, variation in SETS.items()}

    configurations = []
    for rung in rungs:
        sets = metrics(rung)
        cost = plan_case(settings_of(rung), FULL_HEAD_SHAPE)
        configurations.append({
            "label": rung.label, "settings": {k: rung.changes[k] for k in (*RUNG_FIELDS, "samples")},
            "score": round(float(np.mean([s["score"] for s in sets.values()])), 4), "sets": sets,
            "full_head_windows": {"diffusion": cost.unet_windows, "bridge": cost.bridge_windows},
        })
    configurations.sort(key=lambda c: -c["score"])
    return {
        "format": CALIBRATION_FORMAT,
        "networks_sha256": network_checksums(manifest),
        "measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m bench.calibrate " + " ".join(shlex.quote(a) for a in argv),
        "machine": machine(),
        "precision": PRECISION,
        "held_out": {name: {"variation": variation, "seeds": subjects, "crop": list(args.crop),
                            "shape_scale": args.shape_scale, "window": list(settings_of(IDENTITY, args.window).engine.window)}
                     for name, variation in SETS.items()},
        "identity": metrics(IDENTITY),
        "configurations": configurations,
    }


def machine() -> str:
    """The processor, cores, torch version and threads, for the record."""
    model = platform.processor() or platform.machine()
    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
        model = names[0] if names else model
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} thread(s)"


def table(block: dict[str, Any]) -> str:
    """The calibration as a Markdown table, best first, the raw input first."""
    names = list(block["identity"])  # the sets, in SETS order
    lines = ["| configuration | score | " + " | ".join(f"{name}: score / SSIM / PSNR" for name in names)
             + " | full-head windows (diffusion + bridge) |", "|---|---|" + "---|" * len(names) + "---|"]

    def cells(sets):
        return [f"{s['score']:.4f} / {s['ssim']:.3f} / {s['psnr']:.2f}" for s in sets.values()]

    identity = block["identity"]
    lines.append(f"| identity (raw 64 mT input) | {np.mean([s['score'] for s in identity.values()]):.4f} | "
                 + " | ".join(cells(identity)) + " | 0 |")
    for c in block["configurations"]:
        w = c["full_head_windows"]
        lines.append(f"| {c['label']} | {c['score']:.4f} | " + " | ".join(cells(c["sets"]))
                     + f" | {w['diffusion']} + {w['bridge']} |")
    return "\n".join(lines)


def held_out_settings(args: argparse.Namespace) -> tuple[str, SamplerSettings]:
    """How a held-out measurement starts (bench.uncertainty, bench.output_remap): logging, ``--threads``, and the
    settings of ``--preset`` (``auto``: the weights' calibrated best) with ``--window``, and their label."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("model").setLevel(logging.WARNING)
    torch.set_num_threads(args.threads)
    label, settings = auto_settings(args.weights) if args.preset == "auto" else (args.preset, preset(args.preset))
    return label, settings.updated(window=window_of(args))


def write_manifest_block(weights: Path, key: str, block: dict[str, Any]) -> None:
    """Put ``block`` under ``key`` into ``weights/manifest.json`` (written to a temporary, then renamed), after
    checking that the files are those the manifest lists (the block names their checksums)."""
    path = Path(weights) / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    if weights_checksums(weights) != network_checksums(manifest):
        raise SystemExit(f"{path}: the network files' checksums differ from the manifest's; {key} not written")
    manifest[key] = block
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(partial, path)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_arguments(argv)
    logging.basicConfig(level=logging.WARNING if args.no_progress else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("model").setLevel(logging.WARNING)
    wanted = set(args.configurations or [r.label for r in CONFIGURATIONS])
    unknown = wanted - {r.label for r in CONFIGURATIONS}
    if unknown:
        print(f"unknown configuration(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    rungs = []
    for rung in CONFIGURATIONS:
        if rung.label not in wanted:
            continue
        outside = levels_outside_training(settings_of(rung), args.weights)
        if outside:
            log.info("%s: left out, it evaluates %s", rung.label, "; ".join(outside))
            continue
        rungs.append(rung)
    if not rungs:
        print("no configuration lies inside the networks' trained timesteps", file=sys.stderr)
        return 2
    runs = measure(args, rungs, torch.device("cpu"))
    block = calibration_block(args, rungs, runs, argv)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "calibration.json").write_text(json.dumps(block, indent=2) + "\n")
    text = table(block)
    (args.out / "calibration.md").write_text(text + "\n")
    print(text)
    if args.write:
        write_manifest_block(args.weights, CALIBRATION_KEY, block)
        print(f"calibration written to {Path(args.weights) / MANIFEST_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
