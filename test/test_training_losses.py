"""The training stage's pieces on known inputs: loss terms, configuration, data split, patches."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from model.method.schedule import cosine_schedule
from training import losses
from training.cli import apply_overrides
from training.config import DataConfig, RunConfig, load_config
from training.data import split_subjects
from training.patches import PatchDataset, StepBatches, TimestepDraw, cut, patch_start

SCHEDULE = cosine_schedule()
CONFIGS = Path(__file__).resolve().parent.parent / "training" / "configs"


def test_sobel_response_of_a_linear_ramp():
    a, b, c = 0.01, -0.02, 0.005
    x, y, z = torch.meshgrid(torch.arange(9.0), torch.arange(7.0), torch.arange(6.0), indexing="ij")
    ramp = (a * x + b * y + c * z)[None, None].repeat(2, 3, 1, 1, 1)
    responses = losses.sobel_responses(ramp)
    assert responses.shape == (2, 3, 3, 7, 5, 4)
    for axis, slope in enumerate((a, b, c)):  # 2 (central difference) x 16 (the two [1, 2, 1] smoothings)
        torch.testing.assert_close(responses[:, :, axis], torch.full_like(responses[:, :, axis], 32 * slope))
    expected = math.tanh(32 * math.sqrt(a * a + b * b + c * c))
    torch.testing.assert_close(losses.gradient_magnitude(ramp), torch.full((2, 3, 7, 5, 4), expected))
    torch.testing.assert_close(losses.gradient_magnitude(ramp, scale=1 / 32),
                               torch.full((2, 3, 7, 5, 4), math.tanh(math.sqrt(a * a + b * b + c * c))))
    assert losses.sobel_loss(ramp, ramp).item() == 0.0
    flat = torch.zeros_like(ramp)
    torch.testing.assert_close(losses.sobel_loss(ramp, flat), torch.tensor(expected), atol=1e-5, rtol=1e-5)


def test_ssim_of_identical_and_of_different_patches():
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 16, 16, 12, generator=generator) * 2 - 1
    assert losses.ssim_loss(x, x).item() == pytest.approx(0.0, abs=1e-6)
    noisy = x + 0.5 * torch.randn(x.shape, generator=generator)
    assert 0.1 < losses.ssim_loss(noisy, x).item() < 2.0


def test_mse_terms_on_known_inputs():
    a, b = torch.zeros(2, 3, 4, 4, 4), torch.full((2, 3, 4, 4, 4), 0.5)
    assert losses.noise_loss(a, b).item() == pytest.approx(0.25)
    assert losses.latent_alignment_loss(a, b).item() == pytest.approx(0.25)
    assert losses.clean_estimate_loss(b, a).item() == pytest.approx(0.25)
    assert losses.identity_loss(b).item() == pytest.approx(0.25)


def test_config_round_trip_and_unknown_keys(tmp_path):
    config = load_config(CONFIGS / "cpu-small.toml")
    assert RunConfig.from_dict(config.to_dict()) == config
    assert config.diffusion.network.window == (64, 64, 32)  # the network window defaults to the patch
    paper = load_config(CONFIGS / "paper.toml")
    assert paper.data.patch == (128, 128, 32) and paper.train.lr == 3e-4
    assert (paper.bridge.t_min, paper.bridge.t_max) == (250, 750)
    with pytest.raises(ValueError, match="train.stpes"):
        RunConfig.from_dict({"train": {"stpes": 3}})
    with pytest.raises(ValueError, match="unknown"):
        RunConfig.from_dict({"diffusion": {"network": {"channels": 3}}})
    with pytest.raises(ValueError, match="data.kind"):
        RunConfig.from_dict({"data": {"kind": "nifti"}})
    path = tmp_path / "run.json"
    path.write_text('{"train": {"steps": 7}}')
    assert load_config(path).train.steps == 7
    overridden = apply_overrides(config.to_dict(), ["train.steps=11", "data.kind=ulf-enc", "data.root=/x", "data.patch=[32,32,32]"])
    resolved = RunConfig.from_dict(overridden)
    assert (resolved.train.steps, resolved.data.kind, resolved.data.patch) == (11, "ulf-enc", (32, 32, 32))


def test_subject_split_is_seeded_and_subject_level():
    subjects = [f"S{i:02d}" for i in range(10)]
    split = split_subjects(subjects, DataConfig(validation_fraction=0.2), seed=4)
    assert len(split["validation"]) == 2 and sorted(split["train"] + split["validation"]) == subjects
    assert split == split_subjects(subjects, DataConfig(validation_fraction=0.2), seed=4)
    assert split_subjects(subjects[:2], DataConfig(validation_fraction=0.1), seed=0)["validation"]  # at least one
    explicit = split_subjects(subjects, DataConfig(validation_subjects=("S03",)), seed=0)
    assert explicit["validation"] == ["S03"] and "S03" not in explicit["train"]


class _Subject:
    """An in-memory stand-in for a prepared subject."""

    def __init__(self, value: float, shape=(20, 18, 10)):
        self.high = np.full((3, *shape), value, dtype=np.float32)
        self.low = self.high - 0.5
        self.head = np.arange(10, 200)


def test_patches_are_functions_of_step_and_slot_and_split_over_processes():
    dataset = PatchDataset([_Subject(0.1), _Subject(0.2), _Subject(0.3)], (8, 8, 16), 0.9, TimestepDraw(250, 750), True,
                           seed=5)
    one = [dataset[key] for key in next(iter(StepBatches(3, 4, 4, rank=0, world_size=1)))]
    halves = [dataset[key] for rank in (0, 1) for key in next(iter(StepBatches(3, 4, 4, rank, world_size=2)))]
    for a, b in zip(one, halves):
        for key in a:
            assert torch.equal(a[key], b[key])
    assert one[0]["high"].shape == (3, 8, 8, 16)  # z padded from 10 to 16 with the background value
    assert one[0]["high"][0, 0, 0, 0].item() == -1.0 and 250 <= int(one[0]["t"]) <= 750
    assert len({float(s["high"][0, 4, 4, 8]) for s in one[:3]}) == 3  # three slots, three different subjects
    with pytest.raises(ValueError, match="evenly"):
        StepBatches(0, 1, 3, rank=0, world_size=2)


def test_patch_position_is_clipped_to_the_volume():
    assert patch_start((100, 50, 20), (64, 32, 32), (5, 49, 10)) == (0, 18, 0)
    volume = np.arange(2 * 4 * 4 * 4, dtype=np.float32).reshape(2, 4, 4, 4)
    assert cut(volume, (1, 0, 0), (2, 4, 4)).tolist() == volume[:, 1:3].tolist()
