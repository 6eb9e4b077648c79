"""The noise schedule (docs/method.md: noise schedule) against MONAI's DDPMScheduler, the schedules a manifest may name, and the sampled levels."""

import math

import pytest
import torch
from monai.networks.schedulers import DDPMScheduler

from model.method.schedule import cosine_schedule, named_schedule, sampling_levels


def test_alpha_bars_match_monai_with_shifted_index():
    ours = cosine_schedule(1000)
    monai = DDPMScheduler(num_train_timesteps=1000, schedule="cosine")
    # MONAI's 0-based alphas_cumprod[i] is our alpha_bar[i + 1] (float32 precision there).
    assert torch.allclose(ours.alpha_bars[1:], monai.alphas_cumprod.double(), atol=1e-6, rtol=0)
    assert torch.allclose(ours.betas[1:], monai.betas.double(), atol=1e-4, rtol=0)


def test_clean_level_and_monotonicity():
    s = cosine_schedule(1000)
    assert s.alpha_bars[0] == 1 and s.betas[0] == 0 and s.num_timesteps == 1000
    assert torch.all(s.alpha_bars[1:] < s.alpha_bars[:-1])
    assert s.betas.max() <= 0.999


def test_closed_form_at_a_midpoint():
    """Before clipping bites, alpha_bar(t) is f(t)/f(0) with f the squared cosine."""
    t, T, offset = 400, 1000, 0.008
    f = lambda u: math.cos((u / T + offset) / (1 + offset) * math.pi / 2) ** 2  # noqa: E731
    assert math.isclose(float(cosine_schedule(T).alpha_bars[t]), f(t) / f(0), rel_tol=1e-9)


def test_sampling_levels_uniform_equal_the_strided_levels_when_the_count_divides_k():
    for k, stride in ((400, 1), (400, 8), (400, 100), (10, 5), (2, 1)):
        assert sampling_levels(k, k // stride) == tuple(range(k, 0, -stride))
    assert sampling_levels(400, 4, "quadratic") == (400, 225, 100, 25)  # 400 (j/4)^2, j = 4..1


def test_sampling_levels_start_at_k_and_descend_within_1_k():
    for k, n, spacing in ((400, 134, "uniform"), (7, 3, "uniform"), (400, 400, "quadratic"), (5, 5, "quadratic")):
        levels = sampling_levels(k, n, spacing)
        assert levels[0] == k and all(1 <= t <= k for t in levels)
        assert list(levels) == sorted(set(levels), reverse=True)
    assert len(sampling_levels(400, 134)) == 134  # uniform: exactly the count asked for


def test_sampling_levels_refuse_a_bad_count_or_spacing():
    with pytest.raises(ValueError, match="level count"):
        sampling_levels(10, 11)
    with pytest.raises(ValueError, match="spacing"):
        sampling_levels(10, 5, "cubic")


def test_named_schedule_is_the_cosine_schedule_and_refuses_unknown_names():
    named = named_schedule("cosine", 500)
    assert named.name == "cosine" and torch.equal(named.alpha_bars, cosine_schedule(500).alpha_bars)
    with pytest.raises(ValueError, match="unknown noise schedule"):
        named_schedule("linear", 1000)
