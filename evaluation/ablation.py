"""The paper's ablation table (Table 1, SPEC 3.6) on held-out simulated subjects.

``python -m evaluation.ablation --subjects 3 --seed 90000 --preset cpu --out runs/ablation`` runs,
per subject: the four modes (identity, bridge only, diffusion only, full), both readings of
RemoveNoise (x0 estimate and the literal eq. 11), and the high-field upper bound (the real 3 T
volume noised to K and denoised by the diffusion model alone). It scores each with the
challenge's metric against the 3 T reference inside the brain mask, and measures the bridge's
latent alignment at K (the paper: MSE 0.32 without the bridge, 0.05 with it). Writes
``ablation.csv`` (one row per configuration, subject and contrast) and ``ablation.md`` (means),
both rewritten after every configuration; ``ablation.jsonl`` keeps the finished runs, so an
interrupted table resumes where it stopped. ``--crop X Y Z`` enhances a centred crop of each
normalised head (a part of a full-head run, cheaper; see :mod:`evaluation.held_out`).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from evaluation.held_out import HELD_OUT_SEED, centred_crop
from evaluation.metrics import challenge_metrics
from model.enhancer import Enhancer, select_device
from model.intensity import denormalise_contrasts, normalise_contrasts
from model.layouts import CONTRASTS
from model.operators import add_noise
from model.schedule import cosine_schedule
from model.settings import PRESETS, SamplerSettings, preset
from model.weights import load_network
from model.windows import evaluate_in_windows, plan_windows
from simulation import generate_subject

METRICS = ("ssim", "psnr", "mae", "nmse", "score")


@dataclass(frozen=True)
class Configuration:
    """One row of the table: a label, sampler changes, and which field is the input."""

    label: str
    changes: dict
    input_field: str = "low"


CONFIGURATIONS = (
    Configuration("1 identity", {"mode": "identity"}),
    Configuration("2 bridge only", {"mode": "bridge"}),
    Configuration("3 diffusion only", {"mode": "diffusion"}),
    Configuration("4 full (Algorithm 1)", {"mode": "full"}),
    Configuration("2 bridge only, eq. 11 RemoveNoise", {"mode": "bridge", "remove_noise": "posterior-mean"}),
    Configuration("4 full, eq. 11 RemoveNoise", {"mode": "full", "remove_noise": "posterior-mean"}),
    Configuration("high-field upper bound (3 T noised to K, denoised)", {"mode": "diffusion"}, input_field="high"),
)


def score_configuration(config: Configuration, subject, box: tuple[slice, ...], settings: SamplerSettings,
                        weights: Path, device: torch.device) -> tuple[list[dict], float]:
    """Enhance one subject (the ``box`` of it) in one configuration; per-contrast metric rows and seconds."""
    source = getattr(subject, config.input_field)
    network_input, maps = normalise_contrasts(list(source), list(CONTRASTS))
    network_input = np.ascontiguousarray(network_input[(slice(None), *box)])
    enhancer = Enhancer(settings.updated(**config.changes), weights, device)
    started = time.perf_counter()
    enhanced = denormalise_contrasts(enhancer.enhance(network_input), maps)
    seconds = time.perf_counter() - started
    high, mask = subject.high[(slice(None), *box)], subject.mask[box]
    rows = [{"contrast": c, **challenge_metrics(enhanced[i], high[i], mask)} for i, c in enumerate(CONTRASTS)]
    return rows, seconds


def latent_alignment(subject, box: tuple[slice, ...], settings: SamplerSettings, weights: Path,
                     device: torch.device) -> dict[str, float]:
    """MSE between x_K^HF and x_K^LF (no bridge) and between x_K^HF and the bridged x_K^LF (eq. 8), one shared noise."""
    schedule, k = cosine_schedule(), settings.bridge_timestep
    low, _ = normalise_contrasts(list(subject.low), list(CONTRASTS))
    high, _ = normalise_contrasts(list(subject.high), list(CONTRASTS))
    low, high = (torch.from_numpy(np.ascontiguousarray(v[(slice(None), *box)]))[None].to(device) for v in (low, high))
    noise = torch.randn(low.shape, generator=torch.Generator(device).manual_seed(settings.seed), device=device)
    x_k_lf, x_k_hf = add_noise(low, noise, k, schedule), add_noise(high, noise, k, schedule)
    bridge = load_network(weights, "bridge", device)
    plan = plan_windows(low.shape[2:], settings.window, settings.overlap, device)
    with torch.inference_mode():
        bridged = x_k_lf + evaluate_in_windows(bridge.residual, x_k_lf, plan, settings.windows_per_batch)
    return {"mse_without_bridge": float(((x_k_lf - x_k_hf) ** 2).mean()),
            "mse_with_bridge": float(((bridged - x_k_hf) ** 2).mean())}


def markdown_table(rows: list[dict], seconds: dict[str, list[float]], alignment: list[dict]) -> str:
    """Means over subjects and contrasts per configuration, Table-1 style, plus the latent alignment."""
    lines = ["| configuration | SSIM | PSNR | MAE | NMSE | score | s / subject |", "|---|---|---|---|---|---|---|"]
    for config in CONFIGURATIONS:
        selected = [r for r in rows if r["configuration"] == config.label]
        if not selected:
            continue
        means = {m: float(np.mean([r[m] for r in selected])) for m in METRICS}
        lines.append(f"| {config.label} | {means['ssim']:.3f} | {means['psnr']:.2f} | {means['mae']:.3f} | "
                     f"{means['nmse']:.3f} | {means['score']:.4f} | {np.median(seconds[config.label]):.0f} |")
    if alignment:
        without = np.mean([a["mse_without_bridge"] for a in alignment])
        with_bridge = np.mean([a["mse_with_bridge"] for a in alignment])
        lines += ["", f"Latent alignment at K: MSE(x_K^LF, x_K^HF) = {without:.3f} without the bridge, "
                  f"{with_bridge:.3f} with it (the paper: 0.32 and 0.05)."]
    return "\n".join(lines) + "\n"


class Results:
    """Finished runs in ``ablation.jsonl`` (one line per configuration and subject, or alignment)."""

    def __init__(self, out: Path):
        out.mkdir(parents=True, exist_ok=True)
        self.out, self.path = out, out / "ablation.jsonl"
        self.records = [json.loads(line) for line in self.path.read_text().splitlines()] if self.path.is_file() else []

    def find(self, kind: str, label: str, subject: int) -> dict | None:
        return next((r for r in self.records if (r["kind"], r["label"], r["subject"]) == (kind, label, subject)), None)

    def add(self, record: dict) -> None:
        self.records.append(record)
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")

    def write_tables(self, header: str) -> str:
        """Rewrite ablation.csv and ablation.md from every finished run; returns the markdown."""
        runs = [r for r in self.records if r["kind"] == "run"]
        rows = [{"configuration": r["label"], "subject": r["subject"], **row} for r in runs for row in r["rows"]]
        seconds = {c.label: [r["seconds"] for r in runs if r["label"] == c.label] for c in CONFIGURATIONS}
        alignment = [r["alignment"] for r in self.records if r["kind"] == "alignment"]
        if rows:
            with open(self.out / "ablation.csv", "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
        table = markdown_table(rows, seconds, alignment)
        (self.out / "ablation.md").write_text(header + "\n\n" + table)
        return table


def main(argv: list[str] | None = None) -> int:
    """Run the table over held-out simulated subjects and write CSV and markdown."""
    parser = argparse.ArgumentParser(prog="python -m evaluation.ablation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=3, help="held-out simulated subjects (default 3)")
    parser.add_argument("--seed", type=int, default=HELD_OUT_SEED, help=f"first subject seed (default {HELD_OUT_SEED})")
    parser.add_argument("--shape-scale", type=float, default=1.0, help="simulator shape_scale (<1: smaller heads)")
    parser.add_argument("--preset", default="paper", choices=sorted(PRESETS), help="sampler settings (default paper)")
    parser.add_argument("--weights", type=Path, default=Path(__file__).resolve().parent.parent / "weights")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--window", type=int, nargs=3, metavar=("X", "Y", "Z"), help="window (default the preset's)")
    parser.add_argument("--crop", type=int, nargs=3, metavar=("X", "Y", "Z"),
                        help="enhance a centred crop of each normalised head (default: the whole head)")
    parser.add_argument("--out", type=Path, required=True, help="folder for ablation.csv, .md and .jsonl")
    args = parser.parse_args(argv)
    settings = preset(args.preset).updated(window=tuple(args.window) if args.window else None)
    device = select_device(args.device)
    results = Results(args.out)
    header = (f"Preset `{args.preset}`, {args.subjects} held-out simulated subjects (seeds {args.seed}..), "
              f"shape_scale {args.shape_scale}, " + (f"centred crop {tuple(args.crop)}, " if args.crop else "whole heads, ")
              + f"weights {args.weights}.")
    for subject_seed in range(args.seed, args.seed + args.subjects):
        subject = generate_subject(subject_seed, shape_scale=args.shape_scale)
        box = centred_crop(subject.mask.shape, args.crop)
        if results.find("alignment", "", subject_seed) is None:
            results.add({"kind": "alignment", "label": "", "subject": subject_seed,
                         "alignment": latent_alignment(subject, box, settings, args.weights, device)})
        for config in CONFIGURATIONS:
            if results.find("run", config.label, subject_seed) is not None:
                continue
            rows, elapsed = score_configuration(config, subject, box, settings, args.weights, device)
            results.add({"kind": "run", "label": config.label, "subject": subject_seed, "seconds": elapsed, "rows": rows})
            results.write_tables(header)
            print(f"subject {subject_seed} {config.label}: score {np.mean([r['score'] for r in rows]):.4f} "
                  f"({elapsed:.0f} s)", file=sys.stderr, flush=True)
    print(results.write_tables(header))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
