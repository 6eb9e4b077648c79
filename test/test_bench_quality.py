"""The quality curve (bench/quality.py): configurations scored on held-out subjects (the identity on the raw
input), resumable, summarised."""

import json

import numpy as np

from bench import quality
from bench.case import simulated_case
from evaluation.metrics import challenge_metrics
from conftest import TEST_WINDOW

LABELS = ["identity (input as output)", "bridge only"]


def run(tiny_weights, out):
    return quality.main(["--subjects", "1", "--shape-scale", "0.4", "--crop", "40", "44", "20",
                         "--window", *map(str, TEST_WINDOW), "--weights", str(tiny_weights), "--device", "cpu",
                         "--configurations", *LABELS, "--out", str(out)])


def test_quality_curve_scores_each_configuration_and_resumes(tiny_weights, tmp_path):
    assert run(tiny_weights, tmp_path) == 0
    document = json.loads((tmp_path / "quality.json").read_text())
    rows = {row["label"]: row for row in document["summary"]}
    assert list(rows) == LABELS and all(row["subjects"] == 1 for row in rows.values())
    assert rows[LABELS[0]]["full_head_windows"] == 0 and rows[LABELS[0]]["evaluations"] == 0
    assert rows[LABELS[1]]["full_head_windows"] == 228  # one bridge evaluation of the full head at overlap 0.7
    assert (tmp_path / "quality.md").is_file() and (tmp_path / "quality_time.png").is_file()
    # the identity row scores the raw low field of the crop, not the percentile-clipped network input
    case = simulated_case(90_000, 0.4, (40, 44, 20))
    raw = np.mean([challenge_metrics(case.raw_input[i], case.high[i], case.mask)["score"] for i in range(3)])
    assert np.isclose(rows[LABELS[0]]["score"], raw, rtol=1e-9)
    assert document["runs"][0]["scored"] == "raw input" and document["runs"][1]["scored"] == "output"
    lines = (tmp_path / "quality.jsonl").read_text().splitlines()
    assert len(lines) == len(LABELS)
    assert run(tiny_weights, tmp_path) == 0  # everything done already: nothing is run again
    assert (tmp_path / "quality.jsonl").read_text().splitlines() == lines
