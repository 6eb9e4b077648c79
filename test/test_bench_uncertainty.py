"""The uncertainty benchmark (bench/uncertainty.py): samples, the map's statistics and the N-sample table."""

import json

import numpy as np

from bench import calibrate, uncertainty
from conftest import TEST_WINDOW

SEED, SCALE, CROP = 90_000, 0.4, (40, 44, 20)


def test_the_benchmark_measures_both_sets_and_draws_the_figure(tiny_weights, tmp_path):
    assert uncertainty.main(["--weights", str(tiny_weights), "--preset", "smoke", "--samples", "4", "--subjects", "1",
                             "--subject-seed", str(SEED), "--shape-scale", str(SCALE), "--crop", *map(str, CROP),
                             "--window", *map(str, TEST_WINDOW), "--out", str(tmp_path / "out"),
                             "--figure", str(tmp_path / "figure.png")]) == 0
    results = json.loads((tmp_path / "out" / "uncertainty.json").read_text())
    assert set(results["sets"]) == set(calibrate.SETS) and results["samples"] == 4
    for subjects in results["sets"].values():
        (subject,) = subjects
        assert set(subject["scores"]) == {"mean of 1", "mean of 2", "mean of 4", "median of 4"}
        for row in subject["map"]:
            assert -1 <= row["spearman"] <= 1 and row["spread_mean"] > 0  # untrained networks: samples differ
            assert row["mae_top_decile"] > 0 and row["mae_rest"] > 0
    assert (tmp_path / "figure.png").stat().st_size > 10_000
    table = (tmp_path / "out" / "uncertainty.md").read_text()
    assert "| ordinary | 90000 |" in table and "mean of 4" in table


def test_sample_count_scores_of_identical_samples_are_equal(monkeypatch):
    """The mean and median of N identical samples are that sample: every N scores alike."""
    monkeypatch.setattr(uncertainty, "case_score", lambda case, volume: {"score": float(np.sum(volume))})
    sample = np.random.default_rng(0).normal(size=(3, 4, 4, 2)).astype(np.float32)
    scores = uncertainty.sample_count_scores(None, [sample] * 8)
    assert len(set(round(v, 4) for v in scores.values())) == 1 and len(scores) == 6
