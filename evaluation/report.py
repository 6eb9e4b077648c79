"""The evaluation's outputs: a CSV per subject and contrast, a JSON summary, a printed table."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path

from evaluation.metrics import METRIC_KEYS

CSV_COLUMNS = ("subject", "contrast", "status") + METRIC_KEYS + ("error",)
TABLE_COLUMNS = ("ssim", "psnr", "mae", "nmse", "score", "psnr_masked_standard", "ssim_unmasked", "psnr_standard")


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    with os.fdopen(handle, "w", newline="") as stream:
        stream.write(text)
    os.replace(temporary, path)


def write_csv(rows: list[dict], path: Path) -> None:
    """One line per subject and contrast, columns :data:`CSV_COLUMNS`."""
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: (f"{row[key]:.6f}" if isinstance(row[key], float) else row[key]) for key in CSV_COLUMNS})
    _write_atomic(Path(path), buffer.getvalue())


def write_json(summary: dict, path: Path) -> None:
    """The summary as indented JSON."""
    _write_atomic(Path(path), json.dumps(summary, indent=2) + "\n")


def format_table(rows: list[dict], summary: dict) -> str:
    """A plain-text table: every case, then the mean per contrast and over all cases."""
    header = f"{'subject':<12} {'contrast':<8} " + " ".join(f"{name:>20}" for name in TABLE_COLUMNS) + "  status"
    lines = [header, "-" * len(header)]
    for row in rows:
        values = " ".join(f"{row[name]:>20.4f}" for name in TABLE_COLUMNS)
        lines.append(f"{row['subject']:<12} {row['contrast']:<8} {values}  {row['status']}")
    lines.append("-" * len(header))
    for contrast, means in summary["per_contrast"].items():
        lines.append(f"{'mean':<12} {contrast:<8} " + " ".join(f"{means[name]:>20.4f}" for name in TABLE_COLUMNS))
    lines.append(f"{'mean':<12} {'all':<8} " + " ".join(f"{summary[name]:>20.4f}" for name in TABLE_COLUMNS))
    lines.append(f"{summary['cases']} cases, {summary['failed']} failed; challenge metric: ssim, psnr (per-voxel), "
                 "mae, nmse, score; the paper's Table 1 PSNR: psnr_masked_standard (standard PSNR over the mask); "
                 "earlier ranking: ssim_unmasked, psnr_standard")
    lines.extend(f"FAILED {failure}" for failure in summary["failures"])
    return "\n".join(lines)
