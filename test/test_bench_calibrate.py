"""The calibration command (bench/calibrate.py): it measures configurations on both held-out sets, writes
them into the weights' manifest, and the planner and the `auto` preset then read them from there."""

import json
import shutil

from bench import calibrate
from conftest import TEST_WINDOW
from model.weights.calibration import auto_settings, load_calibration, network_checksums
from model.weights.manifest import read_manifest

SEED, SCALE, CROP = 90_000, 0.4, (40, 44, 20)
CHOSEN = ["bridge, overlap 0.25", "chain 10, overlap 0.25"]


def run(weights, out, *extra):
    return calibrate.main(["--weights", str(weights), "--subjects", "1", "--subject-seed", str(SEED), "--shape-scale", str(SCALE),
                           "--crop", *map(str, CROP), "--window", *map(str, TEST_WINDOW), "--out", str(out),
                           "--configurations", *CHOSEN, "--no-progress", *extra])


def test_the_calibration_is_written_into_the_manifest_and_read_back(tiny_weights, tmp_path):
    folder = tmp_path / "weights"
    shutil.copytree(tiny_weights, folder)
    assert not load_calibration(folder).measured
    assert run(folder, tmp_path / "out", "--write") == 0
    manifest = read_manifest(folder)
    block = manifest["calibration"]
    assert block["networks_sha256"] == network_checksums(manifest)
    assert block["command"].startswith("python -m bench.calibrate --weights") and block["measured"] and block["machine"]
    assert block["precision"] in ("float32", "bfloat16")
    assert set(block["identity"]) == set(calibrate.SETS) == {"ordinary", "shifted", "foreign"}
    assert sorted(c["label"] for c in block["configurations"]) == sorted(CHOSEN)
    for c in block["configurations"]:  # the ladder's score is the mean of the sets' scores
        assert abs(c["score"] - sum(s["score"] for s in c["sets"].values()) / len(calibrate.SETS)) < 1e-4
        assert c["full_head_windows"]["bridge"] > 0
    calibration = load_calibration(folder)
    assert calibration.measured
    scores = [r.score for r in calibration.rungs]
    assert scores == sorted(scores, reverse=True)
    label, _ = auto_settings(folder)
    assert label == calibration.rungs[0].label


def test_an_interrupted_calibration_resumes_without_rerunning(tiny_weights, tmp_path):
    out = tmp_path / "out"
    assert run(tiny_weights, out) == 0
    log = out / "calibration.jsonl"
    first = log.read_text().splitlines()
    assert len(first) == len(calibrate.SETS) * (1 + len(CHOSEN))  # per set: the identity and each configuration
    assert run(tiny_weights, out) == 0
    assert log.read_text().splitlines() == first
    assert "calibration" not in json.loads((tiny_weights / "manifest.json").read_text())  # no --write


def test_configurations_outside_the_trained_levels_are_left_out(tiny_weights, tmp_path):
    folder = tmp_path / "weights"
    shutil.copytree(tiny_weights, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["networks"]["bridge"]["provenance"] = {"bridge": {"training_config": {"bridge": {"t_min": 200, "t_max": 300}}}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert run(folder, tmp_path / "out") == 2  # every configuration bridges at K = 100
