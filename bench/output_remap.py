"""``python -m bench.output_remap --weights DIR``: fit the output intensity remap (:mod:`model.volumes.remap`) on
training subjects, measure it on the held-out sets, and with ``--write`` keep it in the weights' manifest for
the contrasts where it helped on every set.

1. **Fit**: subjects 1..``--fit-subjects`` of the training data set (``python -m simulation --seed
   --data-seed``, training simulator parameters: the campaign's SIM0001, ...; never a held-out subject) are
   enhanced with ``--preset`` (default ``auto``, the remap off), and per contrast the output's quantiles over the
   head are matched to the 3 T target's (normalised as the training targets are).
2. **Measure**: the held-out sets of the calibration (:data:`bench.calibrate.SETS`) are enhanced once each and
   scored with the challenge's metric as they come out and after the remap, per contrast.
3. ``--write``: the block ``"output_remap"`` (knots of the contrasts that gained on every set, the networks'
   checksums, the settings, the subjects, the command, the date) goes into ``DIR/manifest.json`` atomically;
   ``--preset auto`` runs (mode full) then apply it. With no contrast gaining everywhere, nothing is written.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.calibrate import DEFAULT_CROP, SETS, held_out_settings, write_manifest_block
from bench.case import VALIDATION_SEED, centred_crop, contrast_scores, raw_input_scores, simulated_case, simulated_subject
from bench.cli import machine
from model.cli.options import add_crop, add_weights, add_window
from model.pipeline.enhancer import Enhancer
from model.volumes.intensity import OUTPUT_CEILING, normalise_contrasts
from model.volumes.layouts import CONTRASTS
from model.volumes.remap import REMAP_FORMAT, REMAP_KEY, fit_output_remap
from model.weights.calibration import network_checksums
from model.weights.manifest import MANIFEST_NAME, read_manifest
from simulation.dataset import subject_seed

log = logging.getLogger("bench.output_remap")

HEAD_THRESHOLD = 0.01  # a head voxel: any 3 T contrast above this share of the [-1, 1] range


def training_target(seed: int, variation: str, crop, shape_scale: float = 1.0) -> np.ndarray:
    """Subject ``seed``'s 3 T volumes normalised as the training targets are (whole head, ceiling OUTPUT_CEILING),
    then cropped like the case."""
    subject = simulated_subject(seed, shape_scale, variation)
    high, _ = normalise_contrasts(list(subject.high), [f"{seed} 3T {c}" for c in CONTRASTS], ceiling=OUTPUT_CEILING)
    return high[(slice(None), *centred_crop(subject.mask.shape, crop))]


def fit(args: argparse.Namespace, settings) -> tuple[Any, list[int]]:
    outputs, targets, heads, seeds = [], [], [], []
    enhancer = Enhancer(settings.updated(output_remap=False), args.weights, torch.device("cpu"))
    for number in range(1, args.fit_subjects + 1):
        seed = subject_seed(args.data_seed, number)
        case = simulated_case(seed, args.shape_scale, args.crop, variation="training")
        target = training_target(seed, "training", args.crop, args.shape_scale)
        outputs.append(enhancer.enhance(case.network_input).volume)
        targets.append(target)
        heads.append((target > -1.0 + 2.0 * HEAD_THRESHOLD).any(axis=0))
        seeds.append(seed)
        log.info("fitting subject %d (seed %d) enhanced", number, seed)
    return fit_output_remap(outputs, targets, heads), seeds


def measure(args: argparse.Namespace, settings, remap) -> dict[str, Any]:
    """Per set: the raw input's, the output's and the remapped output's scores per contrast (means over subjects)."""
    enhancer = Enhancer(settings.updated(output_remap=False), args.weights, torch.device("cpu"))
    sets = {}
    for name, variation in SETS.items():
        rows = {"raw input": [], "output": [], "remapped": []}
        for seed in range(args.subject_seed, args.subject_seed + args.subjects):
            case = simulated_case(seed, args.shape_scale, args.crop, variation=variation)
            output = enhancer.enhance(case.network_input).volume
            rows["raw input"].append(raw_input_scores(case))
            rows["output"].append(contrast_scores(case, output))
            rows["remapped"].append(contrast_scores(case, remap.apply(output)))
            log.info("%s set, subject %d scored", name, seed)
        sets[name] = {kind: {c: float(np.mean([r[i]["score"] for r in runs])) for i, c in enumerate(CONTRASTS)}
                      for kind, runs in rows.items()}
    return sets


def table(sets: dict[str, Any], kept: list[str]) -> str:
    lines = ["| set | contrast | raw input | output | remapped | change |", "|---|---|---|---|---|---|"]
    for name, kinds in sets.items():
        for c in CONTRASTS:
            change = kinds["remapped"][c] - kinds["output"][c]
            lines.append(f"| {name} | {c} | {kinds['raw input'][c]:.4f} | {kinds['output'][c]:.4f} | "
                         f"{kinds['remapped'][c]:.4f} | {change:+.4f} |")
    lines.append("")
    lines.append(f"Kept (better on every set): {', '.join(kept) if kept else 'none'}.")
    return "\n".join(lines)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.output_remap", description=__doc__.split("\n\n")[0])
    add_weights(p)
    p.add_argument("--preset", default="auto", help="the settings the remap is fitted for (default auto)")
    p.add_argument("--data-seed", type=int, default=11, help="the training data set's seed (default 11, the campaign's)")
    p.add_argument("--fit-subjects", type=int, default=6, help="training subjects to fit on (default 6)")
    p.add_argument("--subjects", type=int, default=2, help="held-out subjects per set (default 2)")
    p.add_argument("--subject-seed", type=int, default=VALIDATION_SEED, help="first held-out subject's seed (default: the validation subjects: the remap is kept or not on them)")
    add_crop(p)
    add_window(p)
    p.add_argument("--shape-scale", type=float, default=1.0, help="simulate at this scale (1: 1 mm heads)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("runs/output-remap"))
    p.add_argument("--write", action="store_true", help="keep the remap in DIR/manifest.json (the contrasts that gained)")
    args = p.parse_args(argv)
    args.crop = tuple(args.crop) if args.crop else DEFAULT_CROP
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_arguments(argv)
    label, settings = held_out_settings(args)
    remap, seeds = fit(args, settings)
    sets = measure(args, settings, remap)
    kept = [c for c in CONTRASTS if all(k["remapped"][c] > k["output"][c] for k in sets.values())]
    text = table(sets, kept)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "output_remap.md").write_text(text + "\n")
    (args.out / "output_remap.json").write_text(json.dumps({"sets": sets, "kept": kept, "knots": remap.to_record()}, indent=2))
    print(text)
    if args.write and kept:
        manifest = read_manifest(args.weights)
        write_manifest_block(args.weights, REMAP_KEY, {
            "format": REMAP_FORMAT, "networks_sha256": network_checksums(manifest), "settings": label,
            "fitted_on": {"data_seed": args.data_seed, "subject_seeds": seeds, "crop": list(args.crop)},
            "measured": {name: {c: round(k["remapped"][c] - k["output"][c], 4) for c in CONTRASTS} for name, k in sets.items()},
            "command": "python -m bench.output_remap " + " ".join(argv), "machine": machine(torch.device("cpu"))["cpu"],
            "date": datetime.now(timezone.utc).date().isoformat(), "knots": remap.only(kept).to_record()})
        print(f"wrote the remap of {', '.join(kept)} into {Path(args.weights) / MANIFEST_NAME}")
    elif args.write:
        print("no contrast gained on every set: nothing written")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
