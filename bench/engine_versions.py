"""``python -m bench.engine_versions --old DIR``: this checkout's ``process.py`` against another checkout's
(an earlier commit, e.g. ``git worktree add /tmp/old HEAD~1``) on the same heads, side by side.

The heads: the demo subject (``nominal:9001``, what ``python -m demo`` simulates) and held-out test subjects
(default ``training:90200 shifted:90200``: the ordinary and shifted sets' first test subjects; ``foreign:SEED``
too), simulated once into a ULF-EnC folder
under ``--out`` (or ``--data``: any ULF-EnC folder). Runs alternate (old, new, old, new, ...) so that both see
the same machine; each run is a real subprocess with the same options (default ``--preset cpu``), its outputs in
its own folder. Printed per head and version: the median sampling seconds (from the log's "sampling in" line),
the U-Net windows (from the log's "N windows" line) and the challenge's score against the 3 T
reference, with the speed-up and the score change new - old; then the whole command's median seconds. A training
step's cost before and after is ``python -m training.step_speed`` (docs/speed.md).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from evaluation.scoring import score_roots

REPO = Path(__file__).resolve().parent.parent
SAMPLING = re.compile(r"INFO (\S+): \w+ sampling in ([0-9.]+) s")
WINDOWS = re.compile(r"evaluations \(\d+ on the early grid\), (\d+) windows")
HEADS = ["nominal:9001", "training:90200", "shifted:90200"]  # the demo subject, the ordinary and shifted test subjects


def head_id(head: str) -> str:
    """The subject ID a head is written under: e.g. SHIFTED90200 for shifted:90200, NOMINAL9001 for the demo's."""
    variation, _, seed = head.partition(":")
    return f"{variation.upper()}{int(seed)}"


def write_heads(heads: list[str], root: Path) -> None:
    """Simulate each head not yet under ``root`` (ULF-EnC layout with masks)."""
    from bench.case import HELD_OUT_VARIATIONS, simulated_subject
    from simulation import write_subject

    for head in heads:
        variation, _, seed = head.partition(":")
        if variation not in HELD_OUT_VARIATIONS or not seed.isdigit():
            raise SystemExit(f"--heads: expected VARIATION:SEED with VARIATION one of {', '.join(HELD_OUT_VARIATIONS)}, "
                             f"got {head!r}")
        subject_id = head_id(head)
        if (root / subject_id / "64mT").is_dir():
            continue
        subject = simulated_subject(int(seed), 1.0, variation)
        print(f"simulating {head} as {subject_id} into {root}", flush=True)
        write_subject(root, subject_id, subject)


def run_once(checkout: Path, data: Path, output: Path, options: list[str]) -> tuple[float, dict[str, float], dict[str, int]]:
    """Wall seconds, sampling seconds per case and windows per case of one run of ``checkout``'s process.py."""
    command = [sys.executable, str(checkout / "process.py"), "--input", str(data), "--output", str(output), *options]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=checkout, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{checkout}/process.py failed ({result.returncode}):\n{result.stderr[-2000:]}")
    sampling = {case: float(seconds) for case, seconds in SAMPLING.findall(result.stderr)}
    windows = [int(n) for n in WINDOWS.findall(result.stderr)]
    return wall, sampling, dict(zip(sampling, windows)) if len(windows) == len(sampling) else {}


def per_case_scores(data: Path, output: Path, cases: list[str]) -> dict[str, float]:
    """The challenge's score of each case of ``output`` against ``data``'s 3 T."""
    return {case: score_roots(data, output, folder="Enhanced", subjects=[case])[1]["score"] for case in cases}


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.engine_versions", description=__doc__.split("\n\n")[0])
    p.add_argument("--old", type=Path, required=True, help="the other checkout (a folder with process.py)")
    p.add_argument("--heads", nargs="+", default=HEADS,
                   help=f"VARIATION:SEED heads (default: {' '.join(HEADS)}: the demo's, then the ordinary and shifted sets' first test subjects)")
    p.add_argument("--data", type=Path, help="a ULF-EnC folder to use instead of --heads")
    p.add_argument("--out", type=Path, default=REPO / "runs" / "engine-versions", help="heads and outputs go here")
    p.add_argument("--repeats", type=int, default=1, help="runs per version (alternating; medians)")
    p.add_argument("options", nargs="*", default=["--preset", "cpu"], help="process.py options (after --)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    args.out = args.out.resolve()  # each process.py runs in its own checkout
    data = args.data.resolve() if args.data is not None else args.out / "heads"
    if args.data is None:
        write_heads(args.heads, data)
    versions = {"old": args.old.resolve(), "new": REPO}
    runs: dict[str, list[tuple[float, dict[str, float], dict[str, int]]]] = {name: [] for name in versions}
    for repeat in range(args.repeats):
        for name, checkout in versions.items():
            runs[name].append(run_once(checkout, data, args.out / name, args.options))
            wall, sampling, _ = runs[name][-1]
            print(f"{name} run {repeat + 1}: {wall:.0f} s, sampling " + ", ".join(
                f"{case} {seconds:.0f} s" for case, seconds in sampling.items()), flush=True)
    cases = list(runs["new"][0][1])
    scores = {name: per_case_scores(data, args.out / name, cases) for name in versions}
    print("\n| head | old sampling s | new sampling s | speed-up | old U-Net windows | new U-Net windows | old score | new score "
          "| score change |\n|---|---|---|---|---|---|---|---|---|")
    for case in cases:
        median = {name: statistics.median(run[1][case] for run in runs[name]) for name in versions}
        windows = {name: runs[name][0][2].get(case, "?") for name in versions}
        print(f"| {case} | {median['old']:.0f} | {median['new']:.0f} | {median['old'] / median['new']:.2f}x "
              f"| {windows['old']} | {windows['new']} | {scores['old'][case]:.4f} | {scores['new'][case]:.4f} "
              f"| {scores['new'][case] - scores['old'][case]:+.4f} |")
    walls = {name: statistics.median(run[0] for run in runs[name]) for name in versions}
    print(f"\nwhole command, median of {args.repeats}: old {walls['old']:.0f} s ({versions['old']}), "
          f"new {walls['new']:.0f} s ({versions['new']}): {walls['old'] / walls['new']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
