"""Writing simulated subjects: the ULF-EnC layout, one grid for all files, and the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from model.volumes.layouts import CONTRASTS, mask_path, volume_path
from simulation import generate_subject, write_subject

ROOT = Path(__file__).resolve().parent.parent


def test_written_files_share_one_grid_and_round_trip(tmp_path: Path):
    """3T, 64mT and the mask land where the challenge puts them, on one grid, with the in-memory values."""
    subject = generate_subject(5, shape_scale=0.4)
    write_subject(tmp_path, "SIM0005", subject)
    files = [volume_path(tmp_path, "SIM0005", field, c) for field in ("3T", "64mT") for c in CONTRASTS]
    files.append(mask_path(tmp_path, "SIM0005"))
    images = [sitk.ReadImage(str(f)) for f in files]
    for image in images:
        assert image.GetSize() == subject.mask.shape
        assert np.allclose(image.GetSpacing(), subject.spacing)
        assert np.allclose(image.GetOrigin(), subject.origin)
        assert np.allclose(image.GetDirection(), subject.direction)
    high_t2 = sitk.GetArrayFromImage(images[1]).transpose(2, 1, 0)
    assert np.array_equal(high_t2, subject.high[1])
    low_flair = sitk.GetArrayFromImage(images[5]).transpose(2, 1, 0)
    assert np.array_equal(low_flair, subject.low[2])
    mask = sitk.GetArrayFromImage(images[6]).transpose(2, 1, 0)
    assert mask.dtype == np.uint8 and np.array_equal(mask, subject.mask)
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file() and p.name.startswith(".")]
    assert leftovers == []


def _run(*arguments: str) -> subprocess.CompletedProcess:
    """Run ``python -m simulation`` from the repository root."""
    return subprocess.run([sys.executable, "-m", "simulation", *arguments], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_command_line_writes_subjects_manifest_and_montage(tmp_path: Path):
    """--first-id 3 writes SIM0003 in the layout, records its seed, and draws the montage; evaluation then reads it."""
    out, montage = tmp_path / "data", tmp_path / "montage.png"
    result = _run("--out", str(out), "--subjects", "1", "--seed", "4", "--first-id", "3", "--shape-scale", "0.4",
                  "--montage", str(montage), "--no-progress")
    assert result.returncode == 0, result.stderr
    for field in ("3T", "64mT"):
        for contrast in CONTRASTS:
            assert volume_path(out, "SIM0003", field, contrast).is_file()
    assert mask_path(out, "SIM0003").is_file()
    assert montage.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    manifest = json.loads((out / "simulation.json").read_text())
    assert manifest["subjects"]["SIM0003"]["base_seed"] == 4
    scored = subprocess.run([sys.executable, "-m", "evaluation", "--reference", str(out), "--predictions", str(out),
                             "--prediction-folder", "64mT", "--no-progress"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert scored.returncode == 0, scored.stderr
    assert "3 cases, 0 failed" in scored.stdout


def test_same_subject_whatever_the_batch(tmp_path: Path):
    """Subject 2 of seed 9 is the same whether made alone (--first-id 2) or in a batch from 1."""
    from simulation.cli import main
    from simulation.dataset import subject_seed

    assert subject_seed(9, 2) != subject_seed(9, 3) and subject_seed(9, 2) != subject_seed(10, 2)
    batch, alone = tmp_path / "batch", tmp_path / "alone"
    common = ["--seed", "9", "--shape-scale", "0.4", "--no-progress"]
    assert main(["--out", str(batch), "--subjects", "2", *common]) == 0
    assert main(["--out", str(alone), "--subjects", "1", "--first-id", "2", *common]) == 0
    paths = [volume_path(root, "SIM0002", "64mT", "FLAIR") for root in (batch, alone)]
    made_in_batch, made_alone = (sitk.GetArrayFromImage(sitk.ReadImage(str(p))) for p in paths)
    assert np.array_equal(made_in_batch, made_alone)
    manifest = json.loads((batch / "simulation.json").read_text())
    assert sorted(manifest["subjects"]) == ["SIM0001", "SIM0002"]


def test_command_line_bad_arguments_are_one_line(tmp_path: Path):
    """--subjects 0 and an --out that is a file: exit status 2, one 'error:' line, no traceback."""
    file = tmp_path / "file"
    file.write_text("x")
    for arguments in (("--out", str(tmp_path), "--subjects", "0", "--seed", "1"),
                      ("--out", str(file), "--subjects", "1", "--seed", "1")):
        result = _run(*arguments)
        assert result.returncode == 2
        assert result.stderr.startswith("error:") and result.stderr.strip().count("\n") == 0
        assert "Traceback" not in result.stderr
