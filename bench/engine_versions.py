"""``python -m bench.engine_versions --old DIR``: this checkout's ``process.py`` against another checkout's
(an earlier commit, e.g. ``git worktree add /tmp/old HEAD~1``) on the same ULF-EnC folder, side by side.

Runs alternate (old, new, old, new, ...) so that both see the same machine; each run is a real subprocess
with the same options (default ``--preset cpu``), its outputs in its own folder. Printed per version: the
median wall-clock seconds of the whole command, the median sampling seconds (from the log's "sampling in"
line, summed over subjects), and the challenge's score of its outputs against the 3 T reference
(``evaluation``), with the score difference new − old.
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
SAMPLING = re.compile(r"sampling in ([0-9.]+) s")


def run_once(checkout: Path, data: Path, output: Path, options: list[str]) -> tuple[float, float]:
    """Wall seconds and summed sampling seconds of one run of ``checkout``'s process.py."""
    command = [sys.executable, str(checkout / "process.py"), "--input", str(data), "--output", str(output), *options]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=checkout, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{checkout}/process.py failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return wall, sum(float(m) for m in SAMPLING.findall(result.stderr))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.engine_versions", description=__doc__.split("\n\n")[0])
    p.add_argument("--old", type=Path, required=True, help="the other checkout (a folder with process.py)")
    p.add_argument("--data", type=Path, default=REPO / "data" / "demo", help="ULF-EnC input folder (default: the demo's)")
    p.add_argument("--out", type=Path, default=REPO / "runs" / "engine-versions", help="output folders go here")
    p.add_argument("--repeats", type=int, default=1, help="runs per version (alternating; medians)")
    p.add_argument("options", nargs="*", default=["--preset", "cpu"], help="process.py options (after --)")
    args = p.parse_args(argv)
    versions = {"old": args.old.resolve(), "new": REPO}
    timings: dict[str, list[tuple[float, float]]] = {name: [] for name in versions}
    for repeat in range(args.repeats):
        for name, checkout in versions.items():
            timings[name].append(run_once(checkout, args.data, args.out / name, args.options))
            print(f"{name} run {repeat + 1}: {timings[name][-1][0]:.0f} s, sampling {timings[name][-1][1]:.0f} s", flush=True)
    scores = {name: score_roots(args.data, args.out / name, folder="Enhanced")[1]["score"] for name in versions}
    print("\n| version | command s (median) | sampling s (median) | score |\n|---|---|---|---|")
    for name in versions:
        wall = statistics.median(t[0] for t in timings[name])
        sampling = statistics.median(t[1] for t in timings[name])
        print(f"| {name} ({versions[name]}) | {wall:.0f} | {sampling:.0f} | {scores[name]:.4f} |")
    old = statistics.median(t[1] for t in timings["old"])
    new = statistics.median(t[1] for t in timings["new"])
    print(f"\nsampling speed-up new/old: {old / new:.2f}x; score new - old: {scores['new'] - scores['old']:+.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
