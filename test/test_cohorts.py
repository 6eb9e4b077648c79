"""Batch habits (model/cli/cohorts.py): --subjects, --skip-existing, --threads, --device cuda:N, the summary table."""

import logging
import re

import pytest
import SimpleITK as sitk
import torch

from conftest import files_under, run_process, ulf_enc_paths, write_case
from model.cli import cohorts as batch
from model.cli.cohorts import CaseResult, summary_table
from model.volumes.layouts import CONTRASTS


def cohort(root, subjects=("SUB001", "SUB002", "SUB003")):
    return {s: write_case(ulf_enc_paths(root, s)) for s in subjects}


def outputs(root, subject):
    return [root / subject / "Enhanced" / f"{subject}_{c}.nii.gz" for c in CONTRASTS]


def test_subjects_limits_the_run_and_an_unknown_one_is_refused(tmp_path, caplog):
    cohort(tmp_path / "in")
    assert run_process("--input", tmp_path / "in", "--output", tmp_path / "out", "--subjects", "SUB003", "SUB001") == 0
    assert sorted({f.split("/")[0] for f in files_under(tmp_path / "out")}) == ["SUB001", "SUB003"]
    caplog.clear()
    assert run_process("--input", tmp_path / "in", "--output", tmp_path / "other", "--subjects", "SUB001", "NOPE9") == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == ["--subjects: NOPE9 not found in the input (it has SUB001, SUB002, SUB003)"]
    assert files_under(tmp_path / "other") == []


def test_skip_existing_leaves_finished_subjects_alone_and_redoes_incomplete_ones(tmp_path, caplog):
    cohort(tmp_path / "in")
    out = tmp_path / "out"
    assert run_process("--input", tmp_path / "in", "--output", out, "--subjects", "SUB001", "SUB002") == 0
    finished = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in outputs(out, "SUB001")}
    outputs(out, "SUB002")[1].unlink()  # SUB002 incomplete: two of three outputs
    caplog.clear()
    caplog.set_level(logging.INFO, logger="model")
    assert run_process("--input", tmp_path / "in", "--output", out, "--skip-existing") == 0
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in finished} == finished  # not rewritten
    assert all(p.is_file() for s in ("SUB002", "SUB003") for p in outputs(out, s))
    assert re.search(r"^SUB001 +skipped \(outputs exist\) +0\.0 ", "\n".join(r.getMessage() for r in caplog.records), re.MULTILINE)
    assert re.search(r"^SUB002 +enhanced ", "\n".join(r.getMessage() for r in caplog.records), re.MULTILINE)
    assert "2 of 3 cases enhanced, 1 skipped, 0 failed" in caplog.text


def test_threads_sets_torch_and_simpleitk_and_zero_is_refused(tmp_path, caplog):
    cohort(tmp_path / "in", ("SUB001",))
    torch_before, itk_before = torch.get_num_threads(), sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    try:
        assert run_process("--input", tmp_path / "in", "--output", tmp_path / "out", "--threads", "1") == 0
        assert torch.get_num_threads() == 1 and sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == 1
    finally:
        torch.set_num_threads(torch_before)
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(itk_before)
    caplog.clear()
    assert run_process("--input", tmp_path / "in", "--output", tmp_path / "zero", "--threads", "0") == 2
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == ["--threads must be at least 1, got 0"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without that GPU")
def test_a_missing_gpu_index_is_exit_5_in_one_line(tmp_path, caplog):
    cohort(tmp_path / "in", ("SUB001",))
    assert run_process("--input", tmp_path / "in", "--output", tmp_path / "out", "--device", "cuda:3") == 5
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and errors[0].startswith("--device cuda:3 was asked for") and files_under(tmp_path / "out") == []


def test_summary_table_has_a_row_per_subject_and_the_counts():
    table = summary_table([CaseResult("B02", "FAILED bad input", 1.25, "out/B02/Enhanced"),
                           CaseResult("A01", "enhanced", 12.0, "out/A01/Enhanced"),
                           CaseResult("C03", batch.SKIPPED, 0.0, "out/C03/Enhanced")])
    lines = table.splitlines()
    assert lines[0].split() == ["subject", "status", "seconds", "output", "folder"]
    assert [line.split()[0] for line in lines[2:5]] == ["A01", "B02", "C03"]  # sorted by subject
    assert lines[2].split() == ["A01", "enhanced", "12.0", "out/A01/Enhanced"]
    assert lines[3].split()[-2:] == ["1.2", "out/B02/Enhanced"]
    assert lines[-1] == "1 of 3 cases enhanced, 1 skipped, 1 failed"
