"""The weights manifest: save, load, and clear refusals."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from conftest import tiny_networks
from model.errors import WeightsError
from model.method.schedule import cosine_schedule
from model.weights.manifest import load_network, load_schedule, save_networks, untrained_networks


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
    from model.weights.manifest import sha256_of
    manifest["networks"]["diffusion"]["sha256"] = sha256_of(other / "diffusion.pt")
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(WeightsError, match="do not fit its configuration"):
        load_network(other, "diffusion")


def test_manifest_records_the_schedule_and_old_manifests_read_as_cosine_1000(weights, caplog):
    manifest = json.loads((weights / "manifest.json").read_text())
    assert manifest["schedule"] == {"name": "cosine", "timesteps": 1000}
    save_networks(weights, tiny_networks(), trained=False, provenance={}, schedule=cosine_schedule(500))
    assert load_schedule(weights).num_timesteps == 500
    del manifest["schedule"]
    (weights / "manifest.json").write_text(json.dumps(manifest))
    caplog.set_level("INFO", logger="model.weights.manifest")
    old = load_schedule(weights)
    assert old.name == "cosine" and old.num_timesteps == 1000 and "records no noise schedule" in caplog.text
    (weights / "manifest.json").write_text(json.dumps({**manifest, "schedule": {"name": "linear", "timesteps": 10}}))
    with pytest.raises(WeightsError, match="malformed 'schedule'"):
        load_schedule(weights)


def test_shipped_manifest_names_its_schedule():
    assert load_schedule(Path(__file__).resolve().parent.parent / "weights").num_timesteps == 1000


def test_bridge_timestep_is_checked_against_the_weights_schedule(weights):
    from model.pipeline.enhancer import Enhancer
    from model.config.settings import preset

    save_networks(weights, tiny_networks(), trained=False, provenance={}, schedule=cosine_schedule(300))
    with pytest.raises(ValueError, match=r"--bridge-timestep must be in 1\.\.300"):
        Enhancer(preset("smoke").updated(bridge_timestep=400), weights, torch.device("cpu"))
    assert Enhancer(preset("smoke").updated(bridge_timestep=300), weights, torch.device("cpu")).schedule.num_timesteps == 300


def test_settings_outside_the_trained_timesteps_are_warned_about(tiny_weights, tmp_path, caplog):
    """The manifest's provenance says which t each network trained on; K or levels outside it warn, inside do not."""
    import json
    import logging
    import shutil

    from model.pipeline.enhancer import warn_outside_training
    from model.config.settings import PRESETS
    from model.weights.manifest import trained_timesteps

    folder = tmp_path / "weights"
    shutil.copytree(tiny_weights, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    for name, section in (("diffusion", {"t_min": 1, "t_max": 250}), ("bridge", {"t_min": 50, "t_max": 250})):
        manifest["networks"][name]["provenance"] = {name: {"training_config": {name: section}}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert trained_timesteps(folder, "bridge") == (50, 250) and trained_timesteps(tiny_weights, "bridge") is None
    with caplog.at_level(logging.WARNING, logger="model.pipeline.enhancer"):
        warn_outside_training(PRESETS["paper"].updated(bridge_timestep=100, chain_levels=(10, 1)), folder)
        assert caplog.text == ""
        warn_outside_training(PRESETS["paper"], folder)  # K = 400 and levels 400..1
    assert "bridge network" in caplog.text and "t = 50..250" in caplog.text and "t = 400" in caplog.text
    assert "diffusion network" in caplog.text


def test_save_networks_records_this_codes_intensity_normalisation(weights):
    from model.volumes.intensity import HIGH_PERCENTILE, LOW_PERCENTILE, OUTPUT_CEILING, normalisation_record

    recorded = json.loads((weights / "manifest.json").read_text())["intensity"]
    assert recorded == normalisation_record()
    assert recorded["input_percentiles"] == [LOW_PERCENTILE, HIGH_PERCENTILE] == [0.5, 99.5]
    assert recorded["target_ceiling"] == OUTPUT_CEILING == 1.25 and recorded["output_clip"] == [-1.0, 1.25]
    assert recorded["input_clip"] == [-1.0, 1.0]


def test_weights_trained_with_another_output_ceiling_are_refused_naming_both(weights):
    manifest = json.loads((weights / "manifest.json").read_text())
    manifest["intensity"].update(target_ceiling=1.0, output_clip=[-1.0, 1.0])  # the clip at 1 before OUTPUT_CEILING
    (weights / "manifest.json").write_text(json.dumps(manifest))
    for load in (lambda: load_network(weights, "diffusion"), lambda: load_schedule(weights)):
        with pytest.raises(WeightsError) as refused:
            load()
        message = str(refused.value)
        assert "\n" not in message and "trained with intensity normalisation" in message
        assert '"target_ceiling": 1.0' in message and '"target_ceiling": 1.25' in message  # both records
        assert "target_ceiling: 1.0 vs 1.25" in message and "output_clip: [-1.0, 1.0] vs [-1.0, 1.25]" in message
    manifest["intensity"] = "percentile"
    (weights / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(WeightsError, match="'intensity' is a JSON str"):
        load_network(weights, "bridge")


def test_a_manifest_without_intensity_is_read_as_this_codes_and_logged_once(weights, caplog):
    manifest = json.loads((weights / "manifest.json").read_text())
    del manifest["intensity"]
    (weights / "manifest.json").write_text(json.dumps(manifest))
    caplog.set_level("INFO", logger="model.weights.manifest")
    load_schedule(weights)
    load_network(weights, "diffusion")
    load_network(weights, "bridge")
    assert caplog.text.count("records no intensity normalisation") == 1


def test_shipped_manifest_records_the_normalisation_and_an_honest_lineage():
    """The shipped weights name how they see intensities, the commit that trained each network, and where each
    started, by checksum, back through the earlier shipped networks."""
    from model.volumes.intensity import normalisation_record

    manifest = json.loads((Path(__file__).resolve().parent.parent / "weights" / "manifest.json").read_text())
    assert manifest["intensity"] == normalisation_record()
    entries = manifest["networks"]
    for entry in entries.values():
        provenance = entry["provenance"]
        assert "code_version" not in provenance and len(provenance["export_code_version"]) >= 40
        for name in ("diffusion", "bridge"):
            assert provenance[name]["code_version"]  # the commit that trained it (recorded or reconstructed)
        diffusion, bridge = provenance["diffusion"], provenance["bridge"]
        start = diffusion["initialised_from"]  # phase 4 started from phase 3's shipped network
        assert len(start["sha256"]) == 64 and start["file"] == "diffusion.pt"
        assert start["sha256"] != entries["diffusion"]["sha256"]
        assert len(start["provenance"]["diffusion"]["initialised_from"]["sha256"]) == 64  # and that one from phase 2's
        assert bridge["copied_from"]["sha256"] == entries["bridge"]["sha256"]  # the bridge kept unchanged
        assert bridge["initialised_from"]["sha256"] == \
            "e6c9321f9b2438613af34fcf1bcbaecbdf2fe55fe71ba8893022b3d150dfa10e"  # weights/bridge.pt at f030c9f
