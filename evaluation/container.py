"""The organisers' evaluation container (``evaluation/Dockerfile``): check a submission, score it with the
challenge's metric, write the platform's ``metrics.json``.

``python -m evaluation.container [--input /input] [--ground-truth DIR] [--output /output] [--workers N]``

* As a Grand Challenge evaluation, ``/input/predictions.json`` lists the algorithm's jobs and their
  outputs; the ground truth (the ULF-EnC reference layout: ``<ID>/3T/<ID>_{T1,T2,FLAIR}.nii.gz`` and
  ``Masks/<ID>/<ID>_T1.nii.gz``) is where the platform extracts the phase's ground-truth tarball,
  ``/opt/ml/input/data/ground_truth``.
* Locally (no ``predictions.json``), ``--input`` is a ULF-EnC prediction root (``<ID>/Enhanced/...``).

The submission is checked first (:mod:`evaluation.validation`: evalutils' loaders and validators,
and the reference's grid); a rejected one ends with one line saying every problem and exit status
1, and no ``metrics.json``. Otherwise the subjects are scored in parallel, up to ``--workers``
processes (default: the ``GRAND_CHALLENGE_MAX_WORKERS`` environment variable, else 1; any number
gives the same ``metrics.json`` as one), and ``/output/metrics.json`` holds ``results`` (one entry
per subject and contrast: the challenge's metrics and ``psnr_masked_standard``), ``aggregates`` (per
metric, ``{"mean", "std", "count"}`` over all subjects x contrasts, numbers only, as the leaderboard
reads them: e.g. ``aggregates.score.mean``), ``per_contrast`` (the same per contrast), ``layout`` and
``descriptions`` (what each metric is). Exit status 2: the ground truth or the options are unusable;
4: the output folder cannot be written (found before any scoring); 1 also for an unexpected error.
Every error is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from evaluation.cli import OutputFolderError, check_output_folder
from evaluation.report import write_json
from evaluation.metrics import METRIC_KEYS
from evaluation.scoring import DEFINITIONS, EvaluationInputError, per_subject, score_files, summarise
from evaluation.submission import SubmissionError, find_predictions
from evaluation.validation import validate
from model.errors import EnhancementError
from model.volumes.layouts import CONTRASTS, HIGH_FIELD, mask_path, reference_subjects, volume_path

GROUND_TRUTH = Path("/opt/ml/input/data/ground_truth")  # where Grand Challenge extracts the ground-truth tarball
MAX_WORKERS = "GRAND_CHALLENGE_MAX_WORKERS"  # how many cases the platform lets an evaluation score at once
AGGREGATE_DESCRIPTION = (
    "per metric over all subjects x contrasts: mean, std (population standard deviation, numpy's np.std, ddof 0) "
    "and count of the per-case values in results; score's mean is the challenge's final score of the four means, "
    "which equals the mean of the per-case scores (the score is linear in them) up to rounding")


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m evaluation.container", description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, default=Path("/input"),
                        help="the submission: predictions.json and job folders, or a ULF-EnC prediction root (default /input)")
    parser.add_argument("--ground-truth", type=Path, default=Path(os.environ.get("ULF_GROUND_TRUTH", GROUND_TRUTH)),
                        help=f"reference root in the ULF-EnC layout (default $ULF_GROUND_TRUTH, else {GROUND_TRUTH})")
    parser.add_argument("--output", type=Path, default=Path("/output"), help="where metrics.json goes (default /output)")
    parser.add_argument("--workers", help=f"cases scored at once, in processes (default ${MAX_WORKERS}, else 1; at most "
                                          "one per subject and per CPU are started)")
    return parser.parse_args(argv)


def worker_count(option: str | None, environment=os.environ) -> int:
    """``--workers``, else ``GRAND_CHALLENGE_MAX_WORKERS``, else 1; anything but a whole number of at least 1 is an
    :class:`EvaluationInputError` naming where it came from."""
    source, value = ("--workers", option) if option is not None else (MAX_WORKERS, environment.get(MAX_WORKERS))
    if value is None or (source == MAX_WORKERS and not value.strip()):
        return 1
    try:
        workers = int(value.strip())
    except ValueError:
        workers = 0
    if workers < 1:
        raise EvaluationInputError(f"{source} {value!r}: expected a whole number of worker processes, at least 1")
    return workers


def reference_of(root: Path) -> list[str]:
    """The reference subjects, each checked to have its three 3 T volumes and its mask."""
    if not root.is_dir():
        raise EvaluationInputError(f"ground truth {root} is not a folder")
    subjects = reference_subjects(root)
    if not subjects:
        raise EvaluationInputError(f"no subjects (folders with a {HIGH_FIELD}/ folder) in the ground truth {root}")
    for subject in subjects:
        for path in [mask_path(root, subject)] + [volume_path(root, subject, HIGH_FIELD, c) for c in CONTRASTS]:
            if not path.is_file():
                raise EvaluationInputError(f"ground truth subject {subject} lacks {path}")
    return subjects


def aggregate(values: list[float]) -> dict:
    """``{"mean", "std", "count"}`` of per-case values: numpy's mean and (population, ddof 0) standard deviation."""
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "count": len(values)}


def metric_aggregates(rows: list[dict]) -> dict:
    """Per metric, :func:`aggregate` of its per-case values; the score's mean is the challenge's final score of the
    means (:func:`evaluation.scoring.summarise`, the number ``python -m evaluation`` prints)."""
    aggregates = {key: aggregate([row[key] for row in rows]) for key in METRIC_KEYS}
    aggregates["score"]["mean"] = summarise(rows)["score"]
    return aggregates


def metrics_document(rows: list[dict], layout: str) -> dict:
    """The platform's evaluation output: per-case ``results``; ``aggregates`` (numbers only: per metric its mean,
    standard deviation and count over all cases); ``per_contrast`` (the same per contrast); ``layout``; and
    ``descriptions`` of the metrics and of the aggregates."""
    results = [{"case": f"{row['subject']}_{row['contrast']}", **{k: v for k, v in row.items() if k != "error"}}
               for row in rows]
    per_contrast = {c: metric_aggregates([r for r in rows if r["contrast"] == c])
                    for c in CONTRASTS if any(r["contrast"] == c for r in rows)}
    return {"results": results, "aggregates": metric_aggregates(rows), "per_contrast": per_contrast,
            "layout": layout, "descriptions": {**DEFINITIONS, "aggregates, per_contrast": AGGREGATE_DESCRIPTION}}


def evaluate(input_dir: Path, ground_truth: Path, output_dir: Path, workers: int = 1) -> dict:
    """Check, score (subjects over up to ``workers`` processes) and write ``metrics.json``; returns the document."""
    check_output_folder(output_dir, "--output")
    subjects = reference_of(ground_truth)
    layout, volumes = find_predictions(input_dir, subjects)
    print(f"{layout} submission: {len(volumes)} volumes, {len(subjects)} reference subjects", file=sys.stderr)
    files = validate(volumes, ground_truth, subjects)
    jobs = [(ground_truth, subject, files[subject]) for subject in subjects]
    rows = [row for subject_rows in per_subject(score_files, jobs, workers) for row in subject_rows]
    failed = [f"{r['subject']} {r['contrast']}: {r['error']}" for r in rows if r["status"] != "ok"]
    if failed:  # validated files that still cannot be scored (e.g. NaN voxels): rejected, not scored as zero
        raise SubmissionError("; ".join(failed))
    document = metrics_document(rows, layout)
    write_json(document, output_dir / "metrics.json")
    return document


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    try:
        document = evaluate(arguments.input, arguments.ground_truth, arguments.output, worker_count(arguments.workers))
    except SubmissionError as error:
        print(f"submission rejected: {error}", file=sys.stderr)
        return 1
    except (EvaluationInputError, EnhancementError) as error:  # EnhancementError: a bad ULF_*SOCKET* variable
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OutputFolderError as error:
        print(f"error: {error}", file=sys.stderr)
        return 4
    except OSError as error:
        print(f"error: {error.filename or ''} {error.strerror or error}".strip(), file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - never a traceback: one line naming the error
        line = str(error).strip().splitlines()[0] if str(error).strip() else "no message"
        print(f"error: unexpected {type(error).__name__}: {line}", file=sys.stderr)
        return 1
    a = {key: value["mean"] for key, value in document["aggregates"].items()}
    print(f"score {a['score']:.4f} (ssim {a['ssim']:.4f}, psnr {a['psnr']:.2f}, mae {a['mae']:.4f}, nmse {a['nmse']:.4f}; "
          f"psnr_masked_standard {a['psnr_masked_standard']:.2f}) over {document['aggregates']['score']['count']} volumes; "
          f"wrote {arguments.output / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
