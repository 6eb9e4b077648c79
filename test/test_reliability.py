"""The failure catalogue (issue 7): each bad input gives a specific message, a non-zero exit and no output."""

import gzip
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from conftest import TEST_WINDOW, files_under, grand_challenge_paths, make_image, ulf_enc_paths, write_case
from model.execution import memory
from model.cli.main import main
from model.pipeline.enhancer import Enhancer
from model.errors import DeviceError
from model.volumes.layouts import CONTRASTS
from model.config.settings import preset
from model.execution.windows import plan_windows

REPO = Path(__file__).resolve().parent.parent


def run_files(tmp_path, inputs, weights, *extra):
    args = ["--t1", inputs["T1"], "--t2", inputs["T2"], "--flair", inputs["FLAIR"], "--output-dir", tmp_path / "out",
            "--weights", weights, "--preset", "smoke", "--window", *TEST_WINDOW, "--quiet", *extra]
    return main([str(a) for a in args])


def outputs(tmp_path):
    """The file names below ``tmp_path/out`` (hidden ones included), without the run records (test_run_record.py)."""
    return sorted(Path(name).name for name in files_under(tmp_path / "out"))


def case_files(tmp_path, **geometry):
    return write_case({c: tmp_path / f"in_{c}.mha" for c in CONTRASTS}, **geometry)


def test_missing_contrast_in_one_subject_does_not_stop_the_others(tmp_path, tiny_weights, caplog):
    write_case(ulf_enc_paths(tmp_path / "in", "GOOD001"))
    broken = write_case(ulf_enc_paths(tmp_path / "in", "BAD002"))
    broken["FLAIR"].unlink()
    code = main([str(a) for a in ["--input", tmp_path / "in", "--output", tmp_path / "out", "--weights", tiny_weights,
                                  "--preset", "smoke", "--window", *TEST_WINDOW, "--quiet"]])
    assert code == 1
    assert re.search(r"^BAD002 +FAILED BAD002 FLAIR: file not found", "\n".join(r.getMessage() for r in caplog.records),
                     re.MULTILINE)  # its row of the summary table
    assert (tmp_path / "out" / "GOOD001" / "Enhanced" / "GOOD001_FLAIR.nii.gz").is_file()
    assert not (tmp_path / "out" / "BAD002").exists()


def test_socket_folder_with_two_files(tmp_path, tiny_weights, caplog):
    paths = write_case(grand_challenge_paths(tmp_path / "in"))
    (paths["T2"].parent / "second.mha").write_bytes(paths["T2"].read_bytes())
    code = main([str(a) for a in ["--input", tmp_path / "in", "--output", tmp_path / "out", "--weights", tiny_weights]])
    assert code == 2 and "T2: 2 candidate files" in caplog.text and "expected exactly one" in caplog.text
    assert outputs(tmp_path) == []


@pytest.mark.parametrize("change, what", [
    ({"spacing": (1.0, 1.0, 1.5)}, "spacing"),
    ({"origin": (0.0, 0.0, 0.0)}, "origin"),
    ({"direction": (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0)}, "direction"),
])
def test_contrasts_on_different_grids(tmp_path, tiny_weights, caplog, change, what):
    inputs = case_files(tmp_path)
    write_case({"T1": tmp_path / "x1.mha", "T2": tmp_path / "x2.mha", "FLAIR": inputs["FLAIR"]}, **change)
    assert run_files(tmp_path, inputs, tiny_weights) == 2
    assert f"FLAIR differs from T1 in {what}" in caplog.text and outputs(tmp_path) == []


def test_contrasts_of_different_size(tmp_path, tiny_weights, caplog):
    inputs = case_files(tmp_path)
    sitk.WriteImage(make_image(np.ones((20, 20, 10), np.float32)), str(inputs["T2"]))
    assert run_files(tmp_path, inputs, tiny_weights) == 2
    assert "T2 differs from T1 in size" in caplog.text


@pytest.mark.parametrize("image, message", [
    (sitk.Image(16, 16, sitk.sitkFloat32), "is a 2D image"),
    (sitk.Image([8, 8, 8, 2], sitk.sitkFloat32), "is a 4D image"),
    (sitk.Image([8, 8, 8], sitk.sitkVectorFloat32, 3), "3 components per voxel"),
])
def test_wrong_dimensions(tmp_path, tiny_weights, caplog, image, message):
    inputs = case_files(tmp_path)
    sitk.WriteImage(image, str(inputs["T1"]))
    assert run_files(tmp_path, inputs, tiny_weights) == 2
    assert message in caplog.text and "in_T1.mha" in caplog.text


@pytest.mark.parametrize("values, message", [
    (np.float32(np.nan), "NaN or infinite voxels"),
    (np.float32(np.inf), "NaN or infinite voxels"),
    ("constant", "constant (7 everywhere)"),
    ("zeros", "constant (0 everywhere)"),
])
def test_bad_intensities(tmp_path, tiny_weights, caplog, values, message):
    inputs = case_files(tmp_path)
    image = sitk.ReadImage(str(inputs["T2"]))
    array = sitk.GetArrayFromImage(image)
    if values == "constant":
        array[:] = 7
    elif values == "zeros":
        array[:] = 0
    else:
        array[3, 4, 5] = values
    bad = sitk.GetImageFromArray(array)
    bad.CopyInformation(image)
    sitk.WriteImage(bad, str(inputs["T2"]))
    assert run_files(tmp_path, inputs, tiny_weights) == 2
    assert message in caplog.text and "T2" in caplog.text and outputs(tmp_path) == []


def test_integer_and_negative_intensities_work(tmp_path, tiny_weights):
    inputs = case_files(tmp_path)
    for path in inputs.values():
        image = sitk.ReadImage(str(path))
        shifted = sitk.Cast(sitk.ShiftScale(image, -60.0), sitk.sitkInt16)
        sitk.WriteImage(shifted, str(path))
    assert run_files(tmp_path, inputs, tiny_weights) == 0
    assert outputs(tmp_path) == ["in_FLAIR.mha", "in_T1.mha", "in_T2.mha"]


def test_truncated_and_mislabelled_files(tmp_path, tiny_weights, caplog):
    inputs = write_case({c: tmp_path / f"in_{c}.nii.gz" for c in CONTRASTS})
    data = inputs["T1"].read_bytes()
    inputs["T1"].write_bytes(data[: len(data) // 3])
    assert run_files(tmp_path, inputs, tiny_weights) == 2  # SimpleITK alone would zero-fill it silently
    assert "truncated" in caplog.text and "in_T1.nii.gz" in caplog.text
    caplog.clear()
    inputs = write_case({c: tmp_path / f"ok_{c}.nii.gz" for c in CONTRASTS})
    garbage = tmp_path / "ok_T2.mha"
    garbage.write_bytes(gzip.compress(b"not an image"))  # gzip data under a MetaImage name
    assert run_files(tmp_path, {**inputs, "T2": garbage}, tiny_weights) == 2
    assert "cannot read" in caplog.text and "ok_T2.mha" in caplog.text
    caplog.clear()
    text = tmp_path / "ok_T2.txt"
    text.write_text("hello")
    assert run_files(tmp_path, {**inputs, "T2": text}, tiny_weights) == 2
    assert "extension '.txt'" in caplog.text and outputs(tmp_path) == []


def test_oversized_volume_is_refused_with_the_estimate(tmp_path, tiny_weights, caplog, monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda device: 50 * 2**20)
    inputs = case_files(tmp_path)
    assert run_files(tmp_path, inputs, tiny_weights) == 2
    assert "GiB on cpu but only 0.0 GiB is available" in caplog.text and outputs(tmp_path) == []
    big = memory.estimate_bytes((512, 512, 400), 3, (128, 128, 32), 4)
    one_copy = 3 * 512 * 512 * 400 * 4  # the float32 three-channel volume
    assert 10 * one_copy < big < 20 * 2**30


def test_unwritable_output_is_found_before_computing(tmp_path, tiny_weights, caplog):
    inputs = case_files(tmp_path)
    (tmp_path / "out").write_text("a file where the output folder should be")
    assert run_files(tmp_path, inputs, tiny_weights) == 4
    assert "output folder" in caplog.text and "not writable" in caplog.text


@pytest.mark.parametrize("damage, message", [
    ("delete", "no weights manifest"),
    ("truncate", "fail their checksum"),
])
def test_broken_weights(tmp_path, tiny_weights, caplog, damage, message):
    import shutil
    weights = tmp_path / "weights"
    shutil.copytree(tiny_weights, weights)
    if damage == "delete":
        (weights / "manifest.json").unlink()
    else:
        data = (weights / "bridge.pt").read_bytes()
        (weights / "bridge.pt").write_bytes(data[:100])
    assert run_files(tmp_path, case_files(tmp_path), weights) == 3
    assert message in caplog.text and outputs(tmp_path) == []


def test_cuda_asked_for_but_absent(tmp_path, tiny_weights, caplog, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert run_files(tmp_path, case_files(tmp_path), tiny_weights, "--device", "cuda") == 5
    assert "no CUDA device is available" in caplog.text


def test_out_of_memory_retries_with_fewer_windows(tiny_weights, caplog):
    enhancer = Enhancer(preset("smoke").updated(windows_per_batch=8), tiny_weights, torch.device("cpu"))
    sizes = []

    def network(batch):
        sizes.append(batch.shape[0])
        if batch.shape[0] > 2:
            raise torch.OutOfMemoryError("fake")
        return batch

    x = torch.randn(1, 3, 40, 40, 12)
    result = enhancer.engine.evaluate(network, x, plan_windows(x.shape[2:], (16, 16, 8), 0.5))
    torch.testing.assert_close(result, x)
    assert enhancer.engine.windows_per_batch == 2 and sizes[:2] == [8, 4]
    assert "retrying with 4 windows per batch" in caplog.text and "retrying with 2 windows" in caplog.text


def test_host_allocation_failure_is_an_out_of_memory_error(tiny_weights):
    """The CPU allocator raises a plain RuntimeError; it must take the retry path, then a clear DeviceError."""
    enhancer = Enhancer(preset("smoke").updated(windows_per_batch=2), tiny_weights, torch.device("cpu"))

    def network(batch):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] . DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 68719476736 bytes. Error code 12 (Cannot allocate memory)")

    x = torch.randn(1, 3, 40, 40, 12)
    with pytest.raises(DeviceError, match="out of memory on cpu even with one"):
        enhancer.engine.evaluate(network, x, plan_windows(x.shape[2:], (16, 16, 8), 0.5))
    assert enhancer.engine.windows_per_batch == 1

    def broken(batch):
        raise RuntimeError("shape mismatch")  # any other error is not mistaken for memory

    with pytest.raises(RuntimeError, match="shape mismatch"):
        enhancer.engine.evaluate(broken, x, plan_windows(x.shape[2:], (16, 16, 8), 0.5))


def test_sigterm_mid_run_leaves_no_partial_output(tmp_path, tiny_weights):
    inputs = case_files(tmp_path)
    args = [sys.executable, str(REPO / "process.py"), "--t1", inputs["T1"], "--t2", inputs["T2"], "--flair",
            inputs["FLAIR"], "--output-dir", tmp_path / "out", "--weights", tiny_weights, "--preset", "paper", "--bridge-timestep", "500",
            "--refine", "1", "--overlap", "0", "--window", *TEST_WINDOW, "--verbose"]
    process = subprocess.Popen([str(a) for a in args], stderr=subprocess.PIPE, text=True, cwd=REPO)
    for line in process.stderr:  # wait until the sampler is running
        if "level 2/500" in line:
            break
    process.send_signal(signal.SIGTERM)
    rest = process.communicate(timeout=60)[1]
    assert process.returncode == 130 and "interrupted" in rest
    assert outputs(tmp_path) == []  # not even hidden partial files
