"""The shared sweep (bench/sweep.py) and case (bench/case.py): the identity scores the raw input, and a
logged run is reused only under the same weights, settings, crop and held-out set."""

import json
import logging

import numpy as np
import pytest
import torch

from bench.case import BenchCase, contrast_scores, mean_scores, raw_input_scores, simulated_case
from bench.sweep import RAW_INPUT, OUTPUT, RunLog, enhance_and_score, key_differences, run_key, sweep, weights_checksums
from conftest import TEST_WINDOW, tiny_networks
from evaluation.metrics import challenge_metrics
from model.pipeline.enhancer import Enhancer
from model.volumes.intensity import denormalise_contrasts, normalise_contrasts
from model.volumes.layouts import CONTRASTS
from model.config.settings import preset
from model.weights.manifest import save_networks

IDENTITY = preset("smoke").updated(mode="identity", window=TEST_WINDOW)


def synthetic_case(seed: int = 0) -> BenchCase:
    """A small head-like case whose raw input has bright outliers that the percentile clipping removes."""
    rng = np.random.default_rng(seed)
    shape = (24, 20, 16)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    inside = np.sqrt((grid**2).sum(0)) < 0.8
    high = np.stack([100 * inside * (1 + 0.3 * np.cos((i + 2) * grid[0])) for i in range(3)]).astype(np.float32)
    low = (high + 15 * rng.standard_normal(high.shape)).clip(0).astype(np.float32)
    low[:, 12, 10, 8] = 2000.0  # one voxel far above the 99.5th percentile, inside the brain
    network_input, maps = normalise_contrasts(list(low), list(CONTRASTS))
    return BenchCase("synthetic", network_input, maps, high, inside.astype(np.uint8), low)


def test_identity_scores_the_raw_input_not_the_clipped_one(tiny_weights):
    case = synthetic_case()
    raw = [challenge_metrics(case.raw_input[i], case.high[i], case.mask) for i in range(3)]
    clipped = denormalise_contrasts(case.network_input, case.maps)
    assert [row["score"] for row in raw_input_scores(case)] == [r["score"] for r in raw]

    record = enhance_and_score(Enhancer(IDENTITY, tiny_weights, torch.device("cpu")), case)
    assert record["scored"] == RAW_INPUT and record["evaluations"] == 0
    for row, expected in zip(record["rows"], raw):
        assert row == {"contrast": row["contrast"], **expected}
    assert record["metrics"] == mean_scores(record["rows"])

    enhancer = Enhancer(IDENTITY, tiny_weights, torch.device("cpu"))
    clipped_record = enhance_and_score(enhancer, case, clipped_identity=True)
    assert clipped_record["scored"] == OUTPUT
    assert clipped_record["rows"] == contrast_scores(case, case.network_input)
    for row, i in zip(clipped_record["rows"], range(3)):
        assert np.isclose(row["score"], challenge_metrics(clipped[i], case.high[i], case.mask)["score"])
    # the clipping flatters the identity here: the outlier squeezes the raw input's min-max range
    assert clipped_record["metrics"]["score"] > record["metrics"]["score"] + 0.05


def test_a_simulated_case_carries_its_raw_cropped_input():
    case = simulated_case(90_000, 0.4, (40, 44, 20))
    assert case.raw_input.shape == case.network_input.shape == case.high.shape
    from bench.case import centred_crop, simulated_subject

    subject = simulated_subject(90_000, 0.4)
    box = centred_crop(subject.mask.shape, (40, 44, 20))
    assert np.array_equal(case.raw_input, subject.low[(slice(None), *box)])
    for i, row in enumerate(raw_input_scores(case)):
        assert row["score"] == challenge_metrics(subject.low[i][box], subject.high[i][box], subject.mask[box])["score"]
    with pytest.raises(ValueError, match="no raw input"):
        raw_input_scores(BenchCase("bare", case.network_input, case.maps, case.high, case.mask))


def fake_run(calls):
    def run(label, configuration, subject):
        calls.append((label, subject))
        return {"seconds": 1.0, "metrics": {"score": 0.5}, "rows": []}
    return run


def keyed(weights, crop=(8, 8, 8), variation="training", settings=IDENTITY):
    return lambda label, configuration: run_key(weights, settings, crop=crop, variation=variation, scoring=RAW_INPUT)


def test_a_run_logged_with_other_weights_is_not_reused(tiny_weights, tmp_path, caplog):
    other = tmp_path / "other-weights"
    networks = tiny_networks(seed=1)
    save_networks(other, networks, trained=False, provenance={"source": "test, another init"})
    assert weights_checksums(tiny_weights)["diffusion"] != weights_checksums(other)["diffusion"]
    path, calls = tmp_path / "runs.jsonl", []
    sweep({"a": None}, [1, 2], RunLog(path), fake_run(calls), key=keyed(tiny_weights))
    assert calls == [("a", 1), ("a", 2)]
    sweep({"a": None}, [1, 2], RunLog(path), fake_run(calls), key=keyed(tiny_weights))
    assert len(calls) == 2  # same weights, same everything: resumed, nothing run
    with caplog.at_level(logging.INFO, logger="bench.sweep"):
        sweep({"a": None}, [1, 2], RunLog(path), fake_run(calls), key=keyed(other))
    assert calls[2:] == [("a", 1), ("a", 2)]
    assert "subject 1: run again: the logged run differs in weights (bridge, diffusion)" in caplog.text
    runs = RunLog(path)
    assert len(runs.runs("a")) == 4
    new = keyed(other)("a", None)
    assert [r["key"]["weights"] for r in runs.current("a", [1, 2], new)] == [weights_checksums(other)] * 2
    assert runs.find("a", 1, key=keyed(tiny_weights)("a", None))["key"]["weights"] == weights_checksums(tiny_weights)


def test_a_run_logged_for_another_crop_variation_or_settings_is_not_reused(tiny_weights, tmp_path, caplog):
    path, calls = tmp_path / "runs.jsonl", []
    checksums = weights_checksums(tiny_weights)
    sweep({"a": None}, [7], RunLog(path), fake_run(calls), key=keyed(checksums))
    with caplog.at_level(logging.INFO, logger="bench.sweep"):
        sweep({"a": None}, [7], RunLog(path), fake_run(calls), key=keyed(checksums, crop=(8, 8, 4)))
        sweep({"a": None}, [7], RunLog(path), fake_run(calls), key=keyed(checksums, crop=None))
        sweep({"a": None}, [7], RunLog(path), fake_run(calls), key=keyed(checksums, variation="shifted"))
        sweep({"a": None}, [7], RunLog(path), fake_run(calls),
              key=keyed(checksums, settings=IDENTITY.updated(overlap=0.5)))
    assert len(calls) == 5
    assert "crop ([8, 8, 8] -> [8, 8, 4])" in caplog.text and "crop ([8, 8, 8] -> None)" not in caplog.text
    assert "crop ([8, 8, 4] -> None)" in caplog.text
    assert "variation ('training' -> 'shifted')" in caplog.text
    assert "settings (overlap)" in caplog.text
    for crop, variation in (((8, 8, 8), "training"), ((8, 8, 4), "training"), (None, "shifted")):
        sweep({"a": None}, [7], RunLog(path), fake_run(calls), key=keyed(checksums, crop=crop, variation=variation))
    assert len(calls) == 6  # the first two were logged and are reused; (None, "shifted") was not: it ran
    assert RunLog(path).find("a", 7, key=keyed(checksums, crop=None, variation="shifted")("a", None)) is not None


def test_a_run_logged_before_keys_is_run_again(tiny_weights, tmp_path, caplog):
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps({"kind": "run", "label": "a", "subject": 3, "seconds": 1.0,
                                "metrics": {"score": 0.9}, "rows": []}) + "\n")
    calls = []
    with caplog.at_level(logging.INFO, logger="bench.sweep"):
        sweep({"a": None}, [3], RunLog(path), fake_run(calls), key=keyed(tiny_weights))
    assert calls == [("a", 3)] and "no key (logged before runs were keyed)" in caplog.text
    assert RunLog(path).find("a", 3) is not None  # without a key: any logged run, as before


def test_key_differences_name_what_changed():
    a = {"weights": {"bridge": "1", "diffusion": "2"}, "crop": [1, 2, 3], "variation": "training"}
    assert key_differences(a, a) == []
    assert key_differences(a, {**a, "weights": {"bridge": "1", "diffusion": "3"}}) == ["weights (diffusion)"]
    assert key_differences(None, a) == ["no key (logged before runs were keyed)"]
