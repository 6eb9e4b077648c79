"""The benchmark's rows as one printed table and as JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

COLUMNS = (  # (key, heading, format)
    ("configuration", "configuration", "{}"),
    ("overlaps", "overlap", "{}"),
    ("windows_per_evaluation", "windows/eval", "{:d}"),
    ("network_voxels_per_case", "net-voxels/case", "{:.3g}"),
    ("windows_per_second", "windows/s", "{:.3f}"),
    ("seconds_per_evaluation", "s/eval", "{:.1f}"),
    ("evaluations_per_case", "evals/case", "{}"),
    ("seconds_per_case", "s/case", "{:.0f}"),
    ("achieved_tflops", "TFLOP/s", "{:.3g}"),
    ("peak_host_added_mb", "host MB", "{:.0f}"),
    ("peak_gpu_mb", "GPU MB", "{:.0f}"),
    ("score", "score", "{:.4f}"),
    ("speedup_vs_naive", "x naive", "{:.2f}"),
    ("max_abs_diff_vs_naive", "max|diff|", "{:.1e}"),
)


def _cell(row: dict[str, Any], key: str, fmt: str) -> str:
    value = row.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    text = fmt.format(value)
    if key == "seconds_per_evaluation" and row.get("seconds_per_evaluation_source") == "extrapolated":
        text += "*"
    if key == "seconds_per_case" and row.get("seconds_per_case_source") == "extrapolated":
        text += "*"
    return text


def table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of the rows (``*``: extrapolated from measured per-window times)."""
    lines = ["| " + " | ".join(h for _, h, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row, k, f) for k, _, f in COLUMNS) + " |")
    return "\n".join(lines)


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Write the result document (rows plus summary) as indented JSON."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(document, indent=2) + "\n")
