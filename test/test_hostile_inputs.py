"""Inputs a hostile user can give (issue 13: 5-9): header-level checks, files read from elsewhere, option values."""

import contextlib
import gzip
import json
import os
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import files_under, grand_challenge_paths, make_image, run_process, write_case
from model.execution import memory
from model.errors import InputError
from model.volumes.layouts import CONTRASTS, discover_cases
from model.volumes.images import read_volume



def explicit(inputs, output_dir):
    return ["--t1", inputs["T1"], "--t2", inputs["T2"], "--flair", inputs["FLAIR"], "--output-dir", output_dir]


def nifti_with_nan(path: Path) -> None:
    values = np.random.default_rng(0).random((9, 8, 7)).astype(np.float32) + 1
    values[4, 3, 2] = np.nan
    sitk.WriteImage(make_image(values), str(path))


def test_nan_voxels_of_a_nifti_are_refused(tmp_path):
    nifti_with_nan(tmp_path / "v.nii.gz")
    with pytest.raises(InputError, match=r"v.nii.gz has 1 NaN or infinite voxels"):
        read_volume(tmp_path / "v.nii.gz", "T1")
    raw = tmp_path / "v.nii"
    raw.write_bytes(gzip.decompress((tmp_path / "v.nii.gz").read_bytes()))
    with pytest.raises(InputError, match=r"v.nii has 1 NaN or infinite voxels"):
        read_volume(raw, "T1")


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan"), -8.0])
def test_a_broken_vox_offset_is_named(tmp_path, value):
    nifti_with_nan(tmp_path / "v.nii.gz")
    header = bytearray(gzip.decompress((tmp_path / "v.nii.gz").read_bytes()))
    header[108:112] = struct.pack("<f", value)
    (tmp_path / "v.nii").write_bytes(bytes(header))
    with pytest.raises(InputError, match=r"vox_offset = .*; expected a finite byte offset"):
        read_volume(tmp_path / "v.nii", "T1")


# NIfTI-1 header fields (offset, struct format) that a hostile file can set to anything.
NIFTI_FIELDS = {"dim": (42, "<3h"), "datatype": (70, "<h"), "bitpix": (72, "<h"), "pixdim": (80, "<3f"),
                "vox_offset": (108, "<f"), "scl_slope": (112, "<f")}
floats = st.floats(width=32, allow_nan=True, allow_infinity=True)
nifti_changes = st.fixed_dictionaries({}, optional={
    "dim": st.tuples(*[st.integers(-3, 40)] * 3), "datatype": st.sampled_from([0, 2, 4, 8, 16, 64, 128, 256, 511, 2304]),
    "bitpix": st.integers(-8, 128), "pixdim": st.tuples(floats, floats, floats), "vox_offset": floats,
    "scl_slope": floats})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=nifti_changes)
def test_any_nifti_header_gives_a_volume_or_one_clear_error(tmp_path, changes):
    path = tmp_path / "v.nii"
    sitk.WriteImage(make_image(np.random.default_rng(0).random((9, 8, 7)).astype(np.float32) + 1), str(path))
    data = bytearray(path.read_bytes())
    for field, value in changes.items():
        offset, layout = NIFTI_FIELDS[field]
        struct.pack_into(layout, data, offset, *(value if isinstance(value, tuple) else (value,)))
    path.write_bytes(bytes(data))
    try:
        image = read_volume(path, "T1")
    except InputError as error:
        assert "T1: " in str(error) and str(path) in str(error) and "\n" not in str(error)
        return
    assert image.GetDimension() == 3 and np.all(np.isfinite(sitk.GetArrayViewFromImage(image)))


def test_tiny_spacing_is_named_not_called_constant(tmp_path, caplog):
    inputs = write_case({c: tmp_path / f"{c}.mha" for c in CONTRASTS}, spacing=(0.01, 0.01, 0.01))
    assert run_process(*explicit(inputs, tmp_path / "out")) == 2
    assert "spacing (0.01, 0.01, 0.01) mm" in caplog.text and "less than one voxel" in caplog.text
    assert "constant" not in caplog.text


def test_memory_is_estimated_from_the_header_before_any_voxel_is_read(tmp_path, caplog, monkeypatch):
    """50 mm spacing on a tiny file: resampling to 1 mm would allocate about 200 GB."""
    inputs = write_case({c: tmp_path / f"{c}.mha" for c in CONTRASTS}, spacing=(50.0, 50.0, 50.0))
    monkeypatch.setattr(memory, "available_bytes", lambda device: 8 * 2**30)

    def no_voxels(*args, **kwargs):
        raise AssertionError("voxels were read before the memory check")

    monkeypatch.setattr(sitk, "ReadImage", no_voxels)
    monkeypatch.setattr(sitk, "Resample", no_voxels)
    assert run_process(*explicit(inputs, tmp_path / "out")) == 2
    assert "a 1850x1450x650 volume needs about" in caplog.text and "only 8.0 GiB is available" in caplog.text


def metaimage_pointing_at(tmp_path: Path, data_file: str) -> Path:
    """A .mhd header whose voxels are taken from ``data_file``."""
    header = tmp_path / "in" / "T1.mhd"
    header.parent.mkdir(parents=True, exist_ok=True)
    header.write_text("ObjectType = Image\nNDims = 3\nDimSize = 4 4 4\nElementType = MET_UCHAR\n"
                      f"ElementSpacing = 1 1 1\nElementDataFile = {data_file}\n")
    return header


@pytest.mark.parametrize("data_file", ["ABSOLUTE", "../secret.raw", "link.raw", "LIST", "slice%03d.raw 1 4 1"])
def test_a_metaimage_cannot_read_a_file_outside_its_folder(tmp_path, data_file):
    secret = tmp_path / "secret.raw"
    secret.write_bytes(bytes(range(64)))
    if data_file == "ABSOLUTE":
        data_file = str(secret)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "link.raw").symlink_to(secret)
    header = metaimage_pointing_at(tmp_path, data_file)
    with pytest.raises(InputError, match=r"T1: .*T1.mhd .*(outside the header's folder|list or pattern)"):
        read_volume(header, "T1")


def test_a_metaimage_with_its_data_beside_it_is_read(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "T1.raw").write_bytes(bytes(range(1, 65)))
    image = read_volume(metaimage_pointing_at(tmp_path, "T1.raw"), "T1")
    assert image.GetSize() == (4, 4, 4) and sitk.GetArrayViewFromImage(image).max() == 64


@contextlib.contextmanager
def as_unprivileged_user():
    """Root reads every file whatever its mode: for the block, act as user nobody (effective uid), then back."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)


def test_a_file_without_read_permission_is_named_as_such():
    folder = Path(tempfile.mkdtemp(prefix="perm-"))  # not under pytest's 0700 folder, so nobody can reach it
    try:
        os.chmod(folder, 0o755)
        for name in ("v.mha", "v.nii.gz"):
            sitk.WriteImage(make_image(np.ones((4, 4, 4), np.float32)), str(folder / name))
            os.chmod(folder / name, 0o000)
            with as_unprivileged_user(), pytest.raises(InputError) as refused:
                read_volume(folder / name, "T1")
            assert str(refused.value).startswith(f"T1: cannot read {folder / name}: permission denied")
    finally:
        shutil.rmtree(folder)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                           max_leaves=8)
interfaces = st.lists(st.fixed_dictionaries({"interface": st.fixed_dictionaries({}, optional={
    "slug": st.sampled_from(["low-field-t1-brain-mri"]) | json_values,
    "relative_path": st.sampled_from(["images/low-field-t1-brain-mri", "../../etc", "/etc", ""]) | json_values})}),
    max_size=3)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=json_values | interfaces)
def test_any_inputs_json_gives_cases_or_one_clear_error(tmp_path, content):
    write_case(grand_challenge_paths(tmp_path / "in"))
    (tmp_path / "in" / "inputs.json").write_text(json.dumps(content))
    try:
        cases = discover_cases(tmp_path / "in", tmp_path / "out")
    except InputError as error:
        assert "\n" not in str(error)
        return
    for path in cases[0].inputs.values():
        assert (tmp_path / "in").resolve() in path.resolve().parents


@pytest.mark.parametrize("content, message", [
    ({"interface": {}}, "holds a JSON dict"),
    (["images/low-field-t1-brain-mri"], "entry 0 is \"images/low-field-t1-brain-mri\""),
    ([{"interface": {"slug": "low-field-t1-brain-mri", "relative_path": "../../etc/passwd"}}], "leaves"),
])
def test_malformed_inputs_json_is_one_line_and_exit_2(tmp_path, caplog, content, message):
    write_case(grand_challenge_paths(tmp_path / "in"))
    (tmp_path / "in" / "inputs.json").write_text(json.dumps(content))
    assert run_process("--input", tmp_path / "in", "--output", tmp_path / "out") == 2
    assert message in caplog.text and "inputs.json" in caplog.text and "Traceback" not in caplog.text


def test_an_input_named_dot_dot_mha_is_refused_up_front(tmp_path, caplog):
    paths = write_case(grand_challenge_paths(tmp_path / "in"))
    paths["T2"].rename(paths["T2"].with_name("..mha"))
    assert run_process("--input", tmp_path / "in", "--output", tmp_path / "out") == 2
    assert "T2: the file name '..mha' has no usable stem" in caplog.text and files_under(tmp_path / "out") == []


@pytest.mark.parametrize("seed", ["-1", str(2**64)])
def test_a_seed_out_of_range_names_the_option(tmp_path, caplog, seed):
    inputs = write_case({c: tmp_path / f"{c}.mha" for c in CONTRASTS})
    assert run_process(*explicit(inputs, tmp_path / "out"), "--seed", seed) == 2
    assert f"--seed must be in 0..2**64-1, got {seed}" in caplog.text


def test_a_window_the_bridge_cannot_take_is_refused_before_reading_anything(tmp_path, caplog, tiny_weights):
    missing = {c: tmp_path / f"missing_{c}.mha" for c in CONTRASTS}
    from model.cli.main import main

    code = main([*map(str, explicit(missing, tmp_path / "out")), "--weights", str(tiny_weights), "--preset", "smoke",
                 "--window", "40", "40", "40", "--quiet"])
    assert code == 2 and "--window 40 40 40: the bridge (Swin UNETR) needs every window size divisible by 32" in caplog.text
    assert "missing_" not in caplog.text
