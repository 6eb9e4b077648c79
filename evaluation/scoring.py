"""Scoring a prediction root against a reference root (ULF-EnC layout) with the challenge's metric.

A volume with NaN or infinite voxels is never scored: SimpleITK 2.5 reads a float NIfTI's NaN voxels as
zeros, so NIfTI files are scanned in their own bytes first (:func:`model.volumes.nifti.check_nifti`, as the
enhancement scans its inputs), and every volume read is checked again. Such a prediction is a failed
case (status ``non-finite``, the count in its error, the worst value of every metric, as a missing one);
the evaluation container refuses a submission holding one (docs/evaluation.md). A reference volume or
mask that cannot be read, or that is not finite, is an :class:`EvaluationInputError`.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from model.errors import InputError
from model.volumes.layouts import CONTRASTS, ENHANCED, HIGH_FIELD, mask_path, reference_subjects, volume_path
from model.volumes.nifti import check_nifti
from evaluation.metrics import FAILURE_VALUES, METRIC_KEYS, challenge_metrics, final_score


class EvaluationInputError(Exception):
    """The reference or prediction root cannot be evaluated (missing folder, subject or mask)."""


DEFINITIONS = {
    "ssim, psnr, mae, nmse, score": "challenge final metric (docs/data-and-metric.md, 'The metric'): brain-masked, "
                                    "min-max normalised; psnr is the per-voxel PSNR map averaged over the mask; "
                                    "score = 0.7 ssim + 0.1 psnr/32 + 0.1 (1 - mae) + 0.1 (1 - nmse) of the means",
    "psnr_masked_standard": "standard PSNR over the mask, 10 log10(1 / mean_M((p - r)^2)), on the same normalised, "
                            "masked volumes: the PSNR the paper's Table 1 fits, for comparison",
    "ssim_unmasked, psnr_standard": "earlier ranking: whole-volume SSIM and standard PSNR, min-max normalised",
    "failures": "missing, unreadable, misshapen or non-finite (NaN or infinite voxels) predictions count with "
                "ssim 0, psnr 0, mae 1, nmse 1",
}

NON_FINITE = "NaN or infinite"  # in check_nifti's message for such voxels (and in ours)


def read_volume(path: Path, name: str = "volume") -> np.ndarray:
    """The voxel array of an image file (SimpleITK's (z, y, x) view; the metric does not care about axis order).
    Raises RuntimeError for a file SimpleITK cannot read, :class:`model.errors.InputError` (its message
    starting with ``name:``) for a truncated NIfTI or one with NaN or infinite voxels (which SimpleITK would
    read as zeros)."""
    if Path(path).name.lower().endswith((".nii", ".nii.gz")):
        check_nifti(Path(path), name)
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def non_finite_count(volume: np.ndarray) -> int:
    """How many voxels of ``volume`` are NaN or infinite."""
    return int(volume.size - np.count_nonzero(np.isfinite(volume)))


def read_reference(path: Path, what: str) -> np.ndarray:
    """A reference volume or mask, or an :class:`EvaluationInputError` naming it (unreadable, not finite)."""
    try:
        volume = read_volume(path, what)
    except InputError as error:
        raise EvaluationInputError(f"{error} (check the reference data)") from None
    except RuntimeError as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else "unknown reason"
        raise EvaluationInputError(f"{what}: {path} is not a readable image ({reason}); expected a readable, finite "
                                   "image (check the reference data)") from None
    if non_finite_count(volume):
        raise EvaluationInputError(f"{what} {path} has {non_finite_count(volume)} NaN or infinite voxels; "
                                   "expected finite values (check the reference data)")
    return volume


def _failure(subject: str, contrast: str, status: str, detail: str) -> dict:
    """A row for a prediction that could not be scored: worst value of every metric."""
    return {"subject": subject, "contrast": contrast, "status": status, **FAILURE_VALUES, "error": detail}


def _score_contrast(reference: np.ndarray, mask: np.ndarray, prediction_file: Path, subject: str,
                    contrast: str) -> dict:
    """One row: the metrics of one predicted volume, or a failure naming what went wrong."""
    if not prediction_file.is_file():
        return _failure(subject, contrast, "missing", f"no prediction at {prediction_file}")
    name = f"{subject} {contrast}"
    try:
        prediction = read_volume(prediction_file, name)
    except InputError as error:  # check_nifti: truncated, or NaN / infinite voxels SimpleITK would read as zeros
        reason = str(error).removeprefix(f"{name}: ")
        return _failure(subject, contrast, "non-finite" if NON_FINITE in reason else "unreadable", reason)
    except RuntimeError as error:
        return _failure(subject, contrast, "unreadable", f"{prediction_file}: {str(error).strip().splitlines()[-1]}")
    if prediction.shape != reference.shape:
        return _failure(subject, contrast, "wrong shape",
                        f"{prediction_file}: shape {prediction.shape[::-1]} (x, y, z), "
                        f"reference {reference.shape[::-1]}")
    if non_finite_count(prediction):
        return _failure(subject, contrast, "non-finite", f"{prediction_file} has {non_finite_count(prediction)} "
                                                         f"{NON_FINITE} voxels; expected finite intensities")
    return {"subject": subject, "contrast": contrast, "status": "ok", **challenge_metrics(prediction, reference, mask),
            "error": ""}


def score_subject(reference_root: Path, prediction_root: Path, subject: str, folder: str = ENHANCED) -> list[dict]:
    """Rows for the three contrasts of one subject (predictions read from ``<ID>/<folder>/``)."""
    return score_files(reference_root, subject, {c: volume_path(prediction_root, subject, folder, c) for c in CONTRASTS})


def score_files(reference_root: Path, subject: str, predictions: dict[str, Path]) -> list[dict]:
    """Rows for the three contrasts of one subject, its predictions given file by file (``predictions[contrast]``)."""
    mask_file = mask_path(reference_root, subject)
    if not mask_file.is_file():
        raise EvaluationInputError(f"reference subject {subject} has no brain mask at {mask_file}")
    mask = read_reference(mask_file, f"the brain mask of {subject}") > 0.5
    if not mask.any():
        raise EvaluationInputError(f"the brain mask {mask_file} is empty")
    rows = []
    for contrast in CONTRASTS:
        reference_file = volume_path(reference_root, subject, HIGH_FIELD, contrast)
        if not reference_file.is_file():
            raise EvaluationInputError(f"reference subject {subject} has no {contrast} at {reference_file}")
        reference = read_reference(reference_file, f"the {contrast} reference of {subject}")
        if reference.shape != mask.shape:
            raise EvaluationInputError(f"{reference_file} and its mask {mask_file} differ in shape")
        rows.append(_score_contrast(reference, mask, Path(predictions[contrast]), subject, contrast))
    return rows


def _mean_metrics(rows: list[dict]) -> dict[str, float]:
    """Mean of each metric over ``rows``; the score is the final score of the means (the challenge's steps 6-7,
    :mod:`evaluation.metrics`)."""
    means = {key: float(np.mean([row[key] for row in rows])) for key in METRIC_KEYS}
    means["score"] = final_score(means["ssim"], means["psnr"], means["mae"], means["nmse"])
    return means


def summarise(rows: list[dict]) -> dict:
    """The challenge's means over all subjects x contrasts (failures count with the worst values), per contrast too."""
    failures = [f"{row['subject']} {row['contrast']}: {row['status']} ({row['error']})"
                for row in rows if row["status"] != "ok"]
    summary = {**_mean_metrics(rows), "cases": len(rows), "failed": len(failures), "failures": failures,
               "subjects": sorted({row["subject"] for row in rows})}
    summary["per_contrast"] = {c: _mean_metrics([r for r in rows if r["contrast"] == c])
                               for c in CONTRASTS if any(r["contrast"] == c for r in rows)}
    summary["definitions"] = dict(DEFINITIONS)
    return summary


def score_roots(reference_root: Path, prediction_root: Path, *, subjects: list[str] | None = None,
                folder: str = ENHANCED, workers: int = 1, progress: bool = False) -> tuple[list[dict], dict]:
    """Score every reference subject's prediction; returns (rows per subject and contrast, summary).

    ``folder`` is where each subject's predictions are (``Enhanced``; ``64mT`` scores the identity
    baseline when the prediction root is the reference root itself).
    """
    reference_root, prediction_root = Path(reference_root), Path(prediction_root)
    if not reference_root.is_dir():
        raise EvaluationInputError(f"reference root {reference_root} is not a folder")
    if not prediction_root.is_dir():
        raise EvaluationInputError(f"prediction root {prediction_root} is not a folder")
    found = reference_subjects(reference_root)
    if subjects:
        unknown = sorted(set(subjects) - set(found))
        if unknown:
            raise EvaluationInputError(f"subjects {unknown} are not in the reference root {reference_root}")
        found = [s for s in found if s in subjects]
    if not found:
        raise EvaluationInputError(f"no subjects (folders with a {HIGH_FIELD}/ folder) in {reference_root}")
    jobs = [(reference_root, prediction_root, subject, folder) for subject in found]
    rows = [row for subject_rows in per_subject(score_subject, jobs, workers, progress) for row in subject_rows]
    return rows, summarise(rows)


def per_subject(function, jobs: list[tuple], workers: int = 1, progress: bool = False) -> list:
    """``[function(*job) for job in jobs]``, in that order, over up to ``workers`` processes (capped by
    :func:`usable_workers`). The scoring is deterministic numpy, so any number of workers gives the same
    results in the same order as one. Where the processes cannot start or one dies (a process limit, say),
    it warns and computes in this process instead; an error of ``function`` itself is raised as it is."""
    workers = usable_workers(workers, len(jobs))
    if workers > 1:
        try:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                return list(_progress(pool.map(function, *zip(*jobs)), len(jobs), progress))
        except (OSError, BrokenProcessPool) as error:  # e.g. a process limit: no fork, or a worker killed
            print(f"warning: {workers} worker processes could not run ({error or type(error).__name__}); "
                  "scoring in this process instead", file=sys.stderr)
    return [function(*job) for job in _progress(jobs, len(jobs), progress)]


def usable_workers(workers: int, subjects: int) -> int:
    """``--workers`` as far as it helps: at most one per subject and per CPU (1000 workers on 8 CPUs would fork
    1000 processes, each importing the metric, and run into a process limit); at least 1."""
    if workers < 1:
        raise EvaluationInputError(f"--workers must be at least 1, got {workers}")
    return max(1, min(workers, subjects, os.cpu_count() or 1))


def _progress(items, total: int, enabled: bool):
    """``items`` wrapped in a tqdm progress bar (on stderr) when enabled."""
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, total=total, desc="scoring", unit="subject")
