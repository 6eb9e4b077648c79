"""Checking a submission with evalutils' loaders and validators before it is scored.

evalutils 0.4.2 (the last release with ``evalutils.io`` and ``evalutils.validators``) does the
loading and the generic checks: its ``SimpleITKLoader`` reads each predicted volume and hashes its
voxels, and its validators refuse

* a wrong number of cases, per contrast (``NumberOfCasesValidator``: one volume per reference subject),
* the same volume submitted twice, across subjects *and* contrasts (``UniqueImagesValidator``: one
  volume written to two contrasts is caught),
* two volumes of one contrast indexed by the same case number (``UniquePathIndicesValidator`` on the
  case names: the job's input image name on Grand Challenge, the file name locally).

What evalutils cannot know is checked here: every subject is a reference subject, and every volume
lies on its reference's grid (size exactly; spacing, origin and direction within the tolerances of
the inference's own grid check). Each problem becomes one sentence naming the subject, contrast and
file; :func:`validate` raises them all at once.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from evalutils.exceptions import FileLoaderError, ValidationError
from evalutils.io import SimpleITKLoader
from evalutils.validators import NumberOfCasesValidator, UniqueImagesValidator, UniquePathIndicesValidator
from pandas import DataFrame

from evaluation.submission import PredictedVolume, SubmissionError
from model.volumes.layouts import CONTRASTS, HIGH_FIELD, volume_path

SPACING_RTOL, ORIGIN_ATOL_MM, DIRECTION_ATOL = 1e-4, 0.01, 1e-4


def load_volumes(volumes: list[PredictedVolume]) -> tuple[DataFrame, list[str]]:
    """evalutils' ``SimpleITKLoader`` on every volume: a frame with ``hash``, ``path`` (the case name),
    ``file``, ``subject`` and ``contrast``, and a sentence per volume it could not load."""
    loader, rows, problems = SimpleITKLoader(), [], []
    for volume in volumes:
        if not volume.path.is_file():
            problems.append(f"{volume.subject} {volume.contrast}: no prediction at {volume.path}")
            continue
        try:
            (loaded,) = loader.load(fname=volume.path)
        except FileLoaderError:
            problems.append(f"{volume.subject} {volume.contrast}: {volume.path} is not a readable image")
            continue
        rows.append({"hash": loaded["hash"], "path": Path(volume.case_name), "file": str(volume.path),
                     "subject": volume.subject, "contrast": volume.contrast})
    return DataFrame(rows, columns=["hash", "path", "file", "subject", "contrast"]), problems


def _validator_problem(validator, frame: DataFrame, context: str) -> str | None:
    try:
        validator.validate(df=frame)
    except ValidationError as error:
        return f"{context}: {error}"
    return None


def duplicate_volumes(frame: DataFrame) -> list[str]:
    """Groups of (subject contrast) that are one and the same volume."""
    groups = defaultdict(list)
    for row in frame.itertuples():
        groups[row.hash].append(f"{row.subject} {row.contrast}")
    return [" = ".join(names) for names in groups.values() if len(names) > 1]


def evalutils_problems(frame: DataFrame, subjects: list[str]) -> list[str]:
    """The evalutils validators' verdicts, each with what it is about."""
    problems = []
    for contrast in CONTRASTS:
        part = frame[frame["contrast"] == contrast].reset_index(drop=True)
        missing = sorted(set(subjects) - set(part["subject"]))
        problem = _validator_problem(NumberOfCasesValidator(num_cases=len(subjects)), part, contrast)
        if problem:
            problems.append(problem + (f" (missing: {', '.join(missing)})" if missing else ""))
        elif missing:  # the right count, but some subject twice and these not at all
            problems.append(f"{contrast}: no prediction for {', '.join(missing)}")
        if len(part):
            problem = _validator_problem(UniquePathIndicesValidator(), part, f"{contrast} case names")
            if problem:
                problems.append(problem + f" (names: {', '.join(str(p) for p in part['path'])})")
    if len(frame):
        problem = _validator_problem(UniqueImagesValidator(), frame, "volumes")
        if problem:
            problems.append(problem + f" (identical: {'; '.join(duplicate_volumes(frame))})")
    return problems


def grid_problem(prediction: Path, reference: Path, what: str) -> str | None:
    """A sentence when ``prediction``'s grid differs from ``reference``'s, else None (headers only)."""
    grids = []
    for path in (prediction, reference):
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        grids.append((reader.GetSize(), reader.GetSpacing(), reader.GetOrigin(), reader.GetDirection()))
    (size, spacing, origin, direction), (r_size, r_spacing, r_origin, r_direction) = grids
    differences = []
    if size != r_size:
        differences.append(f"size {size}, reference {r_size}")
    elif not np.allclose(spacing, r_spacing, rtol=SPACING_RTOL, atol=0):
        differences.append(f"spacing {spacing}, reference {r_spacing}")
    elif not np.allclose(origin, r_origin, rtol=0, atol=ORIGIN_ATOL_MM):
        differences.append(f"origin {origin}, reference {r_origin}")
    elif not np.allclose(direction, r_direction, rtol=0, atol=DIRECTION_ATOL):
        differences.append("direction differs from the reference's")
    return f"{what}: {prediction} is not on the reference's grid ({differences[0]})" if differences else None


def validate(volumes: list[PredictedVolume], reference_root: Path, subjects: list[str]) -> dict[str, dict[str, Path]]:
    """Load and check a submission; returns ``{subject: {contrast: file}}`` or raises :class:`SubmissionError`
    with every problem found."""
    unknown = sorted({v.subject for v in volumes} - set(subjects))
    problems = [f"{s}: not a reference subject (too many predictions)" for s in unknown]
    frame, load_problems = load_volumes([v for v in volumes if v.subject not in unknown])
    problems += load_problems + evalutils_problems(frame, subjects)
    for row in frame.itertuples():
        problem = grid_problem(Path(row.file), volume_path(reference_root, row.subject, HIGH_FIELD, row.contrast),
                               f"{row.subject} {row.contrast}")
        if problem:
            problems.append(problem)
    if problems:
        raise SubmissionError("; ".join(problems))
    files: dict[str, dict[str, Path]] = defaultdict(dict)
    for row in frame.itertuples():
        files[row.subject][row.contrast] = Path(row.file)
    return dict(files)
