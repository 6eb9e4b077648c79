"""One broken subject never stops a multi-subject run (issue 13: 2): the others are written, the exit is 1,
and the summary lists every subject's status."""

import gzip
import hashlib
import re
import struct

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import files_under, run_process, ulf_enc_paths, write_case
from model.cli import main as cli
from model.execution import memory
from model.volumes.layouts import CONTRASTS

GOOD = ("GOOD001", "GOOD003")


def rewrite(path, change):
    image = sitk.ReadImage(str(path))
    values = change(sitk.GetArrayFromImage(image))
    changed = sitk.GetImageFromArray(values)
    changed.CopyInformation(image)
    sitk.WriteImage(changed, str(path))


def nan_voxel(values):
    values = values.astype(np.float32)
    values[1, 2, 3] = np.nan
    return values


def set_vox_offset(path, value):
    data = bytearray(gzip.decompress(path.read_bytes()))
    data[108:112] = struct.pack("<f", value)
    path.write_bytes(gzip.compress(bytes(data)))


def output_onto_input(tmp_path, paths):
    (tmp_path / "out" / "BAD002").mkdir(parents=True)
    (tmp_path / "out" / "BAD002" / "Enhanced").symlink_to(paths["T1"].parent)


def raise_in_case(error):
    def patch(tmp_path, paths, monkeypatch):
        real = cli.enhance_case

        def enhance_case(case, *args, **kwargs):
            if case.case_id == "BAD002":
                raise error
            return real(case, *args, **kwargs)

        monkeypatch.setattr(cli, "enhance_case", enhance_case)
    return patch


BREAKERS = {
    "NaN voxels in a NIfTI": lambda tmp_path, paths, mp: rewrite(paths["T2"], nan_voxel),
    "vox_offset NaN": lambda tmp_path, paths, mp: set_vox_offset(paths["FLAIR"], float("nan")),
    "values beyond float32": lambda tmp_path, paths, mp: rewrite(paths["T1"], lambda v: v.astype(np.float64) * 1e37),
    "truncated file": lambda tmp_path, paths, mp: paths["T1"].write_bytes(paths["T1"].read_bytes()[:300]),
    "0.01 mm spacing": lambda tmp_path, paths, mp: write_case(paths, spacing=(0.01, 0.01, 0.01)),
    "50 mm spacing (memory)": lambda tmp_path, paths, mp: (write_case(paths, spacing=(50.0, 50.0, 50.0)),
                                                           mp.setattr(memory, "available_bytes", lambda d: 8 * 2**30)),
    "a folder in the place of an output": lambda tmp_path, paths, mp:
        (tmp_path / "out" / "BAD002" / "Enhanced" / "BAD002_T2.nii.gz").mkdir(parents=True),
    "output folder linked onto the inputs": lambda tmp_path, paths, mp: output_onto_input(tmp_path, paths),
    "OSError": raise_in_case(OSError(5, "Input/output error")),
    "KeyError (a header field)": raise_in_case(KeyError("ITK_FileNotes")),
    "MemoryError": raise_in_case(MemoryError()),
}


@pytest.mark.parametrize("broken", BREAKERS)
def test_one_broken_subject_does_not_stop_the_others(tmp_path, caplog, monkeypatch, broken):
    subjects = {s: write_case(ulf_enc_paths(tmp_path / "in", s)) for s in ("GOOD001", "BAD002", "GOOD003")}
    BREAKERS[broken](tmp_path, subjects["BAD002"], monkeypatch)
    inputs_before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "in").rglob("*") if p.is_file()}
    assert run_process("--input", tmp_path / "in", "--output", tmp_path / "out") == 1
    written = [f for f in files_under(tmp_path / "out") if not f.startswith("BAD002/")]
    assert written == sorted(f"{s}/Enhanced/{s}_{c}.nii.gz" for s in GOOD for c in CONTRASTS)
    assert not [f for f in files_under(tmp_path / "out") if f.startswith("BAD002/")]
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in inputs_before} == inputs_before
    assert "2 of 3 cases enhanced, 0 skipped, 1 failed" in caplog.text
    for subject in GOOD:  # the summary table: subject, status, seconds, output folder
        assert re.search(rf"^{subject} +enhanced +\d+\.\d +\S+/{subject}/Enhanced$", "\n".join(r.getMessage() for r in caplog.records), re.MULTILINE)
    failed = [r.getMessage() for r in caplog.records if re.match(r"BAD002 +FAILED ", r.getMessage())]
    assert len(failed) == 1 and "\n" not in failed[0] and "Traceback" not in caplog.text


def test_an_unexpected_error_in_a_single_case_is_one_line_and_exit_1(tmp_path, caplog, monkeypatch):
    paths = write_case(ulf_enc_paths(tmp_path / "in", "BAD002"))
    raise_in_case(KeyError("ITK_FileNotes"))(tmp_path, paths, monkeypatch)
    assert run_process("--input", tmp_path / "in", "--output", tmp_path / "out") == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == ["BAD002 failed: KeyError: 'ITK_FileNotes' (run with --verbose for the details)"]
    assert "Traceback" not in caplog.text and files_under(tmp_path / "out") == []
