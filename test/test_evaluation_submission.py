"""Finding a submission's volumes (evaluation/submission.py): the platform's predictions.json, the ULF-EnC
layout, and what is refused."""

import json
import shutil

import pytest

from evaluation.submission import SubmissionError, find_predictions, subject_in_name
from evaluation.validation import validate


def test_subject_ids_are_found_as_whole_tokens():
    subjects = ["SIM0001", "SIM00011", "POCEMR001"]
    assert subject_in_name("SIM0001_T1.mha", subjects) == "SIM0001"
    assert subject_in_name("case-SIM00011.mha", subjects) == "SIM00011"
    assert subject_in_name("POCEMR001.nii.gz", subjects) == "POCEMR001"
    assert subject_in_name("XSIM0001_T1.mha", subjects) is None and subject_in_name("SIM00012.mha", subjects) is None


def test_predictions_json_maps_every_job_to_its_subject_and_files(evaluation_submissions):
    work, subjects = evaluation_submissions
    layout, volumes = find_predictions(work / "eval_gc", subjects)
    assert layout == "grand-challenge"
    assert sorted((v.subject, v.contrast) for v in volumes) == sorted((s, c) for s in subjects for c in ("T1", "T2", "FLAIR"))
    assert all(v.path.suffix == ".mha" and v.path.is_file() and v.source.startswith("job ") for v in volumes)
    assert {v.case_name for v in volumes} == {f"{s}_T1.mha" for s in subjects}
    assert find_predictions(work / "eval_ulf", subjects)[0] == "ulf-enc"


def edited(work, tmp_path, change):
    submission = tmp_path / "gc"
    shutil.copytree(work / "eval_gc", submission)
    jobs = json.loads((submission / "predictions.json").read_text())
    change(jobs, submission)
    (submission / "predictions.json").write_text(json.dumps(jobs))
    return submission


def rename_input(jobs, _):
    jobs[0]["inputs"][0]["image"]["name"] = "anonymous.mha"


def drop_output(jobs, _):
    jobs[0]["outputs"] = jobs[0]["outputs"][:2]


def second_file(jobs, submission):
    folder = submission / jobs[0]["pk"] / "output" / jobs[0]["outputs"][0]["interface"]["relative_path"]
    shutil.copy(next(folder.glob("*.mha")), folder / "another.mha")


def escape(jobs, _):
    jobs[0]["outputs"][0]["interface"]["relative_path"] = "../../etc"


def failed_job(jobs, _):
    jobs[0]["status"] = "Failed"


@pytest.mark.parametrize("change, message", [
    (rename_input, "its input image 'anonymous.mha' names none of the reference subjects"),
    (drop_output, "no output of socket 'enhanced-flair-brain-mri' in predictions.json"),
    (second_file, "expected one .mha or .tif file in "),
    (escape, "output relative_path '../../etc' leaves the job's output folder"),
    (failed_job, "status 'Failed', not Succeeded: a case has no prediction"),
])
def test_unusable_jobs_are_refused_naming_the_job(evaluation_submissions, tmp_path, change, message):
    work, subjects = evaluation_submissions
    submission = edited(work, tmp_path, change)
    with pytest.raises(SubmissionError, match="^job [0-9a-f-]+: ") as raised:
        find_predictions(submission, subjects)
    assert message in str(raised.value)


def test_one_subject_submitted_twice_is_caught_by_the_case_checks(evaluation_submissions, tmp_path):
    """Two jobs on the first subject (none on the second): evalutils' case count and path indices say so."""
    work, subjects = evaluation_submissions

    def same_subject(jobs, _):
        for job in jobs:
            for value in job["inputs"]:
                value["image"]["name"] = value["image"]["name"].replace(subjects[1], subjects[0])

    submission = edited(work, tmp_path, same_subject)
    _, volumes = find_predictions(submission, subjects)
    with pytest.raises(SubmissionError) as raised:
        validate(volumes, work / "eval_reference", subjects)
    assert f"T1: no prediction for {subjects[1]}" in str(raised.value)
    assert "T1 case names: The first number is each filename is not unique" in str(raised.value)
