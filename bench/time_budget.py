"""``python -m bench.time_budget``: what each preset costs on a whole head at each precision, and how well the
time-budget planner keeps its budgets (docs/speed.md, "Time budget" and "Precision").

On one whole simulated head (the demo subject's seed by default, normalised as the product does):

* every ``--presets`` x ``--precisions`` pair: seconds of sampling, windows, peak device memory (CUDA), and
  the score against the 3 T reference (so a precision's cost in quality shows beside its speed);
* every ``--budgets`` second count: the ``--planned`` preset under that deadline: the plan chosen, its
  estimate, the seconds it really took and their ratio to the budget (the planner must stay within 1.10).

Prints a markdown table per part and writes both to ``--json``. A precision the device cannot run
(float16 on the CPU, bfloat16 on a T4) is reported as refused, not skipped silently.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch

from bench.case import add_variation, case_score, simulated_case
from model.execution.device import select_device
from model.pipeline.enhancer import Enhancer
from model.errors import DeviceError
from model.cli.options import add_crop, add_device, add_weights, add_window, window_of
from model.config.settings import preset

log = logging.getLogger(__name__)
DEMO_SEED = 9001


def peak_memory_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def preset_rows(case, args, device) -> list[dict]:
    rows = []
    for name in args.presets:
        for precision in args.precisions:
            row = {"preset": name, "precision": precision}
            try:
                enhancer = Enhancer(preset(name).updated(precision=precision, window=window_of(args)), args.weights, device)
            except DeviceError as error:
                rows.append({**row, "refused": str(error)})
                log.info("%s at %s refused: %s", name, precision, error)
                continue
            reset_peak(device)
            started = time.perf_counter()
            enhancement = enhancer.enhance(case.network_input)
            enhanced, counts = enhancement.volume, enhancement.counts
            seconds = time.perf_counter() - started
            row.update(resolved=enhancer.precision, seconds=seconds, windows=counts.windows
                       + counts.bridge_windows, peak_mb=peak_memory_mb(device), **case_score(case, enhanced))
            rows.append(row)
            log.info("%s at %s: %.1f s, score %.4f", name, precision, seconds, row["score"])
    return rows


def budget_rows(case, args, device) -> list[dict]:
    rows = []
    enhancer = Enhancer(preset(args.planned).updated(window=window_of(args)), args.weights, device)
    for budget in args.budgets:
        started = time.perf_counter()
        enhancement = enhancer.enhance(case.network_input, deadline=time.monotonic() + budget)
        seconds = time.perf_counter() - started
        choice = enhancement.budget
        rows.append({"budget": budget, "plan": choice.label, "fits": choice.fits, "estimate": choice.estimate,
                     "seconds": seconds, "ratio": seconds / budget, **case_score(case, enhancement.volume)})
        log.info("budget %.0f s: %s, estimated %.0f s, took %.1f s", budget, choice.label, choice.estimate, seconds)
    return rows


def markdown(presets: list[dict], budgets: list[dict], device: str, volume: str) -> str:
    lines = [f"On {device}, {volume}:", "", "| preset | precision | s per case | windows | peak MB | score | SSIM |",
             "|---|---|---|---|---|---|---|"]
    for r in presets:
        if "refused" in r:
            lines.append(f"| {r['preset']} | {r['precision']} | refused: {r['refused']} | | | | |")
            continue
        peak = "-" if r["peak_mb"] is None else f"{r['peak_mb']:.0f}"
        lines.append(f"| {r['preset']} | {r['precision']} ({r['resolved']}) | {r['seconds']:.1f} | {r['windows']} | {peak} "
                     f"| {r['score']:.4f} | {r['ssim']:.4f} |")
    lines += ["", "| budget (s) | plan | estimate (s) | took (s) | took / budget | score |", "|---|---|---|---|---|---|"]
    for r in budgets:
        plan = r["plan"] + ("" if r["fits"] else " (over: the minimum)")
        lines.append(f"| {r['budget']:.0f} | {plan} | {r['estimate']:.1f} | {r['seconds']:.1f} | {r['ratio']:.2f} "
                     f"| {r['score']:.4f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.time_budget", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_weights(parser)
    add_device(parser)
    add_crop(parser)
    add_window(parser)
    add_variation(parser)
    parser.add_argument("--shape-scale", type=float, default=1.0, help="grid 1/scale mm (default 1: the 1 mm head)")
    parser.add_argument("--subject-seed", type=int, default=DEMO_SEED, help=f"simulated subject (default {DEMO_SEED}, the demo's)")
    parser.add_argument("--presets", nargs="*", default=["cpu", "fast"])
    parser.add_argument("--precisions", nargs="*", default=["float32", "bfloat16", "float16"])
    parser.add_argument("--planned", default="paper", help="preset asked for under each budget (default paper)")
    parser.add_argument("--budgets", type=float, nargs="*", default=[60.0, 300.0])
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    device = select_device(args.device)
    case = simulated_case(args.subject_seed, args.shape_scale, crop=args.crop, variation=args.variation)
    presets, budgets = preset_rows(case, args, device), budget_rows(case, args, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    text = markdown(presets, budgets, name, case.name)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"device": name, "volume": case.name, "presets": presets, "budgets": budgets},
                                        indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
