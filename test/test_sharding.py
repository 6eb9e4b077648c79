"""Cohorts over processes (model/cli/sharding.py): deterministic shares, and a real two-process torchrun run
(gloo, CPU) that writes exactly what one process writes."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TEST_WINDOW, files_under, ulf_enc_paths, write_case
from model.cli.cohorts import CaseResult
from model.errors import UsageError
from model.volumes.layouts import Case
from model.cli.sharding import Shard, current_shard

ROOT = Path(__file__).resolve().parent.parent


def case(case_id):
    return Case(case_id, {}, {})


def test_shares_are_disjoint_complete_and_independent_of_the_input_order():
    cases = [case(f"S{n:03d}") for n in (7, 1, 4, 3, 9, 2, 5)]
    shares = [[c.case_id for c in Shard(rank, 3, rank).assign(cases)] for rank in range(3)]
    assert shares == [["S001", "S004", "S009"], ["S002", "S005"], ["S003", "S007"]]
    assert [[c.case_id for c in Shard(rank, 3, rank).assign(cases[::-1])] for rank in range(3)] == shares
    assert Shard(5, 6, 1).assign(cases[:2]) == []  # more processes than subjects: some have none


def test_the_shard_comes_from_torchruns_environment(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert current_shard() is None
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert current_shard() is None
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    shard = current_shard()
    assert shard == Shard(3, 4, 1) and not shard.is_leader
    assert shard.device("cpu") == "cpu" and shard.device("cuda") == "cuda:1"
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(UsageError, match="RANK 4 is outside 0..3"):
        current_shard()


def test_case_results_travel_as_plain_dictionaries():
    result = CaseResult("S001", "enhanced", 1.5, "out/S001/Enhanced")
    assert CaseResult(**result.to_dict()) == result


def process_args(input_dir, output_dir, weights):
    return ["--input", str(input_dir), "--output", str(output_dir), "--weights", str(weights), "--preset", "smoke",
            "--window", *map(str, TEST_WINDOW), "--device", "cpu", "--threads", "1", "--seed", "7"]


def test_two_gloo_processes_write_what_one_process_writes(tmp_path, tiny_weights):
    for subject in ("SUB001", "SUB002"):
        write_case(ulf_enc_paths(tmp_path / "in", subject))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    one = subprocess.run([sys.executable, str(ROOT / "process.py"), *process_args(tmp_path / "in", tmp_path / "one", tiny_weights)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          str(ROOT / "process.py"), *process_args(tmp_path / "in", tmp_path / "two", tiny_weights),
                          "--qc", str(tmp_path / "qc")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    log = two.stdout + two.stderr
    # each process took one subject (case 1/1), and rank 0 logged the combined summary once
    assert log.count("case 1/1: SUB001") == 1 and log.count("case 1/1: SUB002") == 1, log[-3000:]
    assert log.count("2 of 2 cases enhanced, 0 skipped, 0 failed") == 1, log[-3000:]
    expected = files_under(tmp_path / "one")
    assert expected == sorted(f"{s}/Enhanced/{s}_{c}.nii.gz" for s in ("SUB001", "SUB002") for c in ("FLAIR", "T1", "T2"))
    assert files_under(tmp_path / "two") == expected
    for name in expected:
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name
    index = (tmp_path / "qc" / "index.html").read_text()  # written by rank 0 over both processes' cases
    assert '<img src="./SUB001.png"' in index and '<img src="./SUB002.png"' in index


def test_a_share_refused_as_a_whole_still_joins_the_gathering(monkeypatch):
    """One process (a gloo group of one): its refusal becomes a failed line per subject, gathered as usual."""
    import socket

    from model.errors import OutputError
    from model.cli.sharding import run_shard

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for name, value in (("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", str(port)), ("RANK", "0"), ("WORLD_SIZE", "1")):
        monkeypatch.setenv(name, value)

    def refused():
        raise OutputError("cannot create the output folder /out/S001/Enhanced: Permission denied")

    subjects = [Case("S001", {}, {c: Path(f"/out/S001/Enhanced/S001_{c}.nii.gz") for c in ("T1", "T2", "FLAIR")})]
    results = run_shard(Shard(0, 1, 0), refused, subjects)
    assert results == [CaseResult("S001", "FAILED cannot create the output folder /out/S001/Enhanced: Permission denied",
                                  0.0, "/out/S001/Enhanced")]
