"""The output intensity remap (model/volumes/remap.py): quantile matching fitted on training subjects, kept in
the weights' manifest for the networks it was fitted for, applied to full runs; and its benchmark."""

import json
import logging
import shutil

import numpy as np
import pytest
import torch

from bench import output_remap
from conftest import TEST_WINDOW
from model.config.settings import preset
from model.errors import WeightsError
from model.pipeline.enhancer import Enhancer
from model.volumes.intensity import OUTPUT_CEILING
from model.volumes.remap import REMAP_FORMAT, REMAP_KEY, OutputRemap, fit_output_remap
from model.weights.calibration import network_checksums
from model.weights.manifest import load_output_remap, read_manifest


def synthetic(seed: int, shape=(3, 20, 18, 10)):
    rng = np.random.default_rng(seed)
    output = np.clip(rng.normal(0.0, 0.3, shape), -1, 1).astype(np.float32)
    target = np.clip(0.5 * output + 0.1 + 0.2 * output ** 3, -1, OUTPUT_CEILING).astype(np.float32)  # monotone in output
    return output, target


def test_the_fitted_remap_sends_outputs_onto_the_targets_distribution():
    outputs, targets = zip(*(synthetic(s) for s in range(3)))
    heads = [np.ones(o.shape[1:], bool) for o in outputs]
    remap = fit_output_remap(list(outputs), list(targets), heads)
    fresh_output, fresh_target = synthetic(7)
    mapped = remap.apply(fresh_output)
    inside = (fresh_output > np.asarray(remap.source["T1"])[0]) & (fresh_output < np.asarray(remap.source["T1"])[-1])
    assert np.abs(mapped - fresh_target)[inside].max() < 0.05  # a monotone relation is learnt from quantiles alone
    assert np.all(np.diff(remap.source["FLAIR"]) > 0) and np.all(np.diff(remap.target["FLAIR"]) >= 0)
    order = np.argsort(fresh_output[0].ravel())
    assert np.all(np.diff(mapped[0].ravel()[order]) >= -1e-6)  # monotone: the order of voxels is kept


def test_outside_the_knots_the_remap_shifts_with_slope_one_and_untouched_contrasts_stay():
    remap = OutputRemap({"T1": (0.0, 0.5)}, {"T1": (0.1, 0.4)})
    volume = np.array([-0.5, 0.25, 0.9], np.float32).reshape(1, 3, 1, 1).repeat(3, axis=0)
    mapped = remap.apply(volume)
    np.testing.assert_allclose(mapped[0].ravel(), [-0.4, 0.25, 0.8], atol=1e-6)
    np.testing.assert_array_equal(mapped[1:], volume[1:])


@pytest.mark.parametrize("knots", [{"T1": {"source": [0, 1], "target": [0]}}, {"T1": {"source": [1, 0], "target": [0, 1]}},
                                   {"T4": {"source": [0, 1], "target": [0, 1]}}, {"T1": "knots"}])
def test_malformed_knots_are_refused(knots):
    with pytest.raises(WeightsError, match="output remap"):
        OutputRemap.from_record(knots, "manifest.json")


def with_remap(tiny_weights, tmp_path, checksums=None):
    folder = tmp_path / "weights"
    shutil.copytree(tiny_weights, folder)
    manifest = read_manifest(folder)
    remap = OutputRemap({"T2": (-1.0, 0.0, 1.0)}, {"T2": (-1.0, 0.3, 1.0)})
    manifest[REMAP_KEY] = {"format": REMAP_FORMAT, "networks_sha256": checksums or network_checksums(manifest),
                           "knots": remap.to_record()}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder, remap


def test_full_runs_apply_the_weights_remap_and_other_runs_do_not(tiny_weights, tmp_path):
    folder, remap = with_remap(tiny_weights, tmp_path)
    settings = preset("smoke").updated(window=TEST_WINDOW)
    volume = np.random.default_rng(0).uniform(-1, 1, (3, 40, 36, 20)).astype(np.float32)
    plain = Enhancer(settings.updated(output_remap=False), folder, torch.device("cpu")).enhance(volume).volume
    remapped = Enhancer(settings, folder, torch.device("cpu")).enhance(volume).volume
    np.testing.assert_array_equal(remapped, remap.apply(plain))
    assert not np.array_equal(remapped[1], plain[1]) and np.array_equal(remapped[0], plain[0])
    bridge = settings.updated(mode="bridge")
    assert np.array_equal(Enhancer(bridge, folder, torch.device("cpu")).enhance(volume).volume,
                          Enhancer(bridge.updated(output_remap=False), folder, torch.device("cpu")).enhance(volume).volume)


def test_a_remap_fitted_for_other_networks_is_not_used(tiny_weights, tmp_path, caplog):
    folder, _ = with_remap(tiny_weights, tmp_path, checksums={"diffusion": "0" * 64, "bridge": "1" * 64})
    with caplog.at_level(logging.WARNING):
        assert load_output_remap(folder) is None
    assert "fitted for other networks" in caplog.text
    assert load_output_remap(tiny_weights) is None  # no block: nothing to apply


def test_the_benchmark_fits_measures_and_writes_only_what_helped(tiny_weights, tmp_path):
    folder = tmp_path / "weights"
    shutil.copytree(tiny_weights, folder)
    assert output_remap.main(["--weights", str(folder), "--preset", "smoke", "--fit-subjects", "1", "--subjects", "1",
                              "--subject-seed", "90000", "--shape-scale", "0.4", "--crop", "40", "44", "20",
                              "--window", *map(str, TEST_WINDOW), "--out", str(tmp_path / "out"), "--write"]) == 0
    result = json.loads((tmp_path / "out" / "output_remap.json").read_text())
    assert set(result["sets"]) >= {"ordinary", "shifted"}
    block = read_manifest(folder).get(REMAP_KEY)
    if result["kept"]:
        assert sorted(block["knots"]) == sorted(result["kept"]) and block["networks_sha256"] == network_checksums(read_manifest(folder))
    else:
        assert block is None
