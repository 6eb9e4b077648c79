"""Where the inputs of each case are and where its outputs go (docs/usage.md).

Three layouts:

* **Grand Challenge**: ``IN/images/<socket-slug>/<uuid>.mha`` (or ``.tif``), one file per socket,
  optionally described by ``IN/inputs.json``; outputs ``OUT/images/<output-slug>/<uuid>.mha``.
* **ULF-EnC**: ``IN/<ID>/64mT/<ID>_{T1,T2,FLAIR}.nii.gz`` for every subject found; outputs
  ``OUT/<ID>/Enhanced/<ID>_{T1,T2,FLAIR}.nii.gz``. The challenge's reference data adds
  ``ROOT/<ID>/3T/<ID>_<C>.nii.gz`` (high field) and ``ROOT/Masks/<ID>/<ID>_T1.nii.gz`` (brain masks);
  the evaluation, the simulator and the training stage find them through the names defined here.
* **Explicit files**: ``--t1 --t2 --flair`` and ``--output-dir``; outputs keep the input names.

Socket slugs default to the names in :data:`DEFAULT_INPUT_SLUGS` / :data:`DEFAULT_OUTPUT_SLUGS`
and are overridden, without rebuilding a container, by the environment variables
``ULF_SOCKET_{T1,T2,FLAIR}`` and ``ULF_OUTPUT_SOCKET_{T1,T2,FLAIR}``. An output interface's
``relative_path`` may differ from ``images/<its slug>`` (Grand Challenge lets a challenge choose it):
``ULF_OUTPUT_PATH_{T1,T2,FLAIR}`` sets the folder, relative to the output folder, per contrast.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError

log = logging.getLogger(__name__)

CONTRASTS = ("T1", "T2", "FLAIR")
DEFAULT_INPUT_SLUGS = {
    "T1": "low-field-t1-brain-mri",
    "T2": "low-field-t2-brain-mri",
    "FLAIR": "low-field-flair-brain-mri",
}
DEFAULT_OUTPUT_SLUGS = {
    "T1": "enhanced-t1-brain-mri",
    "T2": "enhanced-t2-brain-mri",
    "FLAIR": "enhanced-flair-brain-mri",
}
GRAND_CHALLENGE_SUFFIXES = (".mha", ".tif", ".tiff")
# The ULF-EnC folders: ROOT/<ID>/<folder>/<ID>_<contrast>.nii.gz, and ROOT/Masks/<ID>/<ID>_T1.nii.gz.
HIGH_FIELD = "3T"
LOW_FIELD = "64mT"
ENHANCED = "Enhanced"
MASKS = "Masks"
SUFFIX = ".nii.gz"
SUBJECT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


UNCERTAINTY_SUFFIX = "_std"  # --samples N > 1: <name>_std<format suffix> beside each output (ULF-EnC, explicit files)
UNCERTAINTY_SOCKET = "ULF_UNCERTAINTY_SOCKET_"  # Grand Challenge: the output socket of each contrast's map, if any


@dataclass(frozen=True)
class Case:
    """One subject: an input and an output path per contrast, and where each contrast's uncertainty map goes
    when several samples are made (a contrast missing from ``uncertainty``: its map is not written)."""

    case_id: str
    inputs: dict[str, Path]
    outputs: dict[str, Path]
    layout: str = field(default="files")
    uncertainty: dict[str, Path] = field(default_factory=dict)


def beside(output: Path) -> Path:
    """``sub_T1.nii.gz`` -> ``sub_T1_std.nii.gz``: the uncertainty map's file beside an output."""
    stem, dot, suffix = output.name.partition(".")
    return output.with_name(stem + UNCERTAINTY_SUFFIX + dot + suffix)


def uncertainty_sockets() -> dict[str, str]:
    """Grand Challenge: the uncertainty maps' output socket slugs that ``ULF_UNCERTAINTY_SOCKET_<C>`` configures."""
    return {c: _slug(UNCERTAINTY_SOCKET + c, f"{DEFAULT_OUTPUT_SLUGS[c]}-uncertainty") for c in CONTRASTS
            if os.environ.get(UNCERTAINTY_SOCKET + c, "").strip()}


def socket_slugs() -> tuple[dict[str, str], dict[str, str]]:
    """Input and output socket slugs per contrast, after environment overrides; a slug that is not one plain
    folder name (``../x``, ``a/b``, ``.``, empty) is refused naming its variable."""
    inputs = {c: _slug(f"ULF_SOCKET_{c}", DEFAULT_INPUT_SLUGS[c]) for c in CONTRASTS}
    outputs = {c: _slug(f"ULF_OUTPUT_SOCKET_{c}", DEFAULT_OUTPUT_SLUGS[c]) for c in CONTRASTS}
    return inputs, outputs


def _slug(variable: str, default: str) -> str:
    """The slug set by ``variable`` (else ``default``): a socket slug names one folder, ``images/<slug>``."""
    slug = os.environ.get(variable, default).strip()
    if not slug or slug in (".", "..") or "/" in slug or "\\" in slug or "\0" in slug:
        raise InputError(f"{variable}='{slug}' is not a socket slug; expected one folder name such as {default} "
                         "(lower-case letters, digits and dashes)")
    return slug


def output_folders() -> dict[str, str]:
    """Per contrast, the output interface's ``relative_path`` (a folder under the output folder):
    ``ULF_OUTPUT_PATH_<C>``, else ``images/<output slug>``; refused when it leaves the output folder."""
    _, out_slugs = socket_slugs()
    _distinct(out_slugs, "ULF_OUTPUT_SOCKET_")
    folders = {}
    for contrast in CONTRASTS:
        variable = f"ULF_OUTPUT_PATH_{contrast}"
        relative = os.environ.get(variable, f"images/{out_slugs[contrast]}").strip().rstrip("/")
        parts = os.path.normpath(relative).split(os.sep) if relative else [""]
        if Path(relative).is_absolute() or parts[0] in ("..", ".", ""):
            raise InputError(f"{variable}='{relative}' must be a folder inside the output folder, e.g. "
                             f"images/{out_slugs[contrast]}")
        folders[contrast] = relative
    _distinct(folders, "ULF_OUTPUT_PATH_")
    return folders


def _inputs_json_paths(input_dir: Path) -> dict[str, Path]:
    """Slug -> folder (or file) from ``inputs.json`` (a list of ``{"interface": {"slug", "relative_path"}, ...}``).

    Entries without a ``relative_path`` (values that are not files) are ignored; paths must stay
    inside ``input_dir``.
    """
    path = input_dir / "inputs.json"
    if not path.is_file():
        return {}
    expected = "expected a list of {'interface': {'slug': ..., 'relative_path': ...}, ...}"
    try:
        entries = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path} is not valid JSON ({error}); {expected}") from None
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from None
    if not isinstance(entries, list):
        raise InputError(f"{path} holds a JSON {type(entries).__name__}; {expected}")
    found = {}
    for number, entry in enumerate(entries):
        interface = entry.get("interface") if isinstance(entry, dict) else None
        if not isinstance(interface, dict):
            raise InputError(f"{path}: entry {number} is {json.dumps(entry)[:80]}; {expected}")
        if interface.get("relative_path") is None:
            continue
        slug, relative = interface.get("slug"), interface["relative_path"]
        if not isinstance(slug, str) or not isinstance(relative, str) or not relative:
            raise InputError(f"{path}: entry {number} has slug {slug!r} and relative_path {relative!r}; "
                             "expected two non-empty strings")
        location = input_dir / relative  # checked lexically: the platform may mount socket folders as links
        if Path(relative).is_absolute() or os.path.normpath(relative).split(os.sep)[0] in ("..", "."):
            raise InputError(f"{path}: entry {number} has relative_path '{relative}', which leaves {input_dir}; "
                             "expected a path inside the input folder")
        found[slug] = location
    return found


def _socket_file(folder: Path, slug: str, contrast: str) -> Path:
    """The single image file in a socket folder, or a clear error."""
    if not folder.is_dir():
        raise InputError(f"{contrast}: socket folder {folder} not found (socket slug '{slug}'; set ULF_SOCKET_{contrast} to change it)")
    candidates = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in GRAND_CHALLENGE_SUFFIXES)
    if not candidates:
        raise InputError(f"{contrast}: no .mha or .tif file in {folder}")
    if len(candidates) > 1:
        raise InputError(f"{contrast}: {len(candidates)} candidate files in {folder} ({', '.join(p.name for p in candidates)}); expected exactly one")
    return candidates[0]


MAX_STEM_BYTES = 200  # file names stop at 255 bytes: a longer case ID is shortened (and made unique by a hash)


def case_file_stem(case_id: str) -> str:
    """The stem of a file named after a case (its QC report, its run record): the case ID, or when it is longer
    than :data:`MAX_STEM_BYTES`, its beginning and a hash of the whole."""
    encoded = os.fsencode(case_id)
    if len(encoded) <= MAX_STEM_BYTES:
        return case_id
    digest = hashlib.sha256(encoded).hexdigest()[:12]
    return encoded[:MAX_STEM_BYTES - 13].decode("utf-8", "ignore") + "-" + digest


def file_stem(path: Path, what: str) -> str:
    """The name without its format suffix(es); refuses names that leave nothing usable (``..mha``)."""
    stem = path.name.split(".")[0]
    if not stem:
        raise InputError(f"{what}: the file name '{path.name}' has no usable stem (it starts with a dot); "
                         "expected a name such as <name>.mha")
    return stem


def _distinct(slugs: dict[str, str], variable: str) -> None:
    """Refuse two contrasts mapped onto one socket (the second would silently win)."""
    for contrast, slug in slugs.items():
        others = [c for c, s in slugs.items() if s == slug and c != contrast]
        if others:
            raise InputError(f"{variable}{contrast} and {variable}{others[0]} both name the socket '{slug}'; "
                             "expected one socket per contrast")


def grand_challenge_case(input_dir: Path, output_dir: Path) -> Case:
    """The one case of a Grand Challenge job."""
    in_slugs, _ = socket_slugs()
    out_folders = output_folders()
    described = _inputs_json_paths(input_dir)
    inputs, outputs = {}, {}
    for contrast in CONTRASTS:
        slug = in_slugs[contrast]
        location = described.get(slug, input_dir / "images" / slug)
        # Grand Challenge's relative_path of an image socket is its folder (images/<slug>); accept a file too.
        inputs[contrast] = location if location.is_file() else _socket_file(location, slug, contrast)
        outputs[contrast] = output_dir / out_folders[contrast] / (file_stem(inputs[contrast], contrast) + ".mha")
    uncertainty = {c: output_dir / "images" / slug / outputs[c].name for c, slug in uncertainty_sockets().items()}
    return Case(case_id=file_stem(inputs["T1"], "T1"), inputs=inputs, outputs=outputs, layout="grand-challenge",
                uncertainty=uncertainty)


def ulf_enc_cases(input_dir: Path, output_dir: Path) -> list[Case]:
    """Every subject folder ``IN/<ID>/64mT/`` holding the three contrasts (others are logged and skipped)."""
    cases = []
    for folder in sorted(p for p in input_dir.iterdir() if p.is_dir()):
        subject = folder.name
        if not (folder / LOW_FIELD).is_dir():
            log.info("skipping %s: no %s folder (not a subject)", folder, LOW_FIELD)
            continue
        if not SUBJECT_ID.match(subject):
            log.warning("skipping %s: '%s' is not a valid subject ID", folder, subject)
            continue
        inputs = {c: folder / LOW_FIELD / f"{subject}_{c}.nii.gz" for c in CONTRASTS}
        outputs = {c: output_dir / subject / ENHANCED / f"{subject}_{c}.nii.gz" for c in CONTRASTS}
        cases.append(Case(case_id=subject, inputs=inputs, outputs=outputs, layout="ulf-enc",
                          uncertainty={c: beside(path) for c, path in outputs.items()}))
    return cases


def explicit_case(t1: Path, t2: Path, flair: Path, output_dir: Path) -> Case:
    """One case from explicit files; the outputs keep the input file names."""
    inputs = {"T1": Path(t1), "T2": Path(t2), "FLAIR": Path(flair)}
    names = [p.name for p in inputs.values()]
    if len(set(names)) != 3:
        raise InputError(f"the three inputs share a file name ({', '.join(names)}); outputs keep the input names, so they must differ")
    outputs = {c: Path(output_dir) / p.name for c, p in inputs.items()}
    return Case(case_id=inputs["T1"].name.split(".")[0] or inputs["T1"].name, inputs=inputs, outputs=outputs,
                layout="files", uncertainty={c: beside(path) for c, path in outputs.items()})


def discover_cases(input_dir: Path, output_dir: Path) -> list[Case]:
    """Pick the layout from what ``input_dir`` holds and list its cases."""
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.is_dir():
        raise InputError(f"input folder {input_dir} not found")
    if (input_dir / "images").is_dir() or (input_dir / "inputs.json").is_file():
        return [grand_challenge_case(input_dir, output_dir)]
    cases = ulf_enc_cases(input_dir, output_dir)
    if not cases:
        in_slugs, _ = socket_slugs()
        raise InputError(
            f"no cases in {input_dir}: expected either the Grand Challenge layout "
            f"(images/{in_slugs['T1']}/*.mha, ...) or the ULF-EnC layout (<ID>/64mT/<ID>_T1.nii.gz, ...)"
        )
    return cases


def volume_path(root: Path, subject_id: str, folder: str, contrast: str) -> Path:
    """``root/<ID>/<folder>/<ID>_<contrast>.nii.gz`` (folder: 3T, 64mT or Enhanced)."""
    return Path(root) / subject_id / folder / f"{subject_id}_{contrast}{SUFFIX}"


def mask_path(root: Path, subject_id: str) -> Path:
    """``root/Masks/<ID>/<ID>_T1.nii.gz``: the brain mask the challenge scores in."""
    return Path(root) / MASKS / subject_id / f"{subject_id}_T1{SUFFIX}"


def reference_subjects(root: Path) -> list[str]:
    """Subject IDs of a reference root: sorted folders (other than Masks) that hold a 3T folder."""
    return sorted(p.name for p in Path(root).iterdir()
                  if p.is_dir() and p.name != MASKS and (p / HIGH_FIELD).is_dir())
