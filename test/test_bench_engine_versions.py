"""The side-by-side benchmark of two checkouts (bench/engine_versions.py): per head, both versions' sampling
seconds, windows and scores, read from real process.py runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench import engine_versions
from simulation import generate_subject, write_subject

REPO = Path(__file__).resolve().parent.parent


def test_two_checkouts_side_by_side_on_a_small_head(tmp_path, tiny_weights, capsys):
    data = tmp_path / "heads"
    write_subject(data, "SIM0001", generate_subject(0, shape_scale=0.2))
    old = tmp_path / "old"  # a copy of this checkout's entry point stands in for an earlier commit
    shutil.copytree(REPO / "model", old / "model")
    shutil.copy(REPO / "process.py", old / "process.py")
    options = ["--preset", "smoke", "--weights", str(tiny_weights), "--window", "64", "32", "32"]
    assert engine_versions.main(["--old", str(old), "--data", str(data), "--out", str(tmp_path / "out"), "--", *options]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| SIM0001 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[5] == cells[4] and int(cells[4]) > 0  # both ran the same windows, counted from their logs
    assert cells[6] == cells[7] and cells[8] == "+0.0000"  # the same code and weights: the same score
    assert "whole command, median of 1" in out


def test_heads_are_named_by_set_and_seed():
    assert engine_versions.head_id("shifted:90200") == "SHIFTED90200"
    with pytest.raises(SystemExit, match="VARIATION:SEED"):
        engine_versions.write_heads(["demo"], Path("unused"))
