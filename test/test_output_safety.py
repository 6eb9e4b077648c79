"""Outputs never land on an input, never two on one file, never half, never non-finite (issue 13: 1, 3, 4)."""

import hashlib
import os
import signal

import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import files_under, grand_challenge_paths, make_image, run_process, write_case
from model.volumes import atomic as commit_module
from model.cli.main import raise_on_termination
from model.volumes.atomic import commit, partial_path, remove_stale_partials
from model.errors import OutputError, ResultError
from model.volumes.layouts import CONTRASTS, Case
from model.pipeline.output_paths import plan_outputs
from model.volumes.images import write_volumes


def digests(paths):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def explicit(inputs, output_dir):
    return ["--t1", inputs["T1"], "--t2", inputs["T2"], "--flair", inputs["FLAIR"], "--output-dir", output_dir]


def onto_inputs(tmp_path, inputs):
    """Output folders that all end up at the inputs' files."""
    folder = inputs["T1"].parent
    (tmp_path / "sub").mkdir()
    (tmp_path / "link").symlink_to(folder)
    linked = tmp_path / "files-linked"
    linked.mkdir()
    for path in inputs.values():
        (linked / path.name).symlink_to(path)
    hard = tmp_path / "hard"
    hard.mkdir()
    for path in inputs.values():
        os.link(path, hard / path.name)
    return {"same folder": folder, "dot-dot": tmp_path / "sub" / ".." / folder.name, "symlinked folder": tmp_path / "link",
            "symlinked files": linked, "hard links": hard}


@pytest.mark.parametrize("how", ["same folder", "dot-dot", "symlinked folder", "symlinked files", "hard links"])
def test_an_output_onto_an_input_is_refused_before_computing(tmp_path, caplog, how):
    inputs = write_case({c: tmp_path / "in" / f"{c}.mha" for c in CONTRASTS})
    before = digests(inputs.values())
    output_dir = onto_inputs(tmp_path, inputs)[how]
    assert run_process(*explicit(inputs, output_dir)) == 2
    assert "would overwrite the" in caplog.text and "input" in caplog.text and "--output-dir" in caplog.text
    assert digests(inputs.values()) == before
    assert sorted(os.listdir(inputs["T1"].parent)) == ["FLAIR.mha", "T1.mha", "T2.mha"]


def test_two_outputs_onto_one_file_are_refused(tmp_path, caplog, monkeypatch):
    write_case(grand_challenge_paths(tmp_path / "in"))
    monkeypatch.setenv("ULF_OUTPUT_SOCKET_T2", "enhanced-t1-brain-mri")
    assert run_process("--input", tmp_path / "in", "--output", tmp_path / "out") == 2
    assert "ULF_OUTPUT_SOCKET_T1 and ULF_OUTPUT_SOCKET_T2 both name the socket" in caplog.text
    assert files_under(tmp_path / "out") == []


def test_outputs_of_two_cases_onto_one_file_are_refused(tmp_path):
    """Two subjects whose output folders are one folder through a link: the second is refused, the first kept."""
    (tmp_path / "out" / "A").mkdir(parents=True)
    (tmp_path / "out" / "B").symlink_to(tmp_path / "out" / "A")
    cases = [Case(s, {c: tmp_path / s / f"{c}.mha" for c in CONTRASTS},
                  {c: tmp_path / "out" / s / f"{c}.mha" for c in CONTRASTS}) for s in ("A", "B")]
    refused = plan_outputs(cases)
    assert list(refused) == ["B"] and refused["B"].exit_code == 2 and "are one file" in str(refused["B"])


def test_a_folder_in_the_place_of_an_output_is_found_before_computing(tmp_path, caplog):
    inputs = write_case({c: tmp_path / "in" / f"{c}.mha" for c in CONTRASTS})
    (tmp_path / "out" / "T2.mha").mkdir(parents=True)
    assert run_process(*explicit(inputs, tmp_path / "out")) == 4
    assert "T2 output" in caplog.text and "exists and is a folder" in caplog.text
    assert "loaded and normalised" not in caplog.text
    assert files_under(tmp_path / "out") == []  # before: T1 was renamed into place, then T2 failed


def _three_partials(folder):
    """Finished temporary files of the three contrasts, by their final path."""
    partials = {}
    for contrast in CONTRASTS:
        target = folder / f"{contrast}.mha"
        partials[target] = partial_path(target, ".mha")
        partials[target].write_text(contrast)
    return partials


def test_a_signal_during_the_commit_waits_until_all_three_are_in_place(tmp_path, monkeypatch):
    partials = _three_partials(tmp_path)
    real_replace = os.replace

    def replace_then_signal(source, target):
        real_replace(source, target)
        if target == tmp_path / "T1.mha":
            os.kill(os.getpid(), signal.SIGTERM)  # arrives between the first and the second rename

    monkeypatch.setattr(commit_module.os, "replace", replace_then_signal)
    previous = signal.signal(signal.SIGTERM, raise_on_termination)
    try:
        with pytest.raises(KeyboardInterrupt):
            commit(partials)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["FLAIR.mha", "T1.mha", "T2.mha"]


def test_a_failed_rename_rolls_the_commit_back(tmp_path, monkeypatch):
    partials = _three_partials(tmp_path)
    real_replace = os.replace

    def fail_on_flair(source, target):
        if str(target).endswith("FLAIR.mha"):
            raise PermissionError(13, "Permission denied")
        real_replace(source, target)

    monkeypatch.setattr(commit_module.os, "replace", fail_on_flair)
    with pytest.raises(OutputError, match="FLAIR.mha in place: Permission denied; none of this case's outputs were kept"):
        commit(partials)
    assert not any((tmp_path / f"{c}.mha").exists() for c in CONTRASTS)


def test_stale_temporaries_of_a_killed_run_are_removed_and_nothing_else(tmp_path):
    dead = 2**31 - 1  # above any pid_max: no such process
    stale = [f".ulf-partial-{dead}-0123456789ab.mha", f".ulf-partial-{os.getpid()}-0123456789ab.nii.gz"]
    kept = [f".ulf-partial-{os.getppid()}-0123456789ab.mha",  # a live process may be writing it
            ".ulf-partial-notes.mha", "T1.mha", ".hidden.partial.txt", f".T1.partial-{dead}.mha"]  # not ours
    for name in stale + kept:
        (tmp_path / name).write_text("x")
    assert sorted(p.name for p in remove_stale_partials(tmp_path)) == sorted(stale)
    assert sorted(os.listdir(tmp_path)) == sorted(kept)


def test_a_run_removes_stale_temporaries_from_its_output_folder(tmp_path):
    inputs = write_case({c: tmp_path / "in" / f"{c}.mha" for c in CONTRASTS})
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / ".ulf-partial-2147483647-0123456789ab.mha").write_text("left by a killed run")
    assert run_process(*explicit(inputs, tmp_path / "out")) == 0
    assert files_under(tmp_path / "out") == ["FLAIR.mha", "T1.mha", "T2.mha"]


def test_a_non_finite_result_is_never_written(tmp_path):
    good = make_image(np.ones((4, 5, 6), np.float32))
    bad_values = np.ones((4, 5, 6), np.float32)
    bad_values[1, 2, 3] = np.nan
    with pytest.raises(ResultError, match="1 NaN or infinite voxels; nothing of this case was written"):
        write_volumes({tmp_path / "a.mha": good, tmp_path / "b.mha": make_image(bad_values)})
    assert files_under(tmp_path) == []


def test_finite_float64_beyond_float32_is_refused_not_written_as_nan(tmp_path, caplog):
    inputs = write_case({c: tmp_path / "in" / f"{c}.nrrd" for c in CONTRASTS}, dtype=np.float64)
    image = sitk.ReadImage(str(inputs["T2"]))
    values = sitk.GetArrayFromImage(image)
    values[2:5, 3:6, 4:9] = 1e39  # finite in float64, infinite in float32
    huge = sitk.GetImageFromArray(values)
    huge.CopyInformation(image)
    sitk.WriteImage(huge, str(inputs["T2"]))
    assert run_process(*explicit(inputs, tmp_path / "out")) == 2
    assert "T2" in caplog.text and "beyond the float32 range" in caplog.text and "T2.nrrd" in caplog.text
    assert files_under(tmp_path / "out") == []


names = st.text(st.characters(codec="utf-8", exclude_characters="/\x00", exclude_categories=("Cs",)), min_size=1,
                max_size=250).filter(lambda n: len(n.encode()) <= 250 and n not in (".", ".."))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=names)
@example(name="x" * 246)  # 250 bytes with ".mha": the old hidden temporary name went past 255
@example(name=".")  # "..mha"
@example(name=" spaced and ünïcode ")
def test_any_file_name_gives_three_outputs_of_that_name(tmp_path_factory, name):
    folder = tmp_path_factory.mktemp("names")
    inputs = write_case({c: folder / c / f"{name}.mha" for c in CONTRASTS})
    code = run_process("--t1", inputs["T1"], "--t2", inputs["T2"], "--flair", inputs["FLAIR"], "--output-dir",
                       folder / "out", "--t1", inputs["T1"])
    assert code == 2  # the three inputs share a name: refused, since the outputs keep the input names
    renamed = {c: p.rename(p.with_name(f"{c}{name}.mha")) or p.with_name(f"{c}{name}.mha") for c, p in inputs.items()}
    assert run_process(*explicit(renamed, folder / "out")) == 0
    assert files_under(folder / "out") == sorted(p.name for p in renamed.values())


def test_explicit_inputs_named_dot_dot_mha_are_processed(tmp_path):
    names = {"T1": "..mha", "T2": "...mha", "FLAIR": ".hidden.mha"}
    inputs = write_case({c: tmp_path / "in" / names[c] for c in CONTRASTS})
    assert run_process(*explicit(inputs, tmp_path / "out")) == 0
    assert files_under(tmp_path / "out") == sorted(names.values())
