"""The organisers' evaluation container (``evaluation/Dockerfile``): check a submission, score it with the
challenge's metric, write the platform's ``metrics.json``.

``python -m evaluation.container [--input /input] [--ground-truth DIR] [--output /output]``

* As a Grand Challenge evaluation, ``/input/predictions.json`` lists the algorithm's jobs and their
  outputs; the ground truth (the ULF-EnC reference layout: ``<ID>/3T/<ID>_{T1,T2,FLAIR}.nii.gz`` and
  ``Masks/<ID>/<ID>_T1.nii.gz``) is where the platform extracts the phase's ground-truth tarball,
  ``/opt/ml/input/data/ground_truth``.
* Locally (no ``predictions.json``), ``--input`` is a ULF-EnC prediction root (``<ID>/Enhanced/...``).

The submission is checked first (:mod:`evaluation.validation`: evalutils' loaders and validators,
and the reference's grid); a rejected one ends with one line saying every problem and exit status
1, and no ``metrics.json``. Otherwise ``/output/metrics.json`` holds ``results`` (one entry per
subject and contrast: the metrics of SPEC 5 and ``psnr_masked_standard``) and ``aggregates`` (the
means over all subjects x contrasts, the final score, and the same per contrast), as the
leaderboard reads them (e.g. ``aggregates.score``). Exit status 2: the ground truth or the options
are unusable; 4: the output folder cannot be written (found before any scoring); 1 also for an
unexpected error. Every error is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from evaluation.cli import OutputFolderError, check_output_folder
from evaluation.report import write_json
from evaluation.scoring import EvaluationInputError, score_files, summarise
from evaluation.submission import SubmissionError, find_predictions
from evaluation.validation import validate
from model.errors import EnhancementError
from model.layouts import CONTRASTS, HIGH_FIELD, mask_path, reference_subjects, volume_path

GROUND_TRUTH = Path("/opt/ml/input/data/ground_truth")  # where Grand Challenge extracts the ground-truth tarball


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m evaluation.container", description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, default=Path("/input"),
                        help="the submission: predictions.json and job folders, or a ULF-EnC prediction root (default /input)")
    parser.add_argument("--ground-truth", type=Path, default=Path(os.environ.get("ULF_GROUND_TRUTH", GROUND_TRUTH)),
                        help=f"reference root in the ULF-EnC layout (default $ULF_GROUND_TRUTH, else {GROUND_TRUTH})")
    parser.add_argument("--output", type=Path, default=Path("/output"), help="where metrics.json goes (default /output)")
    return parser.parse_args(argv)


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


def metrics_document(rows: list[dict], layout: str) -> dict:
    """The platform's evaluation output: per-case ``results`` and ``aggregates``."""
    summary = summarise(rows)
    aggregates = {key: value for key, value in summary.items() if key not in ("failures", "subjects")}
    results = [{"case": f"{row['subject']}_{row['contrast']}", **{k: v for k, v in row.items() if k != "error"}}
               for row in rows]
    return {"results": results, "aggregates": {**aggregates, "layout": layout}}


def evaluate(input_dir: Path, ground_truth: Path, output_dir: Path) -> dict:
    """Check, score and write ``metrics.json``; returns the document."""
    check_output_folder(output_dir, "--output")
    subjects = reference_of(ground_truth)
    layout, volumes = find_predictions(input_dir, subjects)
    print(f"{layout} submission: {len(volumes)} volumes, {len(subjects)} reference subjects", file=sys.stderr)
    files = validate(volumes, ground_truth, subjects)
    rows = [row for subject in subjects for row in score_files(ground_truth, subject, files[subject])]
    failed = [f"{r['subject']} {r['contrast']}: {r['error']}" for r in rows if r["status"] != "ok"]
    if failed:  # validated files that still cannot be scored (e.g. NaN voxels): rejected, not scored as zero
        raise SubmissionError("; ".join(failed))
    document = metrics_document(rows, layout)
    write_json(document, output_dir / "metrics.json")
    return document


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    try:
        document = evaluate(arguments.input, arguments.ground_truth, arguments.output)
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
    a = document["aggregates"]
    print(f"score {a['score']:.4f} (ssim {a['ssim']:.4f}, psnr {a['psnr']:.2f}, mae {a['mae']:.4f}, nmse {a['nmse']:.4f}; "
          f"psnr_masked_standard {a['psnr_masked_standard']:.2f}) over {a['cases']} volumes; "
          f"wrote {arguments.output / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
