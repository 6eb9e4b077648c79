"""Low-field intensity augmentation (training/augment.py) and the timestep draw (training/patches.py)."""

from __future__ import annotations

import numpy as np
import torch

from training.augment import augment_low_field
from training.patches import TimestepDraw


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_augmentation_stays_in_range_is_seeded_and_changes_each_contrast_differently():
    low = torch.linspace(-1, 1, 3 * 16 * 16 * 8).reshape(3, 16, 16, 8)
    a, b = augment_low_field(low, _generator(1)), augment_low_field(low, _generator(1))
    assert torch.equal(a, b) and a.shape == low.shape
    assert a.min() >= -1 and a.max() <= 1
    assert not torch.equal(a, augment_low_field(low, _generator(2)))
    shifts = [(a[c] - low[c]).mean().item() for c in range(3)]
    assert len({round(s, 6) for s in shifts}) == 3  # independent draws per contrast


def test_augmentation_keeps_the_order_of_intensities_up_to_its_noise():
    """Gamma and gain are monotone: without noise the map must keep every pair's order (noise sd <= 0.04)."""
    low = torch.linspace(-1, 1, 1000).reshape(1, 10, 10, 10)
    out = augment_low_field(low, _generator(3)).flatten()
    # over a span of 0.5 the monotone part moves by far more than a few noise sds
    assert (out[750:].mean() - out[:250].mean()) > 0.3


def test_uniform_timesteps_cover_the_range_and_power_concentrates_at_low_t():
    uniform = TimestepDraw(1, 250)
    low_biased = TimestepDraw(1, 250, power=2.0)
    draws_u = torch.stack([uniform(_generator(i)) for i in range(4000)]).numpy()
    draws_p = torch.stack([low_biased(_generator(i)) for i in range(4000)]).numpy()
    for draws in (draws_u, draws_p):
        assert draws.min() >= 1 and draws.max() <= 250 and draws.dtype == np.int64
    # P(t <= 63) is 63/250 = 0.25 uniformly and sqrt(63/250) = 0.50 with power 2 (binomial sd < 0.01)
    assert abs((draws_u <= 63).mean() - 0.252) < 0.04
    assert abs((draws_p <= 63).mean() - 0.502) < 0.04
    assert TimestepDraw(7, 7, power=3.0)(_generator(0)).item() == 7
