"""``python -m evaluation --reference ROOT --predictions ROOT [--out DIR]``: score predictions like the challenge.

Exit status: 0 scored (failed cases, such as a missing or non-finite prediction, are scored with the worst
values and listed); 2 the reference, the predictions or an option is unusable; 4 ``--out`` cannot be
written; 1 an unexpected error. Every error is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from model.errors import EnhancementError
from model.volumes.layouts import ENHANCED
from evaluation.report import format_table, write_csv, write_json
from evaluation.scoring import EvaluationInputError, score_roots


class OutputFolderError(Exception):
    """``--out`` cannot hold the results (exit 4)."""


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m evaluation",
        description="Score predictions (PRED/<ID>/Enhanced/<ID>_{T1,T2,FLAIR}.nii.gz) against a reference root in the "
                    "ULF-EnC layout (REF/<ID>/3T/..., REF/Masks/<ID>/<ID>_T1.nii.gz) with the challenge's final "
                    "metric.")
    parser.add_argument("--reference", type=Path, required=True, help="reference root (3T volumes and Masks/)")
    parser.add_argument("--predictions", type=Path, required=True, help="prediction root")
    parser.add_argument("--out", type=Path, help="folder for metrics.csv and summary.json (else only printed)")
    parser.add_argument("--prediction-folder", default=ENHANCED,
                        help="sub-folder of each prediction subject (default Enhanced; 64mT with --predictions equal "
                             "to --reference scores the identity baseline)")
    parser.add_argument("--subjects", nargs="+", help="score only these subject IDs")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes (one subject each; at most one per subject and per CPU are started)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def check_output_folder(folder: Path, option: str = "--out") -> None:
    """Refuse, before any scoring, an output folder that is a file or cannot be written (probed with a file;
    nothing is left behind)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputFolderError(f"{option} {folder}: {existing} is not a folder; expected a folder for the results")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".evaluation-probe-"):
            pass
    except OSError as error:
        raise OutputFolderError(f"{option} {folder} cannot be written ({error.strerror or error}); expected a "
                                "writable folder") from None


def main(argv: list[str] | None = None) -> int:
    """Run the evaluation; returns the exit status (2 for bad input, 4 for an unwritable --out; one line each)."""
    arguments = parse_arguments(argv)
    try:
        if arguments.out:
            check_output_folder(arguments.out)
        rows, summary = score_roots(arguments.reference, arguments.predictions, subjects=arguments.subjects,
                                    folder=arguments.prediction_folder, workers=arguments.workers,
                                    progress=not arguments.no_progress)
        print(format_table(rows, summary))
        if arguments.out:
            write_csv(rows, arguments.out / "metrics.csv")
            write_json(summary, arguments.out / "summary.json")
            print(f"wrote {arguments.out / 'metrics.csv'} and {arguments.out / 'summary.json'}")
    except (EvaluationInputError, EnhancementError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OutputFolderError as error:
        print(f"error: {error}", file=sys.stderr)
        return 4
    except OSError as error:
        print(f"error: {' '.join(str(p) for p in (error.filename, error.strerror or error) if p)}", file=sys.stderr)
        return 4 if arguments.out and error.filename and str(arguments.out) in str(error.filename) else 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - never a traceback: one line naming the error
        line = str(error).strip().splitlines()[0] if str(error).strip() else "no message"
        print(f"error: unexpected {type(error).__name__}: {line}", file=sys.stderr)
        return 1
    return 0
