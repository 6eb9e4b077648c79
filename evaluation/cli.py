"""``python -m evaluation --reference ROOT --predictions ROOT [--out DIR]``: score predictions like the challenge."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from model.layouts import ENHANCED
from evaluation.report import format_table, write_csv, write_json
from evaluation.scoring import EvaluationInputError, score_roots


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
    parser.add_argument("--workers", type=int, default=1, help="processes (one subject each)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the evaluation; returns the exit status (2 for bad input, with a one-line message)."""
    arguments = parse_arguments(argv)
    try:
        rows, summary = score_roots(arguments.reference, arguments.predictions, subjects=arguments.subjects,
                                    folder=arguments.prediction_folder, workers=max(1, arguments.workers),
                                    progress=not arguments.no_progress)
    except EvaluationInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_table(rows, summary))
    if arguments.out:
        write_csv(rows, arguments.out / "metrics.csv")
        write_json(summary, arguments.out / "summary.json")
        print(f"wrote {arguments.out / 'metrics.csv'} and {arguments.out / 'summary.json'}")
    return 0
