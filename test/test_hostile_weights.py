"""Weights manifests and checkpoints a hostile user can give (issue 13: 6, 7): one line and exit 3, and no
file read from outside the weights folder."""

import json
import shutil

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import files_under, run_process, write_case
from model.errors import WeightsError
from model.volumes.intensity import normalisation_record
from model.volumes.layouts import CONTRASTS
from model.weights.manifest import load_network, sha256_of

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                           max_leaves=8)


def entry_with(**fields):
    return {"format_version": 1, "networks": {"bridge": {"file": "bridge.pt", "sha256": "0" * 64, "architecture":
            "SwinUNETRBridge", "config": {}, "trained": False, "provenance": {}, **fields}}}


manifests = json_values | st.builds(lambda value: entry_with(file=value), json_values) | \
    st.builds(lambda value: {"format_version": 1, "networks": {"bridge": value}}, json_values)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(manifest=manifests)
def test_any_manifest_gives_one_clear_error(tmp_path, manifest):
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(WeightsError) as refused:
        load_network(tmp_path, "bridge")
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("manifest, message", [
    ([1, 2], "expected a JSON object with format_version 1"),
    (entry_with(file=3), "file = 3; expected a non-empty string"),
    (entry_with(file=None), "file = null; expected a non-empty string"),
    (entry_with(file="../outside.pt"), "lies outside the weights folder"),
    (entry_with(file="/etc/hostname"), "lies outside the weights folder"),
    ({**entry_with(), "intensity": {**normalisation_record(), "target_ceiling": 1.0, "output_clip": [-1.0, 1.0]}},
     "trained with intensity normalisation"),  # weights from before OUTPUT_CEILING: targets clipped at 1
    ({**entry_with(), "intensity": {**normalisation_record(), "input_percentiles": [1, 99]}},
     "input_percentiles: [1, 99] vs [0.5, 99.5]"),
])
def test_malformed_manifests_exit_3_with_one_line(tmp_path, caplog, manifest, message):
    inputs = write_case({c: tmp_path / f"{c}.mha" for c in CONTRASTS})
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "manifest.json").write_text(json.dumps(manifest))
    code = run_process("--t1", inputs["T1"], "--t2", inputs["T2"], "--flair", inputs["FLAIR"], "--output-dir",
                       tmp_path / "out", mode="bridge", weights=tmp_path / "weights")
    assert code == 3 and message in caplog.text and "Traceback" not in caplog.text
    assert len([r for r in caplog.records if r.levelname == "ERROR" and message in r.getMessage()]) == 1
    assert all("\n" not in r.getMessage() for r in caplog.records if r.levelname == "ERROR")
    assert files_under(tmp_path / "out") == []


def test_a_manifest_file_linked_out_of_the_folder_is_refused(tmp_path, tiny_weights):
    weights = tmp_path / "weights"
    shutil.copytree(tiny_weights, weights)
    outside = tmp_path / "elsewhere.pt"
    (weights / "bridge.pt").rename(outside)
    (weights / "bridge.pt").symlink_to(outside)
    with pytest.raises(WeightsError, match="lies outside the weights folder"):
        load_network(weights, "bridge")


@pytest.mark.parametrize("content", [[1, 2, 3], "a string", {"architecture": "SwinUNETRBridge", "state_dict": [1]}])
def test_a_checkpoint_that_is_not_a_mapping_is_refused(tmp_path, tiny_weights, content):
    weights = tmp_path / "weights"
    shutil.copytree(tiny_weights, weights)
    torch.save(content, weights / "bridge.pt")
    manifest = json.loads((weights / "manifest.json").read_text())
    manifest["networks"]["bridge"]["sha256"] = sha256_of(weights / "bridge.pt")
    (weights / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(WeightsError, match="expected a mapping with 'architecture', 'config' and a 'state_dict' mapping"):
        load_network(weights, "bridge")
