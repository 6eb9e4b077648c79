"""Where a submission's predicted volumes are, in the two ways an evaluation receives them.

* **Grand Challenge evaluation**: ``/input/predictions.json`` lists the submission's algorithm jobs,
  each ``{"pk": ..., "inputs": [...], "outputs": [...], ...}`` whose values carry
  ``{"interface": {"slug": ..., "relative_path": ...}, "image": {"name": ...}}``. A job's output of
  socket S is the one image file (``.mha``/``.tif``) in ``/input/<pk>/output/<relative_path of S>/``;
  the job's subject is the reference subject whose ID the low-field T1 input's image name carries
  (e.g. ``POCEMR001_T1.mha``). Socket slugs are those of :mod:`model.volumes.layouts` (``ULF_SOCKET_*``,
  ``ULF_OUTPUT_SOCKET_*`` override them).
* **Local (ULF-EnC layout)**: ``PRED/<ID>/Enhanced/<ID>_{T1,T2,FLAIR}.nii.gz`` for every subject folder.

Nothing here reads voxels: :mod:`evaluation.validation` loads and checks the files.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from model.volumes.layouts import CONTRASTS, ENHANCED, GRAND_CHALLENGE_SUFFIXES, socket_slugs, volume_path

PREDICTIONS_JSON = "predictions.json"


class SubmissionError(Exception):
    """The submission cannot be evaluated; the message says why, for the participant."""


@dataclass(frozen=True)
class PredictedVolume:
    """One predicted volume: whose, which contrast, where, and the name that indexes its case."""

    subject: str
    contrast: str
    path: Path
    case_name: str  # the name evalutils' path-index check reads: the job's input image name, or the file name
    source: str  # where it came from, for messages: "job <pk>" or the subject folder


def is_grand_challenge(input_dir: Path) -> bool:
    """Whether ``input_dir`` holds the platform's ``predictions.json``."""
    return (Path(input_dir) / PREDICTIONS_JSON).is_file()


def subject_in_name(name: str, subjects: list[str]) -> str | None:
    """The one reference subject whose ID appears in ``name`` as a whole token (longest match wins)."""
    found = [s for s in subjects if re.search(rf"(?<![A-Za-z0-9]){re.escape(s)}(?![A-Za-z0-9])", name)]
    return max(found, key=len) if found else None


def _values(entry: dict, key: str, job: str) -> list:
    """A job's ``inputs`` or ``outputs``: a list (of values), or a SubmissionError naming what it is instead."""
    values = entry.get(key)
    if values is None:
        return []
    if not isinstance(values, list):
        raise SubmissionError(f"{job}: '{key}' in predictions.json is a JSON {_json_type(values)}; expected a list of "
                              "values, each {'interface': {'slug': ..., 'relative_path': ...}, 'image': {'name': ...}}")
    return values


def _json_type(value) -> str:
    """The JSON name of a parsed value's type, for messages."""
    return {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean",
            type(None): "null"}.get(type(value), type(value).__name__)


def _value(values: list, slug: str, job: str, what: str) -> dict:
    for value in values:
        if isinstance(value, dict) and isinstance(value.get("interface"), dict) and value["interface"].get("slug") == slug:
            return value
    raise SubmissionError(f"{job}: no {what} of socket '{slug}' in predictions.json")


def _job_output(input_dir: Path, pk: str, value: dict, job: str) -> Path:
    """The one image file of an output value: ``input_dir/<pk>/output/<relative_path>/``."""
    interface = value["interface"]
    relative_path = interface.get("relative_path")
    if relative_path is not None and not isinstance(relative_path, str):
        raise SubmissionError(f"{job}: the output of socket '{interface['slug']}' has relative_path "
                              f"{relative_path!r}, a JSON {_json_type(relative_path)}; expected a string")
    relative = Path(relative_path or f"images/{interface['slug']}")
    if relative.is_absolute() or ".." in relative.parts:
        raise SubmissionError(f"{job}: output relative_path '{relative}' leaves the job's output folder")
    folder = input_dir / pk / "output" / relative
    if folder.is_file():
        return folder
    files = sorted(p for p in folder.glob("*") if p.is_file() and p.name.lower().endswith(GRAND_CHALLENGE_SUFFIXES))
    if len(files) != 1:
        raise SubmissionError(f"{job}: expected one .mha or .tif file in {folder}, found "
                              f"{', '.join(p.name for p in files) or 'none'}")
    return files[0]


def grand_challenge_predictions(input_dir: Path, subjects: list[str]) -> list[PredictedVolume]:
    """The predicted volumes of every job listed in ``input_dir/predictions.json``."""
    input_dir = Path(input_dir)
    try:
        jobs = json.loads((input_dir / PREDICTIONS_JSON).read_text())
    except (OSError, ValueError) as error:
        raise SubmissionError(f"cannot read {input_dir / PREDICTIONS_JSON}: {error}") from None
    if not isinstance(jobs, list) or not all(isinstance(job, dict) for job in jobs):
        raise SubmissionError(f"{input_dir / PREDICTIONS_JSON} is not a list of jobs")
    in_slugs, out_slugs = socket_slugs()
    volumes = []
    for number, entry in enumerate(jobs, start=1):
        pk = str(entry.get("pk", ""))
        job = f"job {pk or number}"
        if not pk or "/" in pk or pk in (".", ".."):
            raise SubmissionError(f"{job}: no usable 'pk' in predictions.json")
        if entry.get("status", "Succeeded") != "Succeeded":
            raise SubmissionError(f"{job}: status '{entry.get('status')}', not Succeeded: a case has no prediction")
        t1_input = _value(_values(entry, "inputs", job), in_slugs["T1"], job, "input")
        image = t1_input.get("image")
        if not isinstance(image, dict) or not isinstance(image.get("name"), str):
            raise SubmissionError(f"{job}: its T1 input (socket '{in_slugs['T1']}') has 'image' "
                                  f"{str(image)[:60]!r}; expected an object with the image's 'name' (a string)")
        name = image["name"]
        subject = subject_in_name(name, subjects)
        if subject is None:
            raise SubmissionError(f"{job}: its input image '{name}' names none of the reference subjects")
        for contrast in CONTRASTS:
            value = _value(_values(entry, "outputs", job), out_slugs[contrast], job, "output")
            volumes.append(PredictedVolume(subject, contrast, _job_output(input_dir, pk, value, job), name, job))
    return volumes


def ulf_enc_predictions(root: Path) -> list[PredictedVolume]:
    """The predicted volumes of every subject folder of a ULF-EnC prediction root (``<ID>/Enhanced/``)."""
    root = Path(root)
    if not root.is_dir():
        raise SubmissionError(f"prediction root {root} is not a folder")
    subjects = sorted(p.parent.name for p in root.glob(f"*/{ENHANCED}") if p.is_dir())
    return [PredictedVolume(s, c, path, path.name, f"{root / s}")
            for s in subjects for c in CONTRASTS for path in [volume_path(root, s, ENHANCED, c)]]


def find_predictions(input_dir: Path, subjects: list[str]) -> tuple[str, list[PredictedVolume]]:
    """(``"grand-challenge"`` or ``"ulf-enc"``, the predicted volumes) of the submission in ``input_dir``."""
    if is_grand_challenge(input_dir):
        return "grand-challenge", grand_challenge_predictions(input_dir, subjects)
    return "ulf-enc", ulf_enc_predictions(input_dir)
