"""``python -m bench.uncertainty --weights DIR``: is the spread of several samples an informative uncertainty,
and does their mean score better than one sample?

On held-out subjects of both sets (ordinary: simulator parameters from the training ranges; shifted: outside
them; the calibration's crops), each subject is enhanced ``--samples`` times (seeds 0, 1, ...) with the
settings of ``--preset`` (default ``auto``, what a user runs). Then, per subject and contrast, inside the brain
mask and on the challenge's scale (prediction and 3 T reference each min-max normalised over the volume):

* **Spearman correlation** between the per-voxel standard deviation of the samples and the absolute error of
  their mean against the 3 T reference;
* the **mean absolute error of the 10 % most uncertain voxels** against that of the other 90 %;
* on the lesions the simulator inserted (when the subject has some): the mean spread and error there against
  normal white matter;
* the **score of the mean of the first N samples** (N = 1, 2, 4, 8), and of their median (N >= 4), with what
  N samples cost (windows, seconds).

Results: ``--out``/uncertainty.json and uncertainty.md (the tables of docs/uncertainty.md); ``--figure PNG``
draws input | output | uncertainty | absolute error of the first subject, axial slices, three contrasts.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

from bench.calibrate import DEFAULT_CROP, SETS, held_out_settings
from bench.cli import machine
from bench.case import TEST_SEED, BenchCase, case_score, centred_crop, raw_input_scores, mean_scores, simulated_case, simulated_subject
from evaluation.metrics import minmax
from model.cli.options import add_crop, add_subject_seed, add_weights, add_window
from model.config.settings import SamplerSettings
from model.execution.precision import resolve_precision
from model.pipeline.enhancer import Enhancer
from model.volumes.intensity import OUTPUT_CEILING
from model.volumes.layouts import CONTRASTS
from simulation import LABEL_NAMES

log = logging.getLogger("bench.uncertainty")

SAMPLE_COUNTS = (1, 2, 4, 8)
TOP_SHARE = 0.10  # the most uncertain tenth of the brain's voxels


def run_samples(settings: SamplerSettings, weights: Path, case: BenchCase, count: int) -> tuple[list[np.ndarray], float]:
    """``count`` single-sample runs (seeds 0..count-1), clipped to the output range as a run writes them, and the
    median seconds per sample."""
    samples, seconds = [], []
    for seed in range(count):
        enhancer = Enhancer(settings.updated(seed=seed, samples=1), weights, torch.device("cpu"))
        started = time.perf_counter()
        samples.append(np.clip(enhancer.enhance(case.network_input).volume, -1.0, OUTPUT_CEILING))
        seconds.append(time.perf_counter() - started)
    return samples, float(np.median(seconds))


def on_challenge_scale(case: BenchCase, mean: np.ndarray, spread: np.ndarray, contrast: int):
    """The mean output and the 3 T reference min-max normalised as the metric does, and the spread on the
    output's normalised scale (the same linear map, so only its slope acts)."""
    output = case.maps[contrast].from_network(mean[contrast])
    slope = (case.maps[contrast].high - case.maps[contrast].low) / 2.0
    span = float(output.max() - output.min()) or 1.0
    return minmax(output), minmax(case.high[contrast]), spread[contrast] * slope / span


def map_statistics(case: BenchCase, labels: np.ndarray, samples: list[np.ndarray]) -> list[dict[str, Any]]:
    """Per contrast: Spearman rho, top-decile MAE against the rest, and the lesions' spread and error."""
    stack = np.stack(samples)
    mean, spread = stack.mean(axis=0), stack.std(axis=0, ddof=1)
    brain = case.mask > 0
    lesion, white = labels == LABEL_NAMES.index("lesion"), labels == LABEL_NAMES.index("wm")
    rows = []
    for index, contrast in enumerate(CONTRASTS):
        output, reference, sd = on_challenge_scale(case, mean, spread, index)
        error = np.abs(output - reference)
        err, unc = error[brain], sd[brain]
        top = unc >= np.quantile(unc, 1.0 - TOP_SHARE)
        row = {"contrast": contrast, "spearman": float(spearmanr(unc, err).statistic),
               "mae_top_decile": float(err[top].mean()), "mae_rest": float(err[~top].mean()),
               "spread_mean": float(unc.mean())}
        if (lesion & brain).sum() >= 20:
            row |= {"lesion_voxels": int((lesion & brain).sum()),
                    "spread_lesion": float(sd[lesion & brain].mean()), "spread_white_matter": float(sd[white & brain].mean()),
                    "mae_lesion": float(error[lesion & brain].mean()), "mae_white_matter": float(error[white & brain].mean())}
        rows.append(row)
    return rows


def sample_count_scores(case: BenchCase, samples: list[np.ndarray]) -> dict[str, float]:
    """The score of the mean of the first N samples for each N of SAMPLE_COUNTS, and of their median (N >= 4)."""
    stack, scores = np.stack(samples), {}
    for n in SAMPLE_COUNTS:
        if n <= len(samples):
            scores[f"mean of {n}"] = case_score(case, stack[:n].mean(axis=0))["score"]
            if n >= 4:
                scores[f"median of {n}"] = case_score(case, np.median(stack[:n], axis=0))["score"]
    return scores


def measure(args: argparse.Namespace, settings: SamplerSettings) -> dict[str, Any]:
    results: dict[str, Any] = {"sets": {}}
    for name, variation in SETS.items():
        subjects = []
        for seed in range(args.subject_seed, args.subject_seed + args.subjects):
            case = simulated_case(seed, args.shape_scale, args.crop, variation=variation)
            subject = simulated_subject(seed, args.shape_scale, variation)
            labels = subject.labels[centred_crop(subject.mask.shape, args.crop)]
            samples, seconds = run_samples(settings, args.weights, case, args.samples)
            log.info("%s set, subject %d: %d samples, %.1f s each", name, seed, len(samples), seconds)
            subjects.append({"subject": seed, "seconds_per_sample": seconds,
                             "raw_input_score": mean_scores(raw_input_scores(case))["score"],
                             "scores": sample_count_scores(case, samples),
                             "map": map_statistics(case, labels, samples)})
            if args.figure is not None and name == "ordinary" and seed == args.subject_seed:
                draw(case, samples, args.figure)
        results["sets"][name] = subjects
    return results


def draw(case: BenchCase, samples: list[np.ndarray], path: Path) -> None:
    """Input | output | uncertainty | absolute error, the axial slice through the crop's centre, per contrast."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stack = np.stack(samples)
    mean, spread = stack.mean(axis=0), stack.std(axis=0, ddof=1)
    z = case.mask.shape[2] // 2
    figure, axes = plt.subplots(3, 4, figsize=(10, 8.6), constrained_layout=True)
    for row, contrast in enumerate(CONTRASTS):
        output, reference, sd = on_challenge_scale(case, mean, spread, row)
        raw = minmax(case.raw_input[row])
        panels = [(raw, "gray", "64 mT input", (0, 1)), (output, "gray", f"mean of {len(samples)} samples", (0, 1)),
                  (sd, "magma", "standard deviation", (0, float(np.quantile(sd[case.mask > 0], 0.995)))),
                  (np.abs(output - reference), "magma", "|output - 3 T|", (0, 0.25))]
        for column, (image, cmap, title, limits) in enumerate(panels):
            ax = axes[row, column]
            shown = ax.imshow(np.flipud(image[:, :, z].T), cmap=cmap, vmin=limits[0], vmax=limits[1])
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(f"{contrast}: {title}" if column == 0 else title, fontsize=9)
            if column >= 2:
                figure.colorbar(shown, ax=ax, shrink=0.8, label="normalised intensity")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def table(results: dict[str, Any]) -> str:
    """The markdown tables of docs/uncertainty.md."""
    lines = [f"Settings: {results['settings_label']}; {results['samples']} samples per subject; "
             f"{results['machine']}, {results['precision']}, {results['threads']} thread(s).", "",
             "| set | subject | Spearman rho (T1 / T2 / FLAIR) | MAE top 10 % / rest | lesions: spread / WM spread, MAE / WM MAE |",
             "|---|---|---|---|---|"]
    for name, subjects in results["sets"].items():
        for s in subjects:
            rho = " / ".join(f"{r['spearman']:.2f}" for r in s["map"])
            top = np.mean([r["mae_top_decile"] for r in s["map"]]), np.mean([r["mae_rest"] for r in s["map"]])
            lesion = [r for r in s["map"] if "lesion_voxels" in r]
            lesions = ("none" if not lesion else
                       f"{np.mean([r['spread_lesion'] for r in lesion]):.4f} / {np.mean([r['spread_white_matter'] for r in lesion]):.4f}, "
                       f"{np.mean([r['mae_lesion'] for r in lesion]):.4f} / {np.mean([r['mae_white_matter'] for r in lesion]):.4f}")
            lines.append(f"| {name} | {s['subject']} | {rho} | {top[0]:.4f} / {top[1]:.4f} ({top[0] / top[1]:.1f}x) | {lesions} |")
    keys = list(next(iter(results["sets"].values()))[0]["scores"])
    lines += ["", "| set | raw input | " + " | ".join(keys) + " | seconds per sample |",
              "|---|---|" + "---|" * (len(keys) + 1)]
    for name, subjects in results["sets"].items():
        means = {k: np.mean([s["scores"][k] for s in subjects]) for k in keys}
        lines.append(f"| {name} | {np.mean([s['raw_input_score'] for s in subjects]):.4f} | "
                     + " | ".join(f"{means[k]:.4f}" for k in keys)
                     + f" | {np.median([s['seconds_per_sample'] for s in subjects]):.1f} |")
    return "\n".join(lines)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.uncertainty", description=__doc__.split("\n\n")[0])
    add_weights(p)
    p.add_argument("--preset", default="auto", help="the settings sampled (default auto: the weights' calibrated best)")
    p.add_argument("--samples", type=int, default=max(SAMPLE_COUNTS), help="samples per subject (default 8)")
    p.add_argument("--subjects", type=int, default=2, help="held-out subjects per set (default 2)")
    add_subject_seed(p, TEST_SEED, "first subject's seed of each set (default: the test subjects)")
    add_crop(p)
    add_window(p)
    p.add_argument("--shape-scale", type=float, default=1.0, help="simulate at this scale (1: 1 mm heads)")
    p.add_argument("--out", type=Path, default=Path("runs/uncertainty"), help="results folder")
    p.add_argument("--figure", type=Path, help="write the input | output | uncertainty | error figure here")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as the tables say)")
    args = p.parse_args(argv)
    args.crop = tuple(args.crop) if args.crop else DEFAULT_CROP
    if args.samples < 2:
        p.error("--samples must be at least 2 (a spread needs two samples)")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_arguments(argv)
    label, settings = held_out_settings(args)
    results = {"command": "python -m bench.uncertainty " + " ".join(argv), "settings_label": label,
               "settings": settings.to_dict(), "samples": args.samples, "crop": list(args.crop),
               "machine": f"{machine(torch.device('cpu'))['cpu']}, torch {torch.__version__}",
               "precision": resolve_precision(settings.engine.precision, torch.device("cpu")), "threads": args.threads}
    results |= measure(args, settings)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "uncertainty.json").write_text(json.dumps(results, indent=2) + "\n")
    text = table(results)
    (args.out / "uncertainty.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
