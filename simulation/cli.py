"""``python -m simulation --out ROOT --subjects N --seed S``: write simulated subjects in the ULF-EnC layout."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from simulation.anatomy import TemplateMissing
from simulation.dataset import subject_id, subject_seed
from simulation.montage import save_montage
from simulation.subject import generate_subject, subject_variation
from simulation.variation import VARIATIONS
from simulation.writer import write_subject

MANIFEST = "simulation.json"
LESION_CHOICES = {"auto": None, "always": True, "never": False}


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m simulation",
        description="Simulate paired 3 T / 64 mT T1w, T2w and FLAIR heads from the ICBM152 anatomy and write them in "
                    "the ULF-EnC layout: ROOT/<ID>/{3T,64mT}/<ID>_{T1,T2,FLAIR}.nii.gz, "
                    "ROOT/Masks/<ID>/<ID>_T1.nii.gz.")
    parser.add_argument("--out", type=Path, required=True, help="output root")
    parser.add_argument("--subjects", type=int, required=True, help="number of subjects")
    parser.add_argument("--seed", type=int, required=True,
                        help="data-set seed; subject n gets a seed derived from (seed, n)")
    parser.add_argument("--first-id", type=int, default=1, help="number of the first subject (default 1: SIM0001)")
    parser.add_argument("--prefix", default="SIM", help="subject ID prefix (default SIM)")
    parser.add_argument("--lesions", choices=sorted(LESION_CHOICES), default="auto",
                        help="white-matter lesions: auto (the seed decides), always or never")
    parser.add_argument("--variation", choices=VARIATIONS, default="nominal",
                        help="simulator parameters per subject: nominal (the calibrated simulator, default), training "
                             "(each subject drawn from the training ranges of simulation/variation.py) or shifted "
                             "(drawn outside them: a held-out set unlike the training data)")
    parser.add_argument("--shape-scale", type=float, default=1.0,
                        help="grid spacing 1/scale mm (default 1: the full 1 mm grid; 0.5 for quick 2 mm tests)")
    parser.add_argument("--montage", type=Path, help="also write a PNG montage of the first subject")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def _check(arguments: argparse.Namespace) -> str | None:
    """A one-line description of what is wrong with the arguments, or None."""
    if arguments.subjects < 1:
        return f"--subjects must be at least 1, got {arguments.subjects}"
    if arguments.seed < 0:
        return f"--seed must be non-negative, got {arguments.seed}"
    if arguments.first_id < 0:
        return f"--first-id must be non-negative, got {arguments.first_id}"
    if not 0.1 <= arguments.shape_scale <= 1.0:
        return f"--shape-scale must be in [0.1, 1], got {arguments.shape_scale}"
    if arguments.out.exists() and not arguments.out.is_dir():
        return f"--out {arguments.out} exists and is not a folder"
    if not arguments.prefix.isalnum():
        return f"--prefix must be letters and digits, got {arguments.prefix!r}"
    return None


def _update_manifest(root: Path, entries: dict[str, dict]) -> None:
    """Add this run's subjects (seed, lesions, shape scale) to ROOT/simulation.json."""
    path = root / MANIFEST
    manifest = json.loads(path.read_text()) if path.is_file() else {"subjects": {}}
    manifest["subjects"].update(entries)
    temporary = path.with_name(f".{MANIFEST}.tmp")
    temporary.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    temporary.replace(path)


def run(arguments: argparse.Namespace) -> None:
    """Generate and write the requested subjects, with a progress bar."""
    from tqdm import tqdm

    arguments.out.mkdir(parents=True, exist_ok=True)
    numbers = range(arguments.first_id, arguments.first_id + arguments.subjects)
    entries, start = {}, time.perf_counter()
    for number in tqdm(numbers, desc="simulating", unit="subject", disable=arguments.no_progress):
        name, seed = subject_id(arguments.prefix, number), subject_seed(arguments.seed, number)
        variation = subject_variation(seed, arguments.variation)
        subject = generate_subject(seed, lesions=LESION_CHOICES[arguments.lesions], shape_scale=arguments.shape_scale,
                                   variation=variation)
        write_subject(arguments.out, name, subject)
        entries[name] = {"seed": seed, "base_seed": arguments.seed, "number": number, "lesions": subject.lesions,
                         "shape_scale": arguments.shape_scale, "variation": arguments.variation,
                         "parameters": variation.to_dict()}
        if arguments.montage and number == arguments.first_id:
            save_montage(subject, arguments.montage, title=f"{name} (seed {seed}): 64 mT and 3 T")
    _update_manifest(arguments.out, entries)
    elapsed = time.perf_counter() - start
    print(f"wrote {len(entries)} subjects to {arguments.out} in {elapsed:.1f} s "
          f"({elapsed / len(entries):.1f} s per subject)")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for bad arguments, with a one-line message)."""
    arguments = parse_arguments(argv)
    problem = _check(arguments)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        run(arguments)
    except (TemplateMissing, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0
