"""Scoring whole roots, and the ``python -m evaluation`` command line."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from model.volumes.layouts import CONTRASTS, mask_path, volume_path
from evaluation.metrics import challenge_metrics
from evaluation.scoring import EvaluationInputError, score_roots

ROOT = Path(__file__).resolve().parent.parent
SHAPE_ZYX = (10, 14, 12)
PERFECT_SCORE = 0.7 + 0.1 * 80 / 32 + 0.1 + 0.1


def _write(path: Path, array: np.ndarray) -> None:
    """Write a (z, y, x) array as an image file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))


@pytest.fixture()
def roots(tmp_path: Path) -> tuple[Path, Path, dict]:
    """A reference root (2 subjects, 3T + 64mT + masks) and a prediction root: S1 perfect, S2 with a
    gain/offset-changed T1 (still perfect), an unreadable T2 and a missing FLAIR."""
    rng = np.random.default_rng(0)
    reference, prediction = tmp_path / "ref", tmp_path / "pred"
    arrays = {}
    for subject in ("S1", "S2"):
        mask = np.zeros(SHAPE_ZYX, dtype=np.uint8)
        mask[2:8, 3:11, 3:9] = 1
        _write(mask_path(reference, subject), mask)
        for contrast in CONTRASTS:
            high = rng.random(SHAPE_ZYX).astype(np.float32)
            low = rng.random(SHAPE_ZYX).astype(np.float32)
            arrays[subject, contrast] = (high, low, mask)
            _write(volume_path(reference, subject, "3T", contrast), high)
            _write(volume_path(reference, subject, "64mT", contrast), low)
    for contrast in CONTRASTS:
        _write(volume_path(prediction, "S1", "Enhanced", contrast), arrays["S1", contrast][0])
    _write(volume_path(prediction, "S2", "Enhanced", "T1"), 5 * arrays["S2", "T1"][0] + 100)
    broken = volume_path(prediction, "S2", "Enhanced", "T2")
    broken.write_bytes(b"not an image")
    return reference, prediction, arrays


def test_rows_summary_and_failures(roots):
    """Four perfect cases, one unreadable and one missing (each scoring 0): means over all six."""
    reference, prediction, _ = roots
    rows, summary = score_roots(reference, prediction)
    status = {(r["subject"], r["contrast"]): r["status"] for r in rows}
    assert status == {("S1", "T1"): "ok", ("S1", "T2"): "ok", ("S1", "FLAIR"): "ok",
                      ("S2", "T1"): "ok", ("S2", "T2"): "unreadable", ("S2", "FLAIR"): "missing"}
    assert summary["cases"] == 6 and summary["failed"] == 2
    assert summary["ssim"] == pytest.approx(4 / 6)
    assert summary["psnr"] == pytest.approx(4 * 80 / 6)
    assert summary["mae"] == pytest.approx(2 / 6)
    assert summary["score"] == pytest.approx(4 * PERFECT_SCORE / 6)
    assert any("S2 FLAIR" in f and "missing" in f for f in summary["failures"])
    assert summary["per_contrast"]["T1"]["ssim"] == pytest.approx(1.0)


def test_identity_baseline_via_the_low_field_folder(roots):
    """Scoring the reference root's own 64mT volumes equals the metric of those arrays."""
    reference, _, arrays = roots
    rows, summary = score_roots(reference, reference, folder="64mT", subjects=["S1"])
    assert [r["contrast"] for r in rows] == list(CONTRASTS)
    for row in rows:
        high, low, mask = arrays["S1", row["contrast"]]
        assert row["ssim"] == pytest.approx(challenge_metrics(low, high, mask)["ssim"])
    assert summary["ssim"] == pytest.approx(np.mean([r["ssim"] for r in rows]))


def test_bad_roots_are_refused(tmp_path: Path, roots):
    """Missing folders and unknown subjects raise a named input error."""
    reference, prediction, _ = roots
    with pytest.raises(EvaluationInputError, match="reference root"):
        score_roots(tmp_path / "nowhere", prediction)
    with pytest.raises(EvaluationInputError, match="S9"):
        score_roots(reference, prediction, subjects=["S9"])
    mask_path(reference, "S1").unlink()
    with pytest.raises(EvaluationInputError, match="no brain mask"):
        score_roots(reference, prediction)


def _run(*arguments: str) -> subprocess.CompletedProcess:
    """Run ``python -m evaluation`` from the repository root."""
    return subprocess.run([sys.executable, "-m", "evaluation", *arguments], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_command_line_writes_csv_and_json(roots, tmp_path: Path):
    """The CLI prints a table, writes one CSV line per case and a JSON summary with the challenge means on top."""
    reference, prediction, _ = roots
    out = tmp_path / "scores"
    result = _run("--reference", str(reference), "--predictions", str(prediction), "--out", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "FAILED S2 FLAIR: missing" in result.stdout
    with open(out / "metrics.csv") as stream:
        lines = list(csv.DictReader(stream))
    assert len(lines) == 6 and lines[0]["subject"] == "S1"
    summary = json.loads((out / "summary.json").read_text())
    assert {"ssim", "psnr", "mae", "nmse", "score"} <= set(summary)
    assert summary["ssim"] == pytest.approx(4 / 6, abs=1e-9)


def test_command_line_bad_input_is_one_line(tmp_path: Path):
    """A missing reference root: exit status 2, one 'error:' line, no traceback."""
    result = _run("--reference", str(tmp_path / "missing"), "--predictions", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and result.stderr.startswith("error:")
    assert "Traceback" not in result.stderr
