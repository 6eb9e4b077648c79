"""The organisers' evaluation container's program (evaluation/container.py): Grand Challenge and local
submissions scored like ``python -m evaluation``; the platform's aggregates format; subjects scored in parallel up
to GRAND_CHALLENGE_MAX_WORKERS with the same metrics.json as one; bad submissions rejected in one line, exit 1."""

import json
import shutil

import numpy as np
import pytest

from evaluation import container, scoring
from evaluation.metrics import METRIC_KEYS
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
    assert document["layout"] == layout
    for key in ("ssim", "psnr", "mae", "nmse", "score", "psnr_masked_standard", "ssim_unmasked", "psnr_standard"):
        assert document["aggregates"][key]["mean"] == pytest.approx(summary[key], abs=1e-12)
        assert document["per_contrast"]["T2"][key]["mean"] == pytest.approx(summary["per_contrast"]["T2"][key])
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


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def test_aggregates_are_mean_std_and_count_of_the_per_case_values(evaluation_submissions, tmp_path):
    """``aggregates``: per metric exactly ``{"mean", "std", "count"}``, numbers only, equal to numpy's mean and
    std (ddof 0) and the count of the per-case values in ``results`` (the score's mean is the final score of the
    means, equal to the mean of the per-case scores up to rounding); ``per_contrast`` the same per contrast; the
    descriptions are outside ``aggregates``."""
    work, subjects = evaluation_submissions
    assert run(work, "eval_gc", tmp_path) == 0
    document = json.loads((tmp_path / "metrics.json").read_text())
    results = document["results"]

    def check(aggregates: dict, cases: list[dict]) -> None:
        assert set(aggregates) == set(METRIC_KEYS)
        for key, value in aggregates.items():
            assert set(value) == {"mean", "std", "count"} and all(_is_number(x) for x in value.values()), key
            values = np.array([case[key] for case in cases])
            assert value["count"] == len(cases) and isinstance(value["count"], int)
            assert value["std"] == np.std(values)
            if key == "score":
                assert value["mean"] == pytest.approx(np.mean(values), rel=1e-12)
            else:
                assert value["mean"] == np.mean(values)

    check(document["aggregates"], results)
    assert len(results) == 3 * len(subjects)
    assert set(document["per_contrast"]) == {"T1", "T2", "FLAIR"}
    for contrast, aggregates in document["per_contrast"].items():
        check(aggregates, [case for case in results if case["contrast"] == contrast])
    assert "score" in document["descriptions"]["ssim, psnr, mae, nmse, score"]
    assert set(document) == {"results", "aggregates", "per_contrast", "layout", "descriptions"}


class _RecordingPool(scoring.ProcessPoolExecutor):
    """The process pool, recording how many workers each pool was given."""

    sizes: list[int] = []

    def __init__(self, max_workers=None, **kwargs):
        _RecordingPool.sizes.append(max_workers)
        super().__init__(max_workers=max_workers, **kwargs)


@pytest.mark.parametrize("submission", ["eval_gc", "eval_ulf"])
def test_two_workers_give_the_same_metrics_json_as_one(evaluation_submissions, tmp_path, monkeypatch, submission,
                                                       capsys):
    """GRAND_CHALLENGE_MAX_WORKERS=2 scores the two subjects in two processes: the same file, byte for byte."""
    work, _ = evaluation_submissions
    monkeypatch.setattr(scoring.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(scoring, "ProcessPoolExecutor", _RecordingPool)
    _RecordingPool.sizes = []
    monkeypatch.delenv(container.MAX_WORKERS, raising=False)
    assert run(work, submission, tmp_path / "one") == 0
    assert _RecordingPool.sizes == []  # the default: one worker, no pool
    monkeypatch.setenv(container.MAX_WORKERS, "2")
    assert run(work, submission, tmp_path / "two") == 0
    assert _RecordingPool.sizes == [2]
    assert "could not run" not in capsys.readouterr().err
    one, two = (tmp_path / "one" / "metrics.json").read_bytes(), (tmp_path / "two" / "metrics.json").read_bytes()
    assert one == two


@pytest.mark.parametrize("value", ["two", "0", "-1", "1.5"])
def test_a_bad_worker_count_is_exit_2_naming_the_variable(tmp_path, monkeypatch, capsys, value):
    monkeypatch.setenv(container.MAX_WORKERS, value)
    assert container.main(["--input", str(tmp_path), "--ground-truth", str(tmp_path),
                           "--output", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == (f"error: GRAND_CHALLENGE_MAX_WORKERS {value!r}: expected a whole number "
                                               "of worker processes, at least 1")


def test_the_worker_count_comes_from_the_option_the_environment_or_is_one():
    assert container.worker_count(None, {}) == 1
    assert container.worker_count(None, {container.MAX_WORKERS: " "}) == 1
    assert container.worker_count(None, {container.MAX_WORKERS: "4"}) == 4
    assert container.worker_count("3", {container.MAX_WORKERS: "4"}) == 3
    with pytest.raises(scoring.EvaluationInputError, match="^--workers '0'"):
        container.worker_count("0", {})
