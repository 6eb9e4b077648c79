"""Quality-control reports (``--qc DIR``): per case a picture and a JSON record, and an ``index.html``
over every case of the run, for a person to look through a cohort in a browser.

Per case ``<ID>.png``: rows T1, T2, FLAIR; columns the input's axial, coronal and sagittal slices
through the brain's centre, then the output's same three slices, each contrast shown with its input's
0.5-99.5 percentile window (so input and output are on one grey scale). Per case ``<ID>.json``: the
settings, the device, the seconds of each phase, intensity statistics of each contrast of input and
output, and the sampler's change per step (the root mean square, in normalised units, of how much the
clean-image estimate moved: the bridge at K, then each level of the chain). Written atomically.

The QC folder is an output location like the others (:func:`check_qc_location`): never an input folder or
inside one, never a file of an input or an output. Case IDs come from file and folder names, so nothing of
them reaches the page unescaped: every link is a relative file name, percent-encoded (:func:`file_link`),
and a name too long for a file gets a shortened, hashed one (:func:`model.volumes.layouts.case_file_stem`).
"""

from __future__ import annotations

import html
import json
import logging
import os
import tempfile
import urllib.parse
import uuid
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from ..errors import InputError, OutputError
from ..volumes.layouts import CONTRASTS, Case, case_file_stem
from .output_paths import resolved
from .run_record import record_path
from ..volumes.images import image_to_array

log = logging.getLogger(__name__)

VIEWS = ("axial", "coronal", "sagittal")
WINDOW_PERCENTILES = (0.5, 99.5)
GAP = 6  # pixels between tiles
SEPARATOR = 128  # grey of the gaps; the input, output and uncertainty blocks are split by a wider one
SCALE_BAR_WIDTH = 12  # pixels: the uncertainty block's grey ramp
INDEX = "index.html"
PARTIAL_PREFIX = ".qc-partial-"  # temporaries: short, whatever the case ID


def qc_files(case_id: str) -> tuple[str, str]:
    """The names of a case's picture and record in the QC folder."""
    stem = case_file_stem(case_id)
    return f"{stem}.png", f"{stem}.json"


def file_link(name: str) -> str:
    """``name`` as an href or src attribute value: a relative file name ("./" and every character but
    letters, digits and ``-_.~`` percent-encoded, so no ``javascript:``, no ``#``, no ``?``), HTML-escaped."""
    return html.escape("./" + urllib.parse.quote(name, safe=""), quote=True)


def check_qc_location(folder: Path, cases: Iterable[Case], input_folder: Path | None = None) -> None:
    """Refuse (exit 2, before any computing) a QC folder that is an input folder or lies inside one (the
    ``--input`` folder, or the folder of any case's input file), and one where a QC file would be an input
    or an output of the run."""
    cases = list(cases)
    target = resolved(folder)
    places = {}
    if input_folder is not None:
        places[resolved(input_folder)] = f"the input folder {input_folder}"
    for case in cases:
        for contrast, path in case.inputs.items():
            places.setdefault(resolved(Path(path).parent), f"the folder of the {case.case_id} {contrast} input {path}")
    for place, label in places.items():
        if target == place or place in target.parents:
            where = "is" if target == place else "lies inside"
            raise InputError(f"--qc {folder} {where} {label}; expected a QC folder apart from the inputs "
                             "(its files would be written among them)")
    taken = {resolved(path): f"the {case.case_id} {contrast} input {path}"
             for case in cases for contrast, path in case.inputs.items()}
    for case in cases:
        record = record_path(case)
        outputs = {**case.outputs, **({"run record": record} if record is not None else {})}
        taken.update({resolved(path): f"the {case.case_id} {contrast} output {path}" for contrast, path in outputs.items()})
    names = [INDEX] + [name for case in cases for name in qc_files(case.case_id)]
    for name in names:
        other = taken.get(resolved(Path(folder) / name))
        if other:
            raise InputError(f"--qc {folder}: its file {name} would be {other}; expected a QC folder apart from "
                             "the inputs and outputs")


def write_atomic(path: Path, data: str) -> None:
    """``data`` into ``path`` through a hidden temporary in the same folder."""
    handle, temporary = tempfile.mkstemp(prefix=f"{PARTIAL_PREFIX}{os.getpid()}-", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise OutputError(f"cannot write the QC file {path}: {error.strerror}") from None


def write_png_atomic(path: Path, pixels: np.ndarray) -> None:
    """An 8-bit grey picture (rows, columns) written by SimpleITK's PNG writer through a temporary."""
    temporary = path.with_name(f"{PARTIAL_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}.png")
    try:
        sitk.WriteImage(sitk.GetImageFromArray(np.ascontiguousarray(pixels, dtype=np.uint8)), str(temporary))
        os.replace(temporary, path)
    except (RuntimeError, OSError) as error:
        temporary.unlink(missing_ok=True)
        raise OutputError(f"cannot write the QC picture {path}: {str(error).strip().splitlines()[-1]}") from None


def prepare_folder(folder: Path) -> Path:
    """Create the QC folder up front, so that a bad ``--qc`` fails before any computing."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=folder, prefix=".qc-probe-")
        probe.close()
    except OSError as error:
        raise OutputError(f"--qc {folder}: cannot write there ({error.strerror})") from None
    return folder


def brain_centre(volume: np.ndarray) -> tuple[int, int, int]:
    """The (x, y, z) centroid of the voxels brighter than the volume's mean (the head, not the background)."""
    foreground = volume > volume.mean()
    if not foreground.any():
        return tuple(n // 2 for n in volume.shape)
    return tuple(int(round(float(np.mean(axis)))) for axis in np.nonzero(foreground))


def orthogonal_slices(volume: np.ndarray, centre: tuple[int, int, int]) -> list[np.ndarray]:
    """Axial, coronal and sagittal slices of an (x, y, z) volume through ``centre``, upright (rows, columns)."""
    x, y, z = centre
    return [np.flipud(volume[:, :, z].T), np.flipud(volume[:, y, :].T), np.flipud(volume[x, :, :].T)]


def to_grey(tile: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """``tile`` mapped linearly from ``window`` to 0..255 (clipped)."""
    low, high = window
    scaled = (tile.astype(np.float64) - low) / (high - low) if high > low else np.zeros(tile.shape)
    return np.clip(np.round(scaled * 255.0), 0, 255).astype(np.uint8)


def spread_window(spread: np.ndarray) -> tuple[float, float]:
    """The grey scale of an uncertainty map: black 0, white its 99.5th percentile."""
    return 0.0, float(np.percentile(spread, WINDOW_PERCENTILES[1]))


def scale_bar(height: int) -> np.ndarray:
    """A vertical grey ramp, white at the top: the uncertainty block's scale (its values are in the record)."""
    return np.repeat(np.linspace(255, 0, height).round().astype(np.uint8)[:, None], SCALE_BAR_WIDTH, axis=1)


def montage(inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray],
            spread: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """The case's picture: a row per contrast, input's three views | output's three views, and with ``spread``
    (several samples) | the uncertainty map's three views on its own scale (:func:`spread_window`) and its bar."""
    centre = brain_centre(inputs[CONTRASTS[0]])
    rows = []
    for contrast in CONTRASTS:
        window = tuple(float(v) for v in np.percentile(inputs[contrast], WINDOW_PERCENTILES))
        row = ([to_grey(t, window) for t in orthogonal_slices(inputs[contrast], centre)]
               + [to_grey(t, window) for t in orthogonal_slices(outputs[contrast], centre)])
        if spread is not None:
            row += [to_grey(t, spread_window(spread[contrast])) for t in orthogonal_slices(spread[contrast], centre)]
        rows.append(row)
    height = max(t.shape[0] for row in rows for t in row)
    width = max(t.shape[1] for row in rows for t in row)
    columns, blocks = len(rows[0]), len(rows[0]) // 3
    bar = SCALE_BAR_WIDTH + 2 * GAP if spread is not None else 0
    picture = np.full((len(rows) * (height + GAP) + GAP, columns * (width + GAP) + (blocks + 1) * GAP + bar),
                      SEPARATOR, np.uint8)
    for r, row in enumerate(rows):
        top_of_row = GAP + r * (height + GAP)
        for c, tile in enumerate(row):
            top = top_of_row + (height - tile.shape[0]) // 2
            left = GAP + c * (width + GAP) + 2 * GAP * (c // 3) + (width - tile.shape[1]) // 2
            picture[top:top + tile.shape[0], left:left + tile.shape[1]] = tile
        if spread is not None:
            left = picture.shape[1] - SCALE_BAR_WIDTH - GAP
            picture[top_of_row:top_of_row + height, left:left + SCALE_BAR_WIDTH] = scale_bar(height)
    return picture


def intensity_statistics(volume: np.ndarray) -> dict[str, float]:
    """Minimum, maximum, mean, standard deviation and the 1st, 50th and 99th percentiles."""
    p1, p50, p99 = np.percentile(volume, (1, 50, 99))
    return {"min": float(volume.min()), "max": float(volume.max()), "mean": float(volume.mean()),
            "std": float(volume.std()), "p1": float(p1), "p50": float(p50), "p99": float(p99)}


class CaseQc:
    """What one case's report gathers while it runs: phase times and the sampler's change per step."""

    def __init__(self, case: Case, folder: Path, settings: dict, device: str):
        self.case, self.folder, self.settings, self.device = case, folder, settings, device
        self.timings: dict[str, float] = {}
        self.steps: list[dict] = []
        self.plan: dict = {}  # the plan that ran: levels and windows (set by the case's run)

    def phase(self, name: str, seconds: float) -> None:
        self.timings[name] = round(seconds, 3)

    def on_estimate(self, step: str, level: int, before: torch.Tensor, after: torch.Tensor) -> None:
        """The sampler's hook (:data:`model.method.sampler.EstimateCallback`): per contrast, the RMS change."""
        rms = ((after.float() - before.float()) ** 2).mean(dim=(0, 2, 3, 4)).sqrt().cpu().tolist()
        self.steps.append({"step": step, "level": int(level), "rms_change": dict(zip(CONTRASTS, map(float, rms)))})

    def write(self, inputs: dict[str, sitk.Image], outputs: dict[str, sitk.Image],
              spread: dict[str, sitk.Image] | None = None) -> Path:
        """``<ID>.png`` and ``<ID>.json`` from the case's input and output images (the input grid), and its
        uncertainty maps when several samples were made."""
        arrays_in = {c: image_to_array(inputs[c]) for c in CONTRASTS}
        arrays_out = {c: image_to_array(outputs[c]) for c in CONTRASTS}
        arrays_spread = None if spread is None else {c: image_to_array(spread[c]) for c in CONTRASTS}
        picture, record_name = qc_files(self.case.case_id)
        write_png_atomic(self.folder / picture, montage(arrays_in, arrays_out, arrays_spread))
        record = {
            "case": self.case.case_id,
            "inputs": {c: str(self.case.inputs[c]) for c in CONTRASTS},
            "outputs": {c: str(self.case.outputs[c]) for c in CONTRASTS},
            "picture": picture,
            "picture_layout": {"rows": list(CONTRASTS), "columns": [f"input {v}" for v in VIEWS]
                               + [f"output {v}" for v in VIEWS]},
            "settings": self.settings,
            "plan": self.plan,
            "device": self.device,
            "seconds": {**self.timings, "total": round(sum(self.timings.values()), 3)},
            "intensity": {"input": {c: intensity_statistics(arrays_in[c]) for c in CONTRASTS},
                          "output": {c: intensity_statistics(arrays_out[c]) for c in CONTRASTS}},
            "sampler_change_per_step": self.steps,
        }
        if arrays_spread is not None:
            record["picture_layout"]["columns"] += [f"uncertainty {v}" for v in VIEWS] + ["uncertainty scale"]
            record["uncertainty_scale"] = {c: list(spread_window(arrays_spread[c])) for c in CONTRASTS}
        path = self.folder / record_name
        write_atomic(path, json.dumps(record, indent=2) + "\n")
        return path


class QcReport:
    """The run's QC folder (created up front, so that a bad ``--qc`` fails before any computing): a
    :class:`CaseQc` per case."""

    def __init__(self, folder: Path, settings: dict, device: str):
        self.folder, self.settings, self.device = prepare_folder(Path(folder)), settings, device

    def case(self, case: Case) -> CaseQc:
        return CaseQc(case, self.folder, self.settings, self.device)


def write_index(folder: Path, results, settings: dict) -> Path:
    """``index.html``: one section per case of the run (``results``: :class:`model.cli.cohorts.CaseResult`)."""
    folder = prepare_folder(Path(folder))
    sections = [index_section(folder, result) for result in sorted(results, key=lambda r: r.subject)]
    page = INDEX_TEMPLATE.format(count=len(results), sections="\n".join(sections),
                                 settings=html.escape(json.dumps(settings)))
    path = folder / INDEX
    write_atomic(path, page)
    return path


def record_details(record, picture: str, record_name: str, subject: str) -> str:
    """The index's lines from a case's QC record (written by an earlier run too: every value checked)."""
    seconds = ", ".join(f"{html.escape(str(k))} {float(v):.1f} s" for k, v in record["seconds"].items())
    steps = record["sampler_change_per_step"]
    last = (", ".join(f"{c} {float(v):.4f}" for c, v in steps[-1]["rms_change"].items()) if steps else "none")
    scale = record.get("uncertainty_scale")
    uncertainty = ("" if not scale else "<p>Right block: the per-voxel standard deviation of the samples, black 0, "
                   "white " + ", ".join(f"{html.escape(str(c))} {float(v[1]):.4g}" for c, v in scale.items())
                   + " (input units; the bar on the right is the scale)</p>\n")
    return (f'<p>{seconds}; {len(steps)} sampler steps, last RMS change: {html.escape(last)}; '
            f'<a href="{file_link(record_name)}">record</a></p>\n{uncertainty}'
            f'<img src="{file_link(picture)}" alt="{subject}: input and output, three contrasts, three views">')


def index_section(folder: Path, result) -> str:
    """One case of the index: status, times, the sampler's last change, and the picture. A record that
    cannot be read (a corrupt one left by an earlier run, say) is named, not trusted."""
    subject = html.escape(result.subject)
    picture, record_name = qc_files(result.subject)
    details = ""
    if (folder / record_name).is_file():
        try:
            details = record_details(json.loads((folder / record_name).read_text(encoding="utf-8")), picture,
                                     record_name, subject)
        except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            log.warning("QC record %s is unreadable (%s): the index lists %s without it; rerun the subject to "
                        "rewrite it", folder / record_name, reason, result.subject)
            details = (f"<p>QC record {html.escape(record_name)} is unreadable ({html.escape(reason)}); rerun the "
                       "subject to rewrite it</p>")
    status_class = "failed" if result.failed else "ok"
    return (f'<section id="{subject}"><h2>{subject} <span class="{status_class}">{html.escape(result.status)}</span>'
            f"</h2>\n<p>output folder {html.escape(result.output_folder)}, {result.seconds:.1f} s</p>\n{details}</section>")


INDEX_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Enhancement QC: {count} case(s)</title>
<style>
body {{ font-family: sans-serif; margin: 1em 2em; }}
img {{ max-width: 100%; image-rendering: pixelated; }}
.failed {{ color: #b00; }} .ok {{ color: #070; }}
section {{ border-top: 1px solid #ccc; margin-top: 1em; }}
</style>
</head>
<body>
<h1>Enhancement QC: {count} case(s)</h1>
<p>Each picture: rows T1, T2, FLAIR; left three columns the 64 mT input (axial, coronal, sagittal through
the brain's centre), right three the output, each contrast on its input's 0.5-99.5 percentile grey scale.</p>
<p>Settings: <code>{settings}</code></p>
{sections}
</body>
</html>
"""
