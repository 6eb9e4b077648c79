"""The cosine schedule against MONAI's DDPMScheduler (SPEC 3.1)."""

import math

import torch
from monai.networks.schedulers import DDPMScheduler

from model.schedule import cosine_schedule


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
