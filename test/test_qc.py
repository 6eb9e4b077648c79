"""QC reports (model/pipeline/qc.py, --qc DIR): a picture and a JSON record per case, an index.html that a real
browser renders."""

import json
import shutil
import subprocess

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import head_like, run_process, ulf_enc_paths, write_case
from model.volumes.layouts import CONTRASTS
from model.pipeline.qc import GAP, brain_centre, montage, orthogonal_slices

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def qc_run(tmp_path_factory, tiny_weights):
    """Two subjects enhanced (smoke preset, tiny networks) with --qc, and one that fails."""
    root = tmp_path_factory.mktemp("qc")
    for subject in ("SUB001", "SUB002", "BAD003"):
        write_case(ulf_enc_paths(root / "in", subject))
    (root / "in" / "BAD003" / "64mT" / "BAD003_T2.nii.gz").unlink()
    status = run_process("--input", root / "in", "--output", root / "out", "--qc", root / "qc", weights=tiny_weights,
                         mode="full")
    return root, status


def test_each_case_gets_a_picture_and_a_record(qc_run):
    root, status = qc_run
    assert status == 1  # BAD003 failed, the others went on
    assert sorted(p.name for p in (root / "qc").iterdir()) == ["SUB001.json", "SUB001.png", "SUB002.json",
                                                               "SUB002.png", "index.html"]
    record = json.loads((root / "qc" / "SUB001.json").read_text())
    assert record["settings"]["bridge_timestep"] == 2 and record["device"] == "cpu"
    assert set(record["seconds"]) == {"load", "sample", "write", "total"}
    assert record["seconds"]["total"] == pytest.approx(sum(v for k, v in record["seconds"].items() if k != "total"), abs=2e-3)
    # the sampler's change: the bridge at K = 2, then the smoke chain's levels 2 and 1
    assert [(s["step"], s["level"]) for s in record["sampler_change_per_step"]] == [("bridge", 2), ("refine", 2), ("refine", 1)]
    assert record["plan"]["levels"] == [2, 1] and record["plan"]["unet_windows"] > 0 < record["plan"]["bridge_windows"]
    assert all(v > 0 for s in record["sampler_change_per_step"] for v in s["rms_change"].values())
    for contrast in CONTRASTS:
        given = sitk.GetArrayFromImage(sitk.ReadImage(record["inputs"][contrast]))
        made = sitk.GetArrayFromImage(sitk.ReadImage(record["outputs"][contrast]))
        assert record["intensity"]["input"][contrast]["mean"] == pytest.approx(float(given.mean()), rel=1e-5)
        assert record["intensity"]["output"][contrast]["p99"] == pytest.approx(float(np.percentile(made, 99)), rel=1e-5)
    picture = sitk.GetArrayFromImage(sitk.ReadImage(str(root / "qc" / "SUB001.png")))
    assert picture.dtype == np.uint8 and picture.ndim == 2 and picture.max() == 255


def test_the_index_lists_every_case_of_the_run(qc_run):
    root, _ = qc_run
    page = (root / "qc" / "index.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "3 case(s)" in page
    for subject in ("SUB001", "SUB002"):
        assert f'<img src="./{subject}.png"' in page and f'<a href="./{subject}.json">' in page
    assert '<section id="BAD003">' in page and 'class="failed">FAILED ' in page


def test_the_montage_puts_input_left_and_output_right_through_the_centre():
    volumes = head_like(size=(30, 24, 12))
    doubled = {c: 2 * v for c, v in volumes.items()}
    picture = montage(volumes, doubled)
    height = max(t.shape[0] for t in orthogonal_slices(volumes["T1"], brain_centre(volumes["T1"])))
    width = max(t.shape[1] for t in orthogonal_slices(volumes["T1"], brain_centre(volumes["T1"])))
    assert picture.shape == (3 * (height + GAP) + GAP, 6 * (width + GAP) + 3 * GAP)
    half = picture.shape[1] // 2
    assert picture[:, half:].mean() > picture[:, :half].mean()  # the output is twice as bright, one grey scale
    assert brain_centre(volumes["T1"]) == pytest.approx((15, 12, 6), abs=1)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium)")
def test_a_headless_browser_renders_the_index_with_its_pictures(qc_run, tmp_path):
    root, _ = qc_run
    index = (root / "qc" / "index.html").as_uri()
    common = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              f"--user-data-dir={tmp_path / 'profile'}", "--allow-file-access-from-files"]
    dom = subprocess.run([*common, "--dump-dom", index], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count("<section") == 3 and '<img src="./SUB002.png"' in dom.stdout
    shots = {}
    for name, folder in (("with pictures", root / "qc"), ("pictures missing", tmp_path / "bare")):
        if name == "pictures missing":
            folder.mkdir()
            shutil.copy(root / "qc" / "index.html", folder / "index.html")
        shot = tmp_path / f"{name.replace(' ', '-')}.png"
        result = subprocess.run([*common, "--window-size=1000,1400", f"--screenshot={shot}", (folder / "index.html").as_uri()],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
        pixels = sitk.GetArrayFromImage(sitk.ReadImage(str(shot)))[..., :3].astype(int)
        shots[name] = int(np.all(np.abs(pixels - 128) <= 2, axis=-1).sum())  # the pictures' grey separators
    assert shots["with pictures"] > 1000 and shots["pictures missing"] < shots["with pictures"] / 10, shots


def test_a_qc_folder_that_cannot_be_written_is_found_before_computing(tmp_path, caplog):
    write_case(ulf_enc_paths(tmp_path / "in", "SUB001"))
    (tmp_path / "file").write_text("a file, not a folder")
    assert run_process("--input", tmp_path / "in", "--output", tmp_path / "out", "--qc", tmp_path / "file" / "qc") == 4
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and errors[0].startswith(f"--qc {tmp_path / 'file' / 'qc'}: cannot write there")
    assert not (tmp_path / "out").exists()
