"""``python -m demo``: simulate the demo subject, enhance it through process.py, score it, picture it.

Steps (each skipped when its result is already there, unless ``--fresh``):
1. simulate subject SIM9001 (a fixed seed, never used for training) into ``data/demo/`` in the
   ULF-EnC layout (64mT, 3T and the brain mask);
2. run ``process.py --input data/demo --output data/demo-output --preset cpu`` (a real subprocess,
   exactly what a user runs);
3. score the identity baseline (64 mT as the prediction) and the enhanced volumes against 3 T with
   the challenge's metric, and print both;
4. write ``data/demo-output/comparison.png``: low field | enhanced | high field.
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
    from model.volume_io import image_to_array, read_volume

    return np.stack([image_to_array(read_volume(root / subject / folder / f"{subject}_{c}.nii.gz", c))
                     for c in ("T1", "T2", "FLAIR")])


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns process.py's exit status when it fails."""
    parser = argparse.ArgumentParser(prog="python -m demo", description="Enhance the built-in demo subject.")
    parser.add_argument("--data", type=Path, default=REPO / "data" / "demo", help="demo input root")
    parser.add_argument("--output", type=Path, default=REPO / "data" / "demo-output", help="demo output root")
    parser.add_argument("--preset", default="cpu", help="process.py preset (default cpu)")
    parser.add_argument("--fresh", action="store_true", help="simulate and enhance again even if present")
    parser.add_argument("process_args", nargs="*", help="extra process.py options after --")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    if args.fresh:
        shutil.rmtree(args.data, ignore_errors=True)
        shutil.rmtree(args.output, ignore_errors=True)
    if not (args.data / DEMO_SUBJECT / "64mT").is_dir():
        print(f"[demo] simulating {DEMO_SUBJECT} (seed {DEMO_SEED}) into {args.data}", flush=True)
        write_subject(args.data, DEMO_SUBJECT, generate_subject(DEMO_SEED))

    command = [sys.executable, str(REPO / "process.py"), "--input", str(args.data), "--output", str(args.output),
               "--preset", args.preset, *args.process_args]
    print("[demo] " + " ".join(command), flush=True)
    status = subprocess.call(command, cwd=REPO)
    if status != 0:
        print(f"[demo] process.py failed with exit status {status}", file=sys.stderr)
        return status

    print("[demo] scoring against the 3 T reference with the challenge's metric", flush=True)
    _, identity = score_roots(args.data, args.data, folder="64mT")
    _, enhanced = score_roots(args.data, args.output, folder="Enhanced")
    print(f"\n{'':<22}" + "".join(f"{k:>14}" for k in METRIC_KEYS))
    for label, summary in (("identity (64 mT)", identity), (f"enhanced ({args.preset})", enhanced)):
        print(f"{label:<22}" + "".join(f"{summary[k]:>14.4f}" for k in METRIC_KEYS))

    mask_path = args.data / "Masks" / DEMO_SUBJECT / f"{DEMO_SUBJECT}_T1.nii.gz"
    from model.volume_io import image_to_array, read_volume

    from demo.montage import save_comparison

    picture = save_comparison(read_field(args.data, "64mT", DEMO_SUBJECT), read_field(args.output, "Enhanced", DEMO_SUBJECT),
                              read_field(args.data, "3T", DEMO_SUBJECT), image_to_array(read_volume(mask_path, "mask")),
                              args.output / "comparison.png", title=f"{DEMO_SUBJECT}: 64 mT | enhanced | 3 T")
    print(f"\n[demo] enhanced volumes in {args.output / DEMO_SUBJECT / 'Enhanced'}; picture {picture}")
    print(f"[demo] done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
