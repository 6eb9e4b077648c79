"""What the weights were measured to do (model/weights/calibration.py): the ladder and the `auto` preset come from the
manifest, and no preset or plan leaves the networks' trained timesteps unless forced."""

from __future__ import annotations

import json
import logging
import shutil

import pytest

from conftest import TEST_WINDOW, grand_challenge_paths, write_case
from model.execution.budget import Throughput, candidates, choose_settings
from model.weights.calibration import (
    CALIBRATION_FORMAT,
    FORCE_FLAG,
    UNCALIBRATED_LADDER,
    auto_settings,
    ladder_for,
    levels_outside_training,
    load_calibration,
    network_checksums,
)
from model.cli.main import main
from model.cli.options import DEFAULT_WEIGHTS
from model.config.settings import preset
from model.weights.manifest import read_manifest

HEAD = (197, 233, 189)
GPU_LIKE = Throughput(unet=1000.0, bridge=1000.0)  # windows per second: a GPU-class figure for these networks


def configuration(label, score, mode="full", chain=(25, 10, 1), overlap=0.25, k=100):
    return {"label": label, "score": score,
            "settings": {"mode": mode, "bridge_timestep": k, "chain_levels": list(chain), "refinements": 1,
                         "overlap": overlap}}


def with_manifest(folder, source, change) -> object:
    shutil.copytree(source, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def calibrated(tmp_path, source, configurations, checksums=None, ranges=None):
    def change(manifest):
        manifest["calibration"] = {"format": CALIBRATION_FORMAT, "measured": "2026-12-07",
                                   "networks_sha256": checksums or network_checksums(manifest),
                                   "configurations": configurations}
        for name, (low, high) in (ranges or {}).items():
            manifest["networks"][name]["provenance"] = {name: {"training_config": {name: {"t_min": low, "t_max": high}}}}
    return with_manifest(tmp_path / "weights", source, change)


def test_the_ladder_and_auto_come_from_the_manifest_best_first(tmp_path, tiny_weights):
    folder = calibrated(tmp_path, tiny_weights, [
        configuration("bridge", 0.60, mode="bridge", chain=()),
        configuration("chain 25,10,1, overlap 0.7", 0.71, overlap=0.7),
        configuration("chain 10", 0.65, chain=(10,)),
    ])
    calibration = load_calibration(folder)
    assert calibration.measured and [r.label for r in calibration.rungs] == ["chain 25,10,1, overlap 0.7", "chain 10", "bridge"]
    label, settings = auto_settings(folder)
    assert label == "chain 25,10,1, overlap 0.7"
    assert settings.algorithm.chain_levels == (25, 10, 1) and settings.engine.overlap == 0.7
    assert settings.algorithm.bridge_timestep == 100 and settings.algorithm.refinements == 1


def test_auto_runs_one_sample_and_a_budget_may_choose_several(tmp_path, tiny_weights):
    """Several samples score best but cost several runs: ``auto`` takes the best single-sample configuration, the
    time-budget ladder keeps the multi-sample one first (a fast device runs it when it fits)."""
    four = configuration("chain 25,10,1, overlap 0.7, 4 samples", 0.74, overlap=0.7)
    four["settings"]["samples"] = 4
    folder = calibrated(tmp_path, tiny_weights, [four, configuration("chain 25,10,1, overlap 0.7", 0.71, overlap=0.7),
                                                  configuration("bridge", 0.60, mode="bridge", chain=())])
    label, settings = auto_settings(folder)
    assert label == "chain 25,10,1, overlap 0.7" and settings.algorithm.samples == 1
    ladder = ladder_for(settings, load_calibration(folder), folder)
    assert [s.algorithm.samples for _, s in ladder] == [4, 1, 1]
    asked = choose_settings(settings, HEAD, GPU_LIKE, allowance=900.0, ladder=ladder)
    assert asked.label == "as requested" and asked.plan.samples == 1  # a request of its own comes first
    decided = choose_settings(settings, HEAD, GPU_LIKE, allowance=900.0, ladder=ladder, ladder_first=True)
    assert decided.label.endswith("4 samples") and decided.plan.samples == 4  # --preset auto: the weights decide
    tight = choose_settings(settings, HEAD, GPU_LIKE, allowance=1.5 * GPU_LIKE.seconds(asked.plan), ladder=ladder,
                            ladder_first=True)
    assert tight.plan.samples == 1 and tight.fits  # four samples do not fit: the best single one does


def test_a_calibration_of_other_weights_is_ignored_with_a_warning(tmp_path, tiny_weights, caplog):
    folder = calibrated(tmp_path, tiny_weights, [configuration("chain", 0.9, overlap=0.7)],
                        checksums={"diffusion": "0" * 64, "bridge": "1" * 64})
    with caplog.at_level(logging.WARNING, logger="model.weights.calibration"):
        calibration = load_calibration(folder)
    assert not calibration.measured and calibration.rungs == UNCALIBRATED_LADDER
    assert "other networks" in caplog.text and "bench.calibrate" in caplog.text


def test_weights_without_a_calibration_get_the_conservative_default_and_the_log_says_so(tiny_weights, caplog):
    with caplog.at_level(logging.INFO, logger="model.weights.calibration"):
        label, settings = auto_settings(tiny_weights)
    assert label == UNCALIBRATED_LADDER[0].label and "records no calibration" in caplog.text
    assert settings.algorithm.bridge_timestep == 100 and settings.algorithm.chain_levels == (25, 10, 1)


def test_the_default_run_on_a_gpu_plans_only_levels_the_shipped_networks_were_trained_on():
    """With a GPU-class throughput every configuration fits: the plan is the `auto` preset itself, and it and
    every fallback stay inside the trained timesteps the shipped manifest records."""
    _, settings = auto_settings(DEFAULT_WEIGHTS)
    ladder = ladder_for(settings, load_calibration(DEFAULT_WEIGHTS), DEFAULT_WEIGHTS)
    plan = choose_settings(settings, HEAD, GPU_LIKE, allowance=900.0, ladder=ladder)
    assert plan.fits and plan.label == "as requested"
    assert levels_outside_training(plan.settings, DEFAULT_WEIGHTS) == []
    assert all(levels_outside_training(s, DEFAULT_WEIGHTS) == [] for _, s in candidates(settings, ladder))
    assert levels_outside_training(preset("paper"), DEFAULT_WEIGHTS)  # the shipped networks cannot carry it


def test_rungs_outside_the_trained_levels_never_reach_the_planner(tmp_path, tiny_weights):
    folder = calibrated(tmp_path, tiny_weights, [configuration("K 400", 0.9, k=400, chain=(400, 200, 1)),
                                                 configuration("K 100", 0.5)],
                        ranges={"diffusion": (1, 32), "bridge": (50, 250)})
    ladder = ladder_for(preset("cpu"), load_calibration(folder), folder)
    assert [label for label, _ in ladder] == ["K 100"]  # K 400's bridge and chain lie outside; it is never planned


def test_the_paper_preset_with_the_shipped_weights_is_refused_before_any_volume_is_read(tmp_path, caplog):
    paths = write_case(grand_challenge_paths(tmp_path / "input"))
    for path in paths.values():
        path.write_bytes(b"not an image: never read")
    status = main(["--input", str(tmp_path / "input"), "--output", str(tmp_path / "output"), "--preset", "paper"])
    assert status == 2 and not (tmp_path / "output").exists()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0]
    assert "--preset paper" in errors[0] and FORCE_FLAG in errors[0] and "--preset auto" in errors[0]
    trained = read_manifest(DEFAULT_WEIGHTS)["networks"]["diffusion"]["provenance"]["diffusion"]["training_config"]["diffusion"]
    assert f"trained on t = {trained['t_min']}..{trained['t_max']}" in errors[0]


def test_forcing_untrained_levels_runs_and_warns(tmp_path, tiny_weights, caplog):
    folder = calibrated(tmp_path, tiny_weights, [configuration("K 100", 0.5)],
                        ranges={"diffusion": (1, 1), "bridge": (1, 1)})  # smoke's K = 2 is outside
    write_case(grand_challenge_paths(tmp_path / "input"))
    args = ["--input", str(tmp_path / "input"), "--output", str(tmp_path / "output"), "--weights", str(folder),
            "--preset", "smoke", "--window", *map(str, TEST_WINDOW), "--quiet"]
    assert main(args) == 2 and not (tmp_path / "output").exists()
    with caplog.at_level(logging.WARNING):
        assert main([*args, FORCE_FLAG]) == 0
    assert "forced with" in caplog.text
    assert len(list((tmp_path / "output").rglob("*.mha"))) == 3


@pytest.mark.parametrize("bad", [{"format": 99}, {"format": CALIBRATION_FORMAT, "configurations": [{"label": "x"}]}])
def test_a_malformed_calibration_falls_back_to_the_default(tmp_path, tiny_weights, bad, caplog):
    def change(manifest):
        manifest["calibration"] = {**bad, "networks_sha256": network_checksums(manifest)}
    folder = with_manifest(tmp_path / "weights", tiny_weights, change)
    with caplog.at_level(logging.WARNING, logger="model.weights.calibration"):
        assert not load_calibration(folder).measured
    assert "ignored" in caplog.text
