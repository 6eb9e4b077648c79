"""One override syntax (model/cli/options.py): key=value items typed by the settings' fields."""

import argparse

import pytest
import torch

from model.execution.device import select_device
from model.errors import DeviceError
from model.cli.options import add_crop, add_device, add_weights, device_name, add_window, configured, parse_overrides, window_of
from model.config.settings import PRESETS, SamplerSettings


def test_overrides_are_typed_by_the_fields():
    changes = parse_overrides(["level_stride=8,refinements=2", "window=[64, 64, 32],overlap=1", "mode=bridge"])
    assert changes == {"level_stride": 8, "refinements": 2, "window": (64, 64, 32), "overlap": 1.0, "mode": "bridge"}
    assert isinstance(changes["overlap"], float)
    assert parse_overrides(["channels_last=true,early_overlap=0.5"]) == {"channels_last": True, "early_overlap": 0.5}


@pytest.mark.parametrize("bad,message", [("level_stride=8.5", "type int"), ("refine_tolerance=1e-3", "unknown setting"),
                                         ("mode=everything", "must be one of"), ("overlap", "KEY=VALUE"),
                                         ("channels_last=1", "type bool")])
def test_bad_overrides_are_refused_by_name(bad, message):
    with pytest.raises(ValueError, match=message):
        parse_overrides([bad])


def test_configurations_start_from_a_preset():
    assert configured("preset:cpu") == PRESETS["cpu"]
    assert configured("preset:cpu,refinements=2") == PRESETS["cpu"].updated(refinements=2)
    assert configured("level_stride=8") == PRESETS["paper"].updated(level_stride=8)
    assert configured("mode=identity", base="smoke").algorithm.mode.value == "identity"
    with pytest.raises(ValueError, match="unknown preset"):
        configured("preset:turbo")


def test_settings_route_changes_to_their_concern_and_validate_there():
    s = SamplerSettings().updated(refinements=1, overlap=0.25)
    assert s.algorithm.refinements == 1 and s.engine.overlap == 0.25
    assert s.to_dict()["refinements"] == 1 and s.to_dict()["window"] == [128, 128, 32]
    with pytest.raises(ValueError, match="--overlap"):
        s.updated(overlap=1.0)
    with pytest.raises(ValueError, match="--refine"):
        s.updated(refinements=0)


def test_shared_arguments():
    parser = argparse.ArgumentParser()
    for add in (add_device, add_weights, add_window, add_crop):
        add(parser)
    args = parser.parse_args(["--device", "cpu", "--window", "64", "64", "32", "--crop", "40", "44", "20"])
    assert args.device == "cpu" and window_of(args) == (64, 64, 32) and args.crop == [40, 44, 20]
    assert args.weights.name == "weights" and window_of(parser.parse_args([])) is None


def test_an_explicit_chain_is_parsed_and_must_descend_within_k():
    from model.cli.options import parse_overrides

    changes = parse_overrides(["bridge_timestep=150,chain_levels=[40, 10, 1]"])
    assert changes == {"bridge_timestep": 150, "chain_levels": (40, 10, 1)}
    assert PRESETS["paper"].updated(**changes).algorithm.chain_levels == (40, 10, 1)
    for bad in ((10, 40), (200, 1), (5, 5), (0,)):
        with pytest.raises(ValueError, match="chain_levels must descend"):
            PRESETS["paper"].updated(bridge_timestep=150, chain_levels=bad)


def test_device_names_accept_a_gpu_index_and_refuse_others():
    assert [device_name(d) for d in ("auto", "cpu", "cuda", "cuda:0", "cuda:12")] == \
        ["auto", "cpu", "cuda", "cuda:0", "cuda:12"]
    for bad in ("gpu", "cuda:", "cuda:-1", "cuda:x", "cuda0"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected auto, cpu, cuda or cuda:N"):
            device_name(bad)


def test_a_gpu_index_is_checked_against_the_gpus_present(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert select_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(DeviceError, match=r"--device cuda:2 was asked for, but this machine has GPUs 0\.\.1"):
        select_device("cuda:2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="has no CUDA device"):
        select_device("cuda:0")
    assert select_device("cpu") == torch.device("cpu")
