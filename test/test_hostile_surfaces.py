"""The third reliability catalogue (issue 23): the surfaces added around the core (the QC report,
--skip-existing, torchrun, options from the environment, the time budget, the evaluation command and image)
end as the README's "What can go wrong" promises: the right exit status, one line naming the file or
option, nothing written outside the output locations, no output set reported done that is not whole."""

from __future__ import annotations

import gzip
import hashlib
import html.parser
import json
import logging
import os
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import (TEST_WINDOW, files_under, grand_challenge_paths, head_like, make_image, run_process,
                      ulf_enc_paths, write_case)
from model.cli.cohorts import CaseResult
from model.volumes.layouts import CONTRASTS, mask_path, volume_path

ROOT = Path(__file__).resolve().parent.parent


def errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]


def digests(folder: Path) -> dict[str, str]:
    """sha256 of every file below ``folder``."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def outputs_of(out: Path, subject: str) -> dict[str, Path]:
    return {c: out / subject / "Enhanced" / f"{subject}_{c}.nii.gz" for c in CONTRASTS}


# 1. The QC folder is an output location: never an input folder, never among an input's files.

def test_a_qc_folder_that_is_the_grand_challenge_input_folder_is_refused(tmp_path, caplog):
    """A case named 'inputs' would have written its QC record over the input folder's inputs.json."""
    paths = {c: p.with_name("inputs.mha") for c, p in grand_challenge_paths(tmp_path / "in").items()}
    write_case(paths)
    (tmp_path / "in" / "inputs.json").write_text("[]")
    before = digests(tmp_path / "in")
    assert run_process("--input", tmp_path / "in", "--output", tmp_path / "out", "--qc", tmp_path / "in") == 2
    assert errors(caplog) == [f"--qc {tmp_path / 'in'} is the input folder {tmp_path / 'in'}; expected a QC folder "
                              "apart from the inputs (its files would be written among them)"]
    assert digests(tmp_path / "in") == before and not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["input root", "inside a subject's input", "beside explicit files"])
def test_a_qc_folder_among_the_inputs_is_refused(tmp_path, caplog, where):
    write_case(ulf_enc_paths(tmp_path / "in", "SUB001"))
    qc = {"input root": tmp_path / "in", "inside a subject's input": tmp_path / "in" / "SUB001" / "64mT" / "qc",
          "beside explicit files": tmp_path / "in" / "SUB001" / "64mT"}[where]
    before = digests(tmp_path / "in")
    if where == "beside explicit files":
        files = ulf_enc_paths(tmp_path / "in", "SUB001")
        status = run_process("--t1", files["T1"], "--t2", files["T2"], "--flair", files["FLAIR"],
                             "--output-dir", tmp_path / "out", "--qc", qc)
    else:
        status = run_process("--input", tmp_path / "in", "--output", tmp_path / "out", "--qc", qc)
    assert status == 2
    assert len(errors(caplog)) == 1 and errors(caplog)[0].startswith(f"--qc {qc} ")
    assert "apart from the inputs" in errors(caplog)[0]
    assert digests(tmp_path / "in") == before and not (tmp_path / "out").exists()


# 2. --skip-existing counts a subject as done only when its output set is whole.

def _damage(out: Path, subject: str, how: str) -> None:
    outputs = outputs_of(out, subject)
    if how == "an empty T1":
        outputs["T1"].write_bytes(b"")
    elif how == "a FLAIR of text":
        outputs["FLAIR"].write_bytes(b"this is not an image\n....")
    elif how == "a truncated T2":
        data = gzip.decompress(outputs["T2"].read_bytes())
        outputs["T2"].write_bytes(gzip.compress(data[: len(data) // 2]))
    elif how == "a T1 on another grid":
        sitk.WriteImage(make_image(head_like(size=(20, 29, 13))["T1"]), str(outputs["T1"]))
    elif how == "NaN voxels in the T2":
        values = head_like()["T2"]
        values[: values.shape[0] // 2] = np.nan
        sitk.WriteImage(make_image(values), str(outputs["T2"]))
    elif how == "no run record":
        (out / subject / "Enhanced" / f"{subject}.enhancement.json").unlink()


DAMAGES = ["an empty T1", "a FLAIR of text", "a truncated T2", "a T1 on another grid", "NaN voxels in the T2"]


def test_skip_existing_redoes_every_damaged_output_set_and_says_why(tmp_path, caplog):
    subjects = [f"SUB{n:03d}" for n in range(1, len(DAMAGES) + 2)]
    for subject in subjects:
        write_case(ulf_enc_paths(tmp_path / "in", subject))
    out = tmp_path / "out"
    assert run_process("--input", tmp_path / "in", "--output", out) == 0
    damaged = dict(zip(subjects, DAMAGES + ["no run record"]))
    for subject, how in damaged.items():
        _damage(out, subject, how)
    whole = subjects[-1]
    kept = {p: p.stat().st_mtime_ns for p in outputs_of(out, whole).values()}
    caplog.clear()
    caplog.set_level(logging.INFO, logger="model")
    assert run_process("--input", tmp_path / "in", "--output", out, "--skip-existing") == 0
    log = caplog.text
    for subject, how in damaged.items():
        if how == "no run record":  # the record is not part of the output set: still whole, skipped
            assert f"{subject}: its three outputs exist and read as whole, skipped" in log
            assert {p: p.stat().st_mtime_ns for p in kept} == kept
            continue
        redone = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"{subject}: redone")]
        assert len(redone) == 1, (how, log)
        for contrast, path in outputs_of(out, subject).items():  # whole again: each reads as the input's grid
            image = sitk.ReadImage(str(path))
            assert image.GetSize() == (37, 29, 13) and np.isfinite(sitk.GetArrayViewFromImage(image)).all(), how
    messages = {subject: next(r.getMessage() for r in caplog.records if r.getMessage().startswith(f"{subject}: redone"))
                for subject, how in damaged.items() if how != "no run record"}
    assert "is empty (0 bytes)" in messages["SUB001"]
    assert "the FLAIR output" in messages["SUB002"] and "the T2 output" in messages["SUB003"]
    assert "not on the input's grid" in messages["SUB004"] and "NaN or infinite" in messages["SUB005"]
    assert f"{len(DAMAGES)} of {len(subjects)} cases enhanced, 1 skipped, 0 failed" in log


def test_skip_existing_reports_a_folder_in_an_outputs_place_as_not_done(tmp_path, caplog):
    for subject in ("SUB001", "SUB002"):
        write_case(ulf_enc_paths(tmp_path / "in", subject))
    out = tmp_path / "out"
    assert run_process("--input", tmp_path / "in", "--output", out) == 0
    outputs_of(out, "SUB001")["T2"].unlink()
    outputs_of(out, "SUB001")["T2"].mkdir()
    caplog.clear()
    assert run_process("--input", tmp_path / "in", "--output", out, "--skip-existing") == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert f"SUB001: redone (--skip-existing): its T2 output {outputs_of(out, 'SUB001')['T2']} is a folder, not a file" \
        in warnings
    assert any(w.startswith("SUB001  ") and "FAILED the T2 output" in w and "is a folder" in w for w in warnings), warnings
    assert "0 of 2 cases enhanced, 1 skipped, 1 failed" in caplog.text
    outputs_of(out, "SUB001")["T2"].rmdir()  # the user clears it; the rerun ends with every subject whole
    assert run_process("--input", tmp_path / "in", "--output", out, "--skip-existing") == 0
    assert all(p.is_file() for s in ("SUB001", "SUB002") for p in outputs_of(out, s).values())


# 3. The QC page trusts no subject name; long names and old, corrupt records do not fail a run.

class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.tags: list[str] = []
        self.attributes: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes |= {name for name, _ in attrs}
        self.links += [value for name, value in attrs if name in ("href", "src")]


HOSTILE_IDS = ["javascript:alert(document.cookie)", "a#b?c=d", "<img src=x onerror=alert(1)>", "x\" onmouseover=\"y"]


def test_every_link_of_the_index_is_a_relative_file_name_and_every_name_is_escaped(tmp_path):
    from model.pipeline.qc import qc_files, write_index

    results = []
    for subject in HOSTILE_IDS:
        picture, record = qc_files(subject)
        (tmp_path / picture).write_bytes(b"png")
        (tmp_path / record).write_text(json.dumps({"seconds": {"load": 1.0}, "picture": "javascript:alert(2)",
                                                   "sampler_change_per_step": []}))
        results.append(CaseResult(subject, "enhanced", 1.0, f"out/{subject}"))
    page = write_index(tmp_path, results, {"preset": "<b>"}).read_text()
    parser = _Links()
    parser.feed(page)
    assert sorted(set(parser.tags)) == ["a", "body", "code", "h1", "h2", "head", "html", "img", "meta", "p", "section",
                                        "span", "style", "title"]  # no tag made of a subject's name
    assert parser.attributes == {"lang", "charset", "id", "class", "href", "src", "alt"}  # no attribute either
    assert len(parser.links) == 2 * len(HOSTILE_IDS)
    for link in parser.links:
        assert link.startswith("./") and (tmp_path / urllib.parse.unquote(link[2:])).is_file(), link
        assert urllib.parse.urlsplit(link).scheme == "" and "#" not in link and "?" not in link
    assert "javascript:alert(2)" not in page and "onerror=alert" not in page.replace("onerror=alert(1)&gt;", "")


def test_a_240_character_case_name_gets_its_qc_report(tmp_path, caplog):
    name = "s" * 240
    paths = {c: p.with_name(f"{name}.mha") for c, p in grand_challenge_paths(tmp_path / "in").items()}
    write_case(paths)
    assert run_process("--input", tmp_path / "in", "--output", tmp_path / "out", "--qc", tmp_path / "qc") == 0, caplog.text
    written = sorted(p.name for p in (tmp_path / "qc").iterdir())
    assert len(written) == 3 and "index.html" in written and all(len(n) < 220 for n in written)
    parser = _Links()
    parser.feed((tmp_path / "qc" / "index.html").read_text())
    assert all((tmp_path / "qc" / urllib.parse.unquote(link[2:])).is_file() for link in parser.links) and parser.links


def test_a_corrupt_qc_record_of_an_earlier_run_does_not_fail_a_resumed_run(tmp_path, caplog):
    for subject in ("SUB001", "SUB002"):
        write_case(ulf_enc_paths(tmp_path / "in", subject))
    common = ("--input", tmp_path / "in", "--output", tmp_path / "out", "--qc", tmp_path / "qc")
    assert run_process(*common, "--subjects", "SUB001") == 0
    (tmp_path / "qc" / "SUB001.json").write_text('{"seconds": {"load": ')
    caplog.clear()
    assert run_process(*common, "--skip-existing") == 0
    assert errors(caplog) == []
    page = (tmp_path / "qc" / "index.html").read_text()
    assert "QC record SUB001.json is unreadable" in page and '<img src="./SUB002.png"' in page


# 4. No tracebacks: torchrun, the evaluation command and image, an absurd ULF_WEIGHTS.

def _torchrun(tmp_path, weights, *extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(ROOT / "process.py"), "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"),
                           "--weights", str(weights), "--preset", "smoke", "--window", *map(str, TEST_WINDOW),
                           "--device", "cpu", "--threads", "1", *extra],
                          capture_output=True, text=True, env=env, timeout=600)


def test_torchrun_ends_with_the_ranks_one_line(tmp_path, tiny_weights):
    for subject in ("SUB001", "SUB002", "SUB003"):
        write_case(ulf_enc_paths(tmp_path / "in", subject))
    (tmp_path / "in" / "SUB002" / "64mT" / "SUB002_T2.nii.gz").unlink()  # rank 1's only subject
    broken = _torchrun(tmp_path, tiny_weights, "--qc", str(tmp_path / "qc"))
    log = broken.stdout + broken.stderr
    assert broken.returncode == 1
    assert files_under(tmp_path / "out") == sorted(f"{s}/Enhanced/{s}_{c}.nii.gz" for s in ("SUB001", "SUB003")
                                                   for c in ("FLAIR", "T1", "T2"))
    assert log.count("2 of 3 cases enhanced, 0 skipped, 1 failed") == 1 and (tmp_path / "qc" / "index.html").is_file()
    assert "To enable traceback see" not in log and "closing signal SIGTERM" not in log, log[-3000:]
    report = log.rsplit("Root Cause (first observed failure):", 1)[1].strip().splitlines()
    assert report[-2].strip() == ("traceback : 1 of 3 subjects failed: SUB002 FAILED SUB002 T2: file not found: "
                                  f"{tmp_path / 'in' / 'SUB002' / '64mT' / 'SUB002_T2.nii.gz'} (the summary above lists them)")
    unknown = _torchrun(tmp_path, tiny_weights, "--subjects", "SUB001", "NOPE")
    log = unknown.stdout + unknown.stderr
    assert "To enable traceback see" not in log and "exitcode  : 2" in log
    assert log.rsplit("Root Cause", 1)[1].strip().splitlines()[-2].strip() == \
        "traceback : --subjects: NOPE not found in the input (it has SUB001, SUB002, SUB003)"


@pytest.fixture()
def scored(tmp_path) -> tuple[Path, Path]:
    """A reference root of two subjects (3T, masks) and perfect NIfTI predictions of it."""
    rng = np.random.default_rng(0)
    reference, prediction = tmp_path / "ref", tmp_path / "pred"
    for subject in ("S1", "S2"):
        mask = np.zeros((10, 14, 12), dtype=np.uint8)
        mask[2:8, 3:11, 3:9] = 1
        mask_path(reference, subject).parent.mkdir(parents=True)
        sitk.WriteImage(sitk.GetImageFromArray(mask), str(mask_path(reference, subject)))
        for contrast in CONTRASTS:
            high = rng.random((10, 14, 12)).astype(np.float32)
            for root, folder in ((reference, "3T"), (prediction, "Enhanced")):
                volume_path(root, subject, folder, contrast).parent.mkdir(parents=True, exist_ok=True)
                sitk.WriteImage(sitk.GetImageFromArray(high), str(volume_path(root, subject, folder, contrast)))
    return reference, prediction


def _evaluate(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evaluation", *arguments, "--no-progress"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def _one_line(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_the_evaluation_refuses_an_out_that_is_a_file_and_a_corrupt_reference_in_one_line(scored, tmp_path):
    reference, prediction = scored
    (tmp_path / "a-file").write_text("not a folder")
    result = _evaluate("--reference", str(reference), "--predictions", str(prediction), "--out", str(tmp_path / "a-file"))
    assert result.returncode == 4
    assert _one_line(result) == f"error: --out {tmp_path / 'a-file'}: {tmp_path / 'a-file'} is not a folder; expected a " \
                                "folder for the results"
    volume_path(reference, "S2", "3T", "FLAIR").write_bytes(b"\x00" * 40)
    result = _evaluate("--reference", str(reference), "--predictions", str(prediction))
    assert result.returncode == 2
    line = _one_line(result)
    assert line.startswith(f"error: the FLAIR reference of S2: ") and str(volume_path(reference, "S2", "3T", "FLAIR")) in line


def test_the_evaluation_takes_as_many_workers_as_help_and_survives_a_process_limit(scored, monkeypatch):
    from evaluation import scoring

    reference, prediction = scored
    assert scoring.usable_workers(1000, 2) == min(2, os.cpu_count())
    with pytest.raises(scoring.EvaluationInputError, match="--workers must be at least 1"):
        scoring.usable_workers(0, 2)

    class NoFork:  # what a 64-process limit does to ProcessPoolExecutor
        def __init__(self, max_workers):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *_):
            return False

        def map(self, *_):
            raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(scoring, "ProcessPoolExecutor", NoFork)
    monkeypatch.setattr(scoring.os, "cpu_count", lambda: 64)
    rows, summary = scoring.score_roots(reference, prediction, workers=1000)
    assert len(rows) == 6 and summary["failed"] == 0


@pytest.mark.parametrize(("change", "says"), [
    (lambda job: job.update(inputs=7), "job 1: 'inputs' in predictions.json is a JSON number; expected a list"),
    (lambda job: job.update(outputs="images"), "job 1: 'outputs' in predictions.json is a JSON string; expected a list"),
    (lambda job: job["inputs"][0].update(image="/images/S1_T1.mha"), "job 1: its T1 input (socket"),
    (lambda job: job["outputs"][0]["interface"].update(relative_path=5), "has relative_path 5, a JSON number"),
])
def test_the_evaluation_image_refuses_a_malformed_predictions_json_in_one_line(tmp_path, scored, change, says, capsys):
    from evaluation import container
    from model.volumes.layouts import DEFAULT_INPUT_SLUGS, DEFAULT_OUTPUT_SLUGS

    reference, _ = scored
    job = {"pk": "1", "status": "Succeeded",
           "inputs": [{"interface": {"slug": DEFAULT_INPUT_SLUGS["T1"]}, "image": {"name": "S1_T1.mha"}}],
           "outputs": [{"interface": {"slug": DEFAULT_OUTPUT_SLUGS[c], "relative_path": f"images/{DEFAULT_OUTPUT_SLUGS[c]}"},
                        "image": {"name": "x.mha"}} for c in CONTRASTS]}
    change(job)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "predictions.json").write_text(json.dumps([job]))
    status = container.main(["--input", str(tmp_path / "sub"), "--ground-truth", str(reference),
                             "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == 1 and says in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_a_weights_path_too_long_for_the_system_is_a_weights_error(tmp_path, monkeypatch, caplog):
    from model.cli.main import main

    write_case(ulf_enc_paths(tmp_path / "in", "SUB001"))
    monkeypatch.setenv("ULF_WEIGHTS", "/w" * 50_000)
    status = main(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--quiet"])
    assert status == 3
    assert len(errors(caplog)) == 1 and errors(caplog)[0].startswith("cannot use the weights folder /w/w/w")
    assert "100000 characters" in errors(caplog)[0] and "ULF_WEIGHTS" in errors(caplog)[0]


# 5. Options: nothing silent, nothing surprising.

def _parse(*argv, environ=None):
    from model.cli.main import build_parser
    from model.cli.environment import with_environment

    return with_environment(build_parser(), environ or {}).parse_args(list(argv))


def test_level_stride_replaces_a_presets_chain_and_says_so(caplog):
    from model.cli.main import settings_from

    settings = settings_from(_parse("--preset", "cpu", "--level-stride", "10"))
    assert settings.algorithm.chain_levels == () and settings.algorithm.visited_levels()[:3] == (100, 90, 80)
    assert len(settings.algorithm.visited_levels()) == 10
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["--level-stride 10 replaces the chain 25, 10, 1 of --preset cpu: the diffusion visits 10 "
                        "level(s) from K = 100 (100, 90, 80, 70, 60, 50, ...)"]
    assert settings_from(_parse("--preset", "cpu")).algorithm.chain_levels == (25, 10, 1)  # without it: the chain


def test_a_bridge_timestep_below_the_presets_chain_names_what_to_change(tmp_path, caplog):
    from model.cli.main import main

    write_case(ulf_enc_paths(tmp_path / "in", "SUB001"))
    assert main(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--preset", "cpu",
                 "--bridge-timestep", "20", "--quiet"]) == 2
    assert errors(caplog) == ["--bridge-timestep 20: --preset cpu visits the chain 25, 10, 1 after the bridge, which needs "
                              "K >= 25; give --bridge-timestep 25 or more, or --level-stride S to visit every S-th level "
                              "from K = 20 instead of the chain (or --preset paper: every level)"]
    caplog.clear()  # and the suggestion works
    from model.cli.main import settings_from
    assert settings_from(_parse("--preset", "cpu", "--bridge-timestep", "20", "--level-stride", "5")
                         ).algorithm.visited_levels() == (20, 15, 10, 5)


def test_a_bridge_timestep_beyond_the_weights_schedule_is_an_option_error(tmp_path, tiny_weights, caplog):
    from model.cli.main import main

    write_case(ulf_enc_paths(tmp_path / "in", "SUB001"))
    assert main(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--weights", str(tiny_weights),
                 "--preset", "smoke", "--bridge-timestep", "1001", "--quiet"]) == 2
    assert errors(caplog) == ["--bridge-timestep must be in 1..1000 (the weights' cosine schedule), got 1001"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("value", ["inf", "nan", "-1", "1e400"])
def test_a_time_budget_that_is_not_a_finite_number_of_seconds_is_refused(value, capsys):
    for argv, environ in (((f"--time-budget={value}",), {}), ((), {"ULF_TIME_BUDGET": value})):
        with pytest.raises(SystemExit) as raised:
            _parse(*argv, environ=environ)
        assert raised.value.code == 2
        assert "expected a finite number of seconds" in capsys.readouterr().err


def test_the_command_line_wins_over_a_broken_variable():
    args = _parse("--time-budget", "5", "--threads", "2", environ={"ULF_TIME_BUDGET": "ten minutes", "ULF_THREADS": "many"})
    assert args.time_budget == 5.0 and args.threads == 2
    with pytest.raises(SystemExit):
        _parse(environ={"ULF_TIME_BUDGET": "ten minutes"})  # not overridden: still refused, naming the variable


def test_folders_from_the_environment_give_way_to_files_on_the_command_line(tmp_path, monkeypatch, caplog):
    from model.cli.main import main

    files = write_case(ulf_enc_paths(tmp_path / "in", "SUB001"))
    caplog.set_level(logging.INFO, logger="model")
    monkeypatch.setenv("ULF_INPUT", str(tmp_path / "elsewhere"))
    explicit = ["--t1", str(files["T1"]), "--t2", str(files["T2"]), "--flair", str(files["FLAIR"])]
    assert main([*explicit, "--output-dir", str(tmp_path / "out"), "--mode", "identity"]) == 0
    assert (tmp_path / "out" / "SUB001_T1.nii.gz").is_file()
    assert "ULF_INPUT ignored: the command line gives --t1, --t2, --flair, --output-dir" in caplog.text
    monkeypatch.setenv("ULF_T1", str(files["T1"]))  # both from the environment: refused, naming the variables
    caplog.clear()
    assert main(["--mode", "identity"]) == 2
    assert errors(caplog) == ["give either the explicit files (--t1/--t2/--flair/--output-dir) or the folders "
                              "(--input/--output), not both: got ULF_T1 and ULF_INPUT"]


def test_threads_beyond_reason_are_refused_before_the_openmp_runtime_sees_them(tmp_path):
    write_case(ulf_enc_paths(tmp_path / "in", "SUB001"))
    result = subprocess.run([sys.executable, str(ROOT / "process.py"), "--input", str(tmp_path / "in"), "--output",
                             str(tmp_path / "out"), "--mode", "identity", "--threads", "1000000000", "--quiet"],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].endswith(
        f"ERROR --threads 1000000000 is more than this machine can use ({os.cpu_count()} CPUs); expected "
        f"1..{max(64, 4 * os.cpu_count())}, e.g. {os.cpu_count()}")
    assert not (tmp_path / "out").exists()


def test_the_time_budgets_log_lines_never_show_negative_or_nan_seconds():
    from model.config.settings import preset
    from model.execution.budget import BudgetChoice
    from model.execution.plan import plan_case

    smoke = plan_case(preset("smoke"), (64, 64, 32))
    over = BudgetChoice("minimum", smoke, estimate=12.0, allowance=-6.4, fits=False).describe()
    assert "-6" not in over and "OVER the budget: it was spent 6 s before this case's sampling began" in over
    assert "OVER the 3 s left" in BudgetChoice("minimum", smoke, 12.0, 3.0, fits=False).describe()
    assert "nothing of it was left" in BudgetChoice("minimum", smoke, 12.0, 0.2, fits=False).describe()


@pytest.mark.parametrize(("variable", "value"), [("ULF_OUTPUT_SOCKET_T1", "../../escape"), ("ULF_SOCKET_T2", "a/b"),
                                                 ("ULF_OUTPUT_SOCKET_FLAIR", "..")])
def test_a_socket_slug_that_is_a_path_is_refused_naming_its_variable(tmp_path, monkeypatch, caplog, variable, value):
    from model.cli.main import main

    write_case(grand_challenge_paths(tmp_path / "input"))
    monkeypatch.setenv(variable, value)
    assert main(["--input", str(tmp_path / "input"), "--output", str(tmp_path / "output"), "--mode", "identity"]) == 2
    (message,) = errors(caplog)
    assert message.startswith(f"{variable}='{value}' is not a socket slug; expected one folder name such as ")
    assert "ULF_OUTPUT_PATH" not in message and value not in message.split("such as", 1)[1]
    assert not (tmp_path / "output").exists() and not (tmp_path / "escape").exists()


def test_a_model_tarball_one_folder_deeper_is_found_and_said(tmp_path, tiny_weights, monkeypatch, caplog):
    from model.cli import arguments as cli

    tarball = tmp_path / "opt-ml-model"
    shutil.copytree(tiny_weights, tarball / "weights")
    monkeypatch.setattr(cli, "MODEL_TARBALL_WEIGHTS", tarball)
    assert cli.weights_dir(_parse()) == tarball / "weights"
    assert f"the model tarball's manifest.json is in {tarball / 'weights'}, not at the top of {tarball}" in caplog.text
    shutil.rmtree(tarball / "weights")
    (tarball / "README").write_text("no weights here")
    caplog.clear()
    assert cli.weights_dir(_parse()) == cli.DEFAULT_WEIGHTS
    assert f"the model tarball folder {tarball} holds files but no manifest.json" in caplog.text
    for copy in ("a", "b"):
        shutil.copytree(tiny_weights, tarball / copy)
    with pytest.raises(cli.WeightsError, match="holds 2 weights folders"):
        cli.weights_dir(_parse())


# 6. NaN predictions: the local command scores them as the worst and says so; the image refuses them.

def _half_nan(path: Path) -> int:
    values = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    values[: values.shape[0] // 2] = np.nan
    sitk.WriteImage(sitk.GetImageFromArray(values), str(path))  # SimpleITK 2.5 reads these NaN back as zeros
    return int(np.isnan(values).sum())


def test_a_nan_prediction_is_a_failed_case_with_the_worst_values(scored, tmp_path):
    from evaluation.metrics import FAILURE_VALUES
    from evaluation.scoring import score_roots

    reference, prediction = scored
    count = _half_nan(volume_path(prediction, "S1", "Enhanced", "T2"))
    rows, summary = score_roots(reference, prediction)
    (row,) = [r for r in rows if (r["subject"], r["contrast"]) == ("S1", "T2")]
    assert row["status"] == "non-finite" and f"has {count} NaN or infinite voxels" in row["error"]
    assert {k: row[k] for k in FAILURE_VALUES} == FAILURE_VALUES
    assert summary["failed"] == 1 and summary["ssim"] == pytest.approx(5 / 6)
    result = _evaluate("--reference", str(reference), "--predictions", str(prediction), "--out", str(tmp_path / "scores"))
    assert result.returncode == 0 and "FAILED S1 T2: non-finite" in result.stdout


def test_the_evaluation_image_refuses_a_nan_prediction(scored, tmp_path, capsys):
    from evaluation import container

    reference, prediction = scored
    _half_nan(volume_path(prediction, "S2", "Enhanced", "FLAIR"))
    status = container.main(["--input", str(prediction), "--ground-truth", str(reference), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert status == 1 and last.startswith("submission rejected: S2 FLAIR: ") and "NaN or infinite voxels" in last
    assert not (tmp_path / "out" / "metrics.json").exists()
