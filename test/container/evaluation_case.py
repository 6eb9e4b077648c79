#!/usr/bin/env python3
"""Submissions for the evaluation container's test (``run_container_test.sh``, evaluation block) and its
unit tests (``test/test_evaluation_container.py``).

``prepare WORK [--subjects N] [--seed S]`` writes, from subjects of the project's simulator (a quarter
of the resolution, so that scoring takes seconds):

* ``WORK/eval_reference``  the ground truth (ULF-EnC: ``<ID>/{3T,64mT}/...``, ``Masks/``);
* ``WORK/eval_ulf``        a local submission (``<ID>/Enhanced/...``): the 64 mT volumes themselves;
* ``WORK/eval_gc``         the same as a Grand Challenge evaluation receives it: ``predictions.json``
                           and ``<pk>/output/images/<slug>/<uuid>.mha`` per job;
* ``WORK/eval_duplicate``  the local submission with one subject's T1 volume written as its T2 too.

``compare METRICS SUMMARY`` checks that a ``metrics.json`` of the container has the platform's aggregates
format (per metric ``{"mean", "std", "count"}``, numbers only) and the means of ``python -m evaluation``'s
``summary.json`` (same metric, same numbers).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import SimpleITK as sitk

CONTRASTS = ("T1", "T2", "FLAIR")
REPO = Path(__file__).resolve().parents[2]
INPUT_SLUGS = {c: f"low-field-{c.lower()}-brain-mri" for c in CONTRASTS}
OUTPUT_SLUGS = {c: f"enhanced-{c.lower()}-brain-mri" for c in CONTRASTS}
KEYS = ("ssim", "psnr", "mae", "nmse", "score", "psnr_masked_standard", "ssim_unmasked", "psnr_standard")


def simulate(reference: Path, subjects: int, seed: int) -> list[str]:
    subprocess.run([sys.executable, "-m", "simulation", "--out", str(reference), "--subjects", str(subjects),
                    "--seed", str(seed), "--shape-scale", "0.25", "--no-progress"], cwd=REPO, check=True)
    return sorted(p.parent.name for p in reference.glob("*/3T"))


def local_submission(reference: Path, out: Path, subjects: list[str]) -> None:
    for subject in subjects:
        (out / subject / "Enhanced").mkdir(parents=True, exist_ok=True)
        for c in CONTRASTS:
            shutil.copy(reference / subject / "64mT" / f"{subject}_{c}.nii.gz",
                        out / subject / "Enhanced" / f"{subject}_{c}.nii.gz")


def image_value(slug: str, name: str, relative_path: str) -> dict:
    return {"pk": str(uuid.uuid4()), "interface": {"slug": slug, "kind": "Image", "relative_path": relative_path,
                                                 "super_kind": "Image"},
            "image": {"pk": str(uuid.uuid4()), "name": name}, "value": None, "file": None}


def grand_challenge_submission(reference: Path, out: Path, subjects: list[str]) -> None:
    jobs = []
    for subject in subjects:
        pk = str(uuid.uuid4())
        outputs = []
        for c in CONTRASTS:
            relative = f"images/{OUTPUT_SLUGS[c]}"
            folder = out / pk / "output" / relative
            folder.mkdir(parents=True)
            image = sitk.ReadImage(str(reference / subject / "64mT" / f"{subject}_{c}.nii.gz"))
            sitk.WriteImage(image, str(folder / f"{uuid.uuid4()}.mha"), useCompression=True)
            outputs.append(image_value(OUTPUT_SLUGS[c], f"{uuid.uuid4()}.mha", relative))
        inputs = [image_value(INPUT_SLUGS[c], f"{subject}_{c}.mha", f"images/{INPUT_SLUGS[c]}") for c in CONTRASTS]
        jobs.append({"pk": pk, "inputs": inputs, "outputs": outputs, "status": "Succeeded", "started_at": None,
                     "completed_at": None})
    (out / "predictions.json").write_text(json.dumps(jobs[::-1], indent=2))  # the platform's order is arbitrary


def prepare(work: Path, subjects: int = 2, seed: int = 11) -> list[str]:
    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # NIfTI header fields that MetaImage does not carry
    reference = work / "eval_reference"
    names = simulate(reference, subjects, seed)
    local_submission(reference, work / "eval_ulf", names)
    grand_challenge_submission(reference, work / "eval_gc", names)
    local_submission(reference, work / "eval_duplicate", names)
    duplicated = work / "eval_duplicate" / names[-1] / "Enhanced"
    shutil.copy(duplicated / f"{names[-1]}_T1.nii.gz", duplicated / f"{names[-1]}_T2.nii.gz")
    return names


def compare(metrics_file: Path, summary_file: Path, tolerance: float = 1e-9) -> list[str]:
    """Differences between the container's aggregates and ``python -m evaluation``'s summary, and departures of
    the aggregates from the platform's format (per metric exactly ``mean``, ``std`` and ``count``, numbers)."""
    metrics, summary = json.loads(metrics_file.read_text()), json.loads(summary_file.read_text())
    aggregates = metrics["aggregates"]
    problems = [f"aggregates.{k}: {v!r} is not {{'mean', 'std', 'count'}} of numbers" for k, v in aggregates.items()
                if not isinstance(v, dict) or set(v) != {"mean", "std", "count"}
                or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v.values())]
    if problems:
        return problems
    problems = [f"{k}: {aggregates.get(k, {}).get('mean')} != {summary[k]}" for k in KEYS
                if k not in aggregates or abs(aggregates[k]["mean"] - summary[k]) > tolerance]
    problems += [f"{k}: count {v['count']} for {summary['cases']} cases" for k, v in aggregates.items()
                 if v["count"] != summary["cases"]]
    if len(metrics["results"]) != summary["cases"]:
        problems.append(f"{len(metrics['results'])} results for {summary['cases']} cases")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("work", type=Path)
    p.add_argument("--subjects", type=int, default=2)
    p.add_argument("--seed", type=int, default=11)
    c = sub.add_parser("compare")
    c.add_argument("metrics", type=Path)
    c.add_argument("summary", type=Path)
    args = parser.parse_args()
    if args.command == "prepare":
        print(" ".join(prepare(args.work, args.subjects, args.seed)))
        return 0
    problems = compare(args.metrics, args.summary)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
