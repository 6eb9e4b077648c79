"""The organisers' evaluation container's program (evaluation/container.py): Grand Challenge and local
submissions scored like ``python -m evaluation``; bad submissions rejected in one line, exit 1."""

import json
import shutil

import pytest

from evaluation import container
from evaluation.scoring import score_roots


@pytest.fixture(scope="module")
def expected(evaluation_submissions):
    """What ``python -m evaluation`` gives for the same predictions (the 64 mT volumes as the prediction)."""
    work, _ = evaluation_submissions
    rows, summary = score_roots(work / "eval_reference", work / "eval_reference", folder="64mT")
    return rows, summary


def run(work, submission, out):
    return container.main(["--input", str(work / submission), "--ground-truth", str(work / "eval_reference"),
                           "--output", str(out)])


@pytest.mark.parametrize("submission, layout", [("eval_ulf", "ulf-enc"), ("eval_gc", "grand-challenge")])
def test_a_submission_is_scored_like_the_evaluation_command(evaluation_submissions, expected, tmp_path, submission,
                                                           layout, capsys):
    work, subjects = evaluation_submissions
    assert run(work, submission, tmp_path) == 0
    document = json.loads((tmp_path / "metrics.json").read_text())
    rows, summary = expected
    assert document["aggregates"]["layout"] == layout
    for key in ("ssim", "psnr", "mae", "nmse", "score", "psnr_masked_standard", "ssim_unmasked", "psnr_standard"):
        assert document["aggregates"][key] == pytest.approx(summary[key], abs=1e-12)
        assert document["aggregates"]["per_contrast"]["T2"][key] == pytest.approx(summary["per_contrast"]["T2"][key])
    assert [r["case"] for r in document["results"]] == [f"{s}_{c}" for s in subjects for c in ("T1", "T2", "FLAIR")]
    assert document["results"][0]["psnr_masked_standard"] == pytest.approx(rows[0]["psnr_masked_standard"])
    assert "score " in capsys.readouterr().out


def test_a_duplicated_volume_is_rejected_by_evalutils(evaluation_submissions, tmp_path, capsys):
    work, subjects = evaluation_submissions
    assert run(work, "eval_duplicate", tmp_path) == 1
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message == ("submission rejected: volumes: The images are not unique, please submit a unique image for "
                       f"each case. (identical: {subjects[-1]} T1 = {subjects[-1]} T2)")
    assert not (tmp_path / "metrics.json").exists()


def test_missing_extra_and_misplaced_volumes_are_all_named(evaluation_submissions, tmp_path, capsys):
    work, subjects = evaluation_submissions
    submission = tmp_path / "submission"
    shutil.copytree(work / "eval_ulf", submission)
    (submission / subjects[0] / "Enhanced" / f"{subjects[0]}_FLAIR.nii.gz").unlink()
    shutil.copytree(submission / subjects[1], submission / "SIM0999")
    for path in (submission / "SIM0999").rglob("*.nii.gz"):
        path.rename(path.with_name(path.name.replace(subjects[1], "SIM0999")))
    (submission / subjects[1] / "Enhanced" / f"{subjects[1]}_T1.nii.gz").write_bytes(b"not an image")
    assert container.main(["--input", str(submission), "--ground-truth", str(work / "eval_reference"),
                           "--output", str(tmp_path / "out")]) == 1
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.startswith("submission rejected: SIM0999: not a reference subject (too many predictions); ")
    assert f"{subjects[0]} FLAIR: no prediction at {submission}" in message
    assert f"{subjects[1]} T1: {submission / subjects[1] / 'Enhanced' / (subjects[1] + '_T1.nii.gz')} is not a readable image" in message
    assert f"FLAIR: We expected to find 2, but we found 1. Please correct the number of predictions. (missing: {subjects[0]})" in message


def test_a_volume_off_the_reference_grid_is_rejected(evaluation_submissions, tmp_path, capsys):
    import SimpleITK as sitk

    work, subjects = evaluation_submissions
    submission = tmp_path / "submission"
    shutil.copytree(work / "eval_ulf", submission)
    path = submission / subjects[0] / "Enhanced" / f"{subjects[0]}_T2.nii.gz"
    image = sitk.ReadImage(str(path))
    image.SetOrigin(tuple(o + 1.5 for o in image.GetOrigin()))
    sitk.WriteImage(image, str(path))
    assert container.main(["--input", str(submission), "--ground-truth", str(work / "eval_reference"),
                           "--output", str(tmp_path / "out")]) == 1
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"{subjects[0]} T2: {path} is not on the reference's grid (origin " in message


def test_an_unusable_ground_truth_is_exit_2(tmp_path, capsys):
    assert container.main(["--input", str(tmp_path), "--ground-truth", str(tmp_path / "none"),
                           "--output", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == f"error: ground truth {tmp_path / 'none'} is not a folder"
