"""``python -m demo``: simulate the demo subject, enhance it through process.py, score it, picture it.

Steps:
1. simulate subject SIM9001 (a fixed seed, never used for training) into ``data/demo/`` in the
   ULF-EnC layout (64mT, 3T and the brain mask), unless it is there already (``--fresh``: again);
2. run ``process.py --input data/demo --output data/demo-output --preset cpu`` (a real subprocess,
   exactly what a user runs: Algorithm 1), and the same with ``--mode bridge`` into
   ``data/demo-bridge-only`` (the bridge alone, ablation 2; ``--no-bridge-only`` skips it);
3. score the identity baseline (64 mT as the prediction) and both outputs against 3 T with the
   challenge's metric, and print them;
4. write ``data/demo-output/comparison.png``: low field | enhanced | bridge only | high field.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from evaluation.metrics import METRIC_KEYS
from evaluation.scoring import score_roots
from simulation import generate_subject, write_subject

REPO = Path(__file__).resolve().parent.parent
DEMO_SUBJECT, DEMO_SEED = "SIM9001", 9001


def read_field(root: Path, folder: str, subject: str) -> np.ndarray:
    """(3, X, Y, Z) volumes of one subject's folder."""
    from model.volumes.images import image_to_array, read_volume

    return np.stack([image_to_array(read_volume(root / subject / folder / f"{subject}_{c}.nii.gz", c))
                     for c in ("T1", "T2", "FLAIR")])


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns process.py's exit status when it fails."""
    parser = argparse.ArgumentParser(prog="python -m demo", description="Enhance the built-in demo subject.")
    parser.add_argument("--data", type=Path, default=REPO / "data" / "demo", help="demo input root")
    parser.add_argument("--output", type=Path, default=REPO / "data" / "demo-output", help="demo output root")
    parser.add_argument("--preset", default="cpu", help="process.py preset (default cpu)")
    parser.add_argument("--bridge-output", type=Path, default=REPO / "data" / "demo-bridge-only",
                        help="output root of the bridge-only comparison run")
    parser.add_argument("--no-bridge-only", action="store_true",
                        help="skip the bridge-only comparison run (--mode bridge, about half a minute)")
    parser.add_argument("--fresh", action="store_true", help="simulate and enhance again even if present")
    parser.add_argument("process_args", nargs="*", help="extra process.py options after --")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    if args.fresh:
        shutil.rmtree(args.data, ignore_errors=True)
        shutil.rmtree(args.output, ignore_errors=True)
        shutil.rmtree(args.bridge_output, ignore_errors=True)
    if not (args.data / DEMO_SUBJECT / "64mT").is_dir():
        print(f"[demo] simulating {DEMO_SUBJECT} (seed {DEMO_SEED}) into {args.data}", flush=True)
        write_subject(args.data, DEMO_SUBJECT, generate_subject(DEMO_SEED))

    runs = [(f"enhanced ({args.preset})", args.output, [])]
    if not args.no_bridge_only:
        runs.append(("bridge only", args.bridge_output, ["--mode", "bridge"]))
    for label, output, extra in runs:
        command = [sys.executable, str(REPO / "process.py"), "--input", str(args.data), "--output", str(output),
                   "--preset", args.preset, *extra, *args.process_args]
        print(f"[demo] {label}: " + " ".join(command), flush=True)
        status = subprocess.call(command, cwd=REPO)
        if status != 0:
            print(f"[demo] process.py failed with exit status {status}", file=sys.stderr)
            return status

    print("[demo] scoring against the 3 T reference with the challenge's metric", flush=True)
    scores = [("identity (64 mT)", score_roots(args.data, args.data, folder="64mT")[1])]
    scores += [(label, score_roots(args.data, output, folder="Enhanced")[1]) for label, output, _ in runs]
    widths = {k: max(14, len(k) + 2) for k in METRIC_KEYS}
    print(f"\n{'':<22}" + "".join(f"{k:>{widths[k]}}" for k in METRIC_KEYS))
    for label, summary in scores:
        print(f"{label:<22}" + "".join(f"{summary[k]:>{widths[k]}.4f}" for k in METRIC_KEYS))

    mask_path = args.data / "Masks" / DEMO_SUBJECT / f"{DEMO_SUBJECT}_T1.nii.gz"
    from model.volumes.images import image_to_array, read_volume

    from demo.montage import save_comparison

    columns = [("64 mT", read_field(args.data, "64mT", DEMO_SUBJECT))]
    columns += [(label, read_field(output, "Enhanced", DEMO_SUBJECT)) for label, output, _ in runs]
    columns.append(("3 T", read_field(args.data, "3T", DEMO_SUBJECT)))
    picture = save_comparison(columns, image_to_array(read_volume(mask_path, "mask")), args.output / "comparison.png",
                              title=f"{DEMO_SUBJECT}: " + " | ".join(label for label, _ in columns))
    print(f"\n[demo] enhanced volumes in {args.output / DEMO_SUBJECT / 'Enhanced'}; picture {picture}")
    print(f"[demo] done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
