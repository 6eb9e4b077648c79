"""The head's box (model/volumes/head_box.py) and the enhancer that runs the networks on it alone
(``head_crop``, model/pipeline/enhancer.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import TEST_WINDOW
from model.config.settings import preset
from model.pipeline.enhancer import Enhancer
from model.volumes.head_box import AIR, crop, head_box, head_mask, paste

SHAPE = (120, 100, 80)
HEAD = ((30, 90), (20, 80), (10, 60))  # the ellipsoid's extent per axis, [start, stop)


def noisy_head(shape=SHAPE, head=HEAD, noise=0.15, seed=0) -> np.ndarray:
    """Three contrasts normalised like the network input: air at -1 with noise (64 mT's background), an ellipsoid
    of tissue at different levels per contrast inside ``head``."""
    rng = np.random.default_rng(seed)
    grid = np.meshgrid(*[np.arange(n) + 0.5 for n in shape], indexing="ij")
    inside = sum(((g - (a + b) / 2) / ((b - a) / 2)) ** 2 for g, (a, b) in zip(grid, head)) <= 1
    volume = np.full((3, *shape), -1.0, dtype=np.float32)
    for channel, level in enumerate((0.2, 0.6, -0.1)):
        volume[channel][inside] = level
    return np.clip(volume + noise * np.abs(rng.standard_normal(volume.shape)), -1, 1).astype(np.float32)


def test_the_box_holds_the_head_and_its_margin_and_no_more():
    box = head_box(noisy_head(), minimum=(1, 1, 1), margin=4)
    for (start, stop), (a, b) in zip(box, HEAD):
        assert a - 4 - 1 <= start <= a - 4 + 1 and b + 4 - 1 <= stop <= b + 4 + 1  # the smoothing moves an edge a voxel


def test_a_bright_speck_apart_from_the_head_does_not_widen_the_box():
    volume = noisy_head()
    volume[:, 110:114, 90:94, 70:74] = 1.0  # a small bright artefact in a corner
    assert head_box(volume, minimum=(1, 1, 1)) == head_box(noisy_head(), minimum=(1, 1, 1))


def test_the_box_is_widened_to_the_window_inside_the_volume():
    box = head_box(noisy_head(head=((50, 70), (40, 60), (2, 20))), minimum=(64, 32, 32), margin=0)
    assert [b - a for a, b in box] == [64, 32, 32]
    assert box[2][0] == 0  # widened inside the volume, not past its face
    assert box[0][0] < 50 and box[0][1] > 70


def test_no_box_for_a_constant_volume_or_a_head_that_fills_it():
    assert head_mask(np.full((3, 20, 20, 20), -1.0, dtype=np.float32)) is None
    assert head_box(np.full((3, 20, 20, 20), -1.0, dtype=np.float32), minimum=(8, 8, 8)) is None
    assert head_box(noisy_head(shape=(40, 40, 30), head=((0, 40), (0, 40), (0, 30))), minimum=(8, 8, 8)) is None


def test_crop_and_paste_invert_each_other_inside_the_box():
    volume = np.random.default_rng(1).standard_normal((3, 10, 9, 8)).astype(np.float32)
    box = ((2, 7), (0, 9), (3, 5))
    pasted = paste(crop(volume, box), box, volume.shape[1:], AIR)
    inside = (slice(None), slice(2, 7), slice(0, 9), slice(3, 5))
    assert np.array_equal(pasted[inside], volume[inside])
    outside = np.ones(volume.shape, bool)
    outside[inside] = False
    assert np.all(pasted[outside] == AIR)


@pytest.mark.parametrize("samples", [1, 2])
def test_head_crop_runs_the_networks_on_the_box_alone(tiny_weights, samples):
    """With head_crop on, the output is the same run on the box, pasted into air: nothing outside the box
    reaches the networks, and the windows are the box's."""
    volume = noisy_head(shape=(100, 80, 72), head=((20, 70), (10, 60), (6, 50)))
    settings = preset("cpu").updated(mode="bridge", window=TEST_WINDOW, compile="off", samples=samples)
    cropped = Enhancer(settings.updated(head_crop="on"), tiny_weights, torch.device("cpu")).enhance(volume)
    whole = Enhancer(settings.updated(head_crop="off"), tiny_weights, torch.device("cpu"))
    box = head_box(volume, minimum=TEST_WINDOW)
    on_box = whole.enhance(crop(volume, box))
    assert cropped.box == box and whole.enhance(volume).box is None
    assert np.array_equal(cropped.volume, paste(on_box.volume, box, volume.shape[1:], AIR))
    assert cropped.counts.windows == on_box.counts.windows < whole.plan(volume.shape[1:]).bridge_windows * samples
    if samples > 1:
        assert np.array_equal(cropped.spread, paste(on_box.spread, box, volume.shape[1:], 0.0))


def test_identity_mode_is_never_cropped(tiny_weights):
    volume = noisy_head(shape=(100, 80, 72), head=((20, 70), (10, 60), (6, 50)))
    settings = preset("cpu").updated(mode="identity", window=TEST_WINDOW, head_crop="on")
    enhancement = Enhancer(settings, tiny_weights, torch.device("cpu")).enhance(volume)
    assert enhancement.box is None and np.array_equal(enhancement.volume, volume)
