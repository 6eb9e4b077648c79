"""The record beside every output set, and replaying it (model/pipeline/run_record.py)."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
import torch

from conftest import TEST_WINDOW, grand_challenge_paths, ulf_enc_paths, write_case
from model.execution.budget import TimeBudget
from model.cli.main import main
from model.execution.precision import resolve_precision
from model.pipeline.run_record import RECORD_SUFFIX

SMOKE = ["--preset", "smoke", "--window", *map(str, TEST_WINDOW), "--quiet"]


def explicit_run(tmp_path, weights, out, *extra):
    files = write_case({c: tmp_path / "in" / f"sub_{c}.nii.gz" for c in ("T1", "T2", "FLAIR")})
    return main(["--t1", str(files["T1"]), "--t2", str(files["T2"]), "--flair", str(files["FLAIR"]),
                 "--output-dir", str(tmp_path / out), "--weights", str(weights), *map(str, extra)])


def volumes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.nii.gz"))}


def test_a_run_writes_its_record_and_a_replay_gives_byte_identical_outputs(tmp_path, tiny_weights):
    assert explicit_run(tmp_path, tiny_weights, "first", *SMOKE, "--seed", 3, "--overlap", 0.5) == 0
    record_file = tmp_path / "first" / f"sub_T1{RECORD_SUFFIX}"
    record = json.loads(record_file.read_text())
    assert record["settings"]["seed"] == 3 and record["settings"]["overlap"] == 0.5
    assert record["device"] == "cpu" and record["budget"] is None
    assert record["precision"] == resolve_precision("auto", torch.device("cpu"))  # bfloat16 where the CPU has it
    assert set(record["weights"]["networks_sha256"]) == {"diffusion", "bridge"} and record["code_version"]
    assert all(len(entry["sha256"]) == 64 for entry in record["inputs"].values())

    assert explicit_run(tmp_path, tiny_weights, "replayed", "--replay", record_file, "--quiet") == 0
    first, replayed = volumes(tmp_path / "first"), volumes(tmp_path / "replayed")
    assert len(first) == 3 and first == replayed
    # a different seed is a different output: the comparison above can fail
    assert explicit_run(tmp_path, tiny_weights, "other", *SMOKE, "--seed", 4, "--overlap", 0.5) == 0
    assert volumes(tmp_path / "other") != first


def test_a_budgeted_run_replays_what_it_ran_not_what_was_asked(tmp_path, tiny_weights):
    """A budget too small for anything runs the minimum work: the record holds that plan, and its replay
    (no planning) reproduces the output."""
    assert explicit_run(tmp_path, tiny_weights, "first", *SMOKE, "--time-budget", 0.001) == 0
    record_file = tmp_path / "first" / f"sub_T1{RECORD_SUFFIX}"
    record = json.loads(record_file.read_text())
    assert record["settings"]["mode"] == "bridge" and not record["budget"]["fits"]
    assert explicit_run(tmp_path, tiny_weights, "replayed", "--replay", record_file, "--quiet",
                        "--time-budget", 0.001) == 0
    assert volumes(tmp_path / "first") == volumes(tmp_path / "replayed")


def test_the_ulf_enc_record_lies_beside_the_subjects_outputs(tmp_path, tiny_weights):
    write_case(ulf_enc_paths(tmp_path / "in", "S01"))
    assert main(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--weights", str(tiny_weights),
                 *SMOKE]) == 0
    assert json.loads((tmp_path / "out" / "S01" / "Enhanced" / f"S01{RECORD_SUFFIX}").read_text())["case"] == "S01"


def test_grand_challenge_outputs_get_no_extra_file_and_the_record_goes_to_the_log(tmp_path, tiny_weights, caplog):
    write_case(grand_challenge_paths(tmp_path / "in"))
    with caplog.at_level(logging.INFO, logger="model"):
        assert main(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--weights",
                     str(tiny_weights), *SMOKE[:-1]]) == 0
    assert not list((tmp_path / "out").rglob(f"*{RECORD_SUFFIX}")) and len(list((tmp_path / "out").rglob("*"))) == 7
    assert "run record" in caplog.text and '"networks_sha256"' in caplog.text


def test_a_replay_refuses_other_weights_and_extra_options(tmp_path, tiny_weights):
    assert explicit_run(tmp_path, tiny_weights, "first", *SMOKE) == 0
    record_file = tmp_path / "first" / f"sub_T1{RECORD_SUFFIX}"
    other = tmp_path / "other-weights"
    shutil.copytree(tiny_weights, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["networks"]["bridge"]["sha256"] = "f" * 64
    (other / "manifest.json").write_text(json.dumps(manifest))
    assert explicit_run(tmp_path, other, "a", "--replay", record_file, "--quiet") == 3
    assert explicit_run(tmp_path, tiny_weights, "b", "--replay", record_file, "--seed", 5, "--quiet") == 2
    (tmp_path / "junk.json").write_text("{}")
    assert explicit_run(tmp_path, tiny_weights, "c", "--replay", tmp_path / "junk.json", "--quiet") == 2
    assert not any((tmp_path / name).exists() for name in ("a", "b", "c"))


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.mark.parametrize("per_case", [False, True])
def test_a_per_case_budget_gives_every_case_the_whole_allowance(per_case):
    clock = FakeClock()
    budget = TimeBudget(100.0, clock=clock, per_case=per_case)
    clock.now = 5.0  # imports
    budget.start_case()
    first = budget.case_allowance(cases_left=3, read_seconds=1.0)
    clock.now = 80.0  # the first case took 75 s
    budget.record_io(2.0)
    budget.start_case()
    second = budget.case_allowance(cases_left=2, read_seconds=1.0)
    if per_case:
        assert first == pytest.approx(100 - 5 - 1) and second == pytest.approx(100 - 1)
    else:
        assert first == pytest.approx((95 - 1 - 2 * 2) / 3) and second == pytest.approx((20 - 1 - 2) / 2)


def test_a_long_case_name_gets_a_short_unique_record_name(tmp_path):
    from pathlib import Path

    from model.volumes.layouts import Case
    from model.pipeline.run_record import record_path

    def case(name):
        return Case(name, {}, {c: tmp_path / f"{name}_{c}.nii.gz" for c in ("T1", "T2", "FLAIR")}, layout="files")

    long_a, long_b = "ü" * 120 + "a", "ü" * 120 + "b"
    a, b = record_path(case(long_a)), record_path(case(long_b))
    assert a != b and len(a.name.encode()) <= 255 and len(b.name.encode()) <= 255
    assert record_path(case("sub")) == Path(tmp_path / f"sub{RECORD_SUFFIX}")
