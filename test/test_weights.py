"""The weights manifest: save, load, and clear refusals."""

import json
import shutil

import pytest
import torch

from conftest import tiny_networks
from model.errors import WeightsError
from model.weights import load_network, save_networks, untrained_networks


@pytest.fixture
def weights(tmp_path):
    save_networks(tmp_path, tiny_networks(), trained=False, provenance={"source": "test"})
    return tmp_path


def test_round_trip_gives_identical_weights(weights):
    original = tiny_networks()["diffusion"]
    loaded = load_network(weights, "diffusion")
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    for (name, a), (_, b) in zip(original.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    assert untrained_networks(weights) == ["diffusion", "bridge"]


def test_missing_manifest_and_file(tmp_path, weights):
    with pytest.raises(WeightsError, match="no weights manifest"):
        load_network(tmp_path / "nowhere", "diffusion")
    (weights / "bridge.pt").unlink()
    with pytest.raises(WeightsError, match="bridge weights file missing"):
        load_network(weights, "bridge")


def test_truncated_file_fails_its_checksum(weights):
    data = (weights / "diffusion.pt").read_bytes()
    (weights / "diffusion.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="fail their checksum"):
        load_network(weights, "diffusion")


def test_configuration_mismatch_is_named(weights):
    manifest = json.loads((weights / "manifest.json").read_text())
    manifest["networks"]["diffusion"]["config"]["model_channels"] = 12
    (weights / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(WeightsError, match="does not match"):
        load_network(weights, "diffusion")


def test_weights_that_do_not_fit_the_architecture(tmp_path, weights):
    """A file whose stored config agrees with the manifest but whose tensors belong to another network."""
    other = tmp_path / "other"
    shutil.copytree(weights, other)
    bridge = torch.load(other / "bridge.pt", weights_only=True)
    diffusion = torch.load(other / "diffusion.pt", weights_only=True)
    torch.save({**diffusion, "state_dict": bridge["state_dict"]}, other / "diffusion.pt")
    manifest = json.loads((other / "manifest.json").read_text())
    from model.weights import sha256_of
    manifest["networks"]["diffusion"]["sha256"] = sha256_of(other / "diffusion.pt")
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(WeightsError, match="do not fit its configuration"):
        load_network(other, "diffusion")
