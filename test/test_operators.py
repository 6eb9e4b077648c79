"""AddNoise / RemoveNoise (eqs. 10, 11)."""

import math

import pytest
import torch

from model.method.operators import RemoveNoiseVariant, add_noise, estimate_x0, posterior_mean, remove_noise
from model.method.schedule import cosine_schedule

SCHEDULE = cosine_schedule()


@pytest.mark.parametrize("t", [1, 250, 400, 999])
def test_add_then_remove_with_the_true_noise_returns_x0(t):
    g = torch.Generator().manual_seed(t)
    x0 = torch.rand(1, 3, 8, 8, 4, generator=g) * 2 - 1
    noise = torch.randn(x0.shape, generator=g)
    x_t = add_noise(x0, noise, t, SCHEDULE)
    # float32 rounding of x_t is amplified by sqrt((1 - alpha_bar) / alpha_bar) when dividing it out
    alpha_bar = float(SCHEDULE.alpha_bars[t])
    tolerance = 1e-6 * (1 + 4 * math.sqrt((1 - alpha_bar) / alpha_bar))
    assert torch.allclose(remove_noise(x_t, noise, t, SCHEDULE), x0, atol=tolerance, rtol=0)


def test_add_noise_variance_preserving():
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(200_000, generator=g)
    x_t = add_noise(torch.zeros_like(noise), noise, 400, SCHEDULE)
    assert math.isclose(float(x_t.var()), 1 - float(SCHEDULE.alpha_bars[400]), rel_tol=0.02)


def test_posterior_mean_is_eq_11():
    t = 400
    x_t, eps = torch.tensor([0.7]), torch.tensor([-0.3])
    alpha_bar = float(torch.prod(SCHEDULE.alphas[1 : t + 1]))
    beta = float(SCHEDULE.betas[t])
    expected = (0.7 - beta / math.sqrt(1 - alpha_bar) * -0.3) / math.sqrt(1 - beta)
    assert math.isclose(float(posterior_mean(x_t, eps, t, SCHEDULE)), expected, rel_tol=1e-6)
    assert torch.equal(remove_noise(x_t, eps, t, SCHEDULE, RemoveNoiseVariant.POSTERIOR_MEAN), posterior_mean(x_t, eps, t, SCHEDULE))


def test_levels_outside_the_schedule_are_refused():
    with pytest.raises(ValueError, match="outside 1..1000"):
        add_noise(torch.zeros(1), torch.zeros(1), 0, SCHEDULE)


def test_per_sample_timesteps_equal_one_level_at_a_time():
    """Training draws one t per sample; the same eq. 10 and x0 estimate, sample by sample."""
    generator = torch.Generator().manual_seed(0)
    x0 = torch.rand(3, 3, 8, 8, 4, generator=generator) * 2 - 1
    noise = torch.randn(x0.shape, generator=generator)
    t = torch.tensor([1, 400, 1000])
    batched = add_noise(x0, noise, t, SCHEDULE)
    back = estimate_x0(batched, noise, t, SCHEDULE)
    for i, level in enumerate(t.tolist()):
        expected = add_noise(x0[i : i + 1], noise[i : i + 1], level, SCHEDULE)
        assert torch.equal(batched[i : i + 1], expected)
        assert torch.equal(back[i : i + 1], estimate_x0(expected, noise[i : i + 1], level, SCHEDULE))
    with pytest.raises(ValueError, match="1..1000"):
        add_noise(x0, noise, torch.tensor([0, 1, 2]), SCHEDULE)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("t", [2, 10, 25, 100, 400, 900])
def test_remove_noise_at_the_level_of_add_noise_is_exact_to_a_few_ulps(t, dtype):
    """RemoveNoise(AddNoise(x0, eps, t), eps, t) = x0 (eq. 10 and the default x0 reading of RemoveNoise,
    Algorithm 1 lines 4 and 8): to 4 ulps of |x0| + |x_t| / sqrt(alpha_bar_t) elementwise (the rounding of
    x_t, amplified by the division), and only at the level the noise was added at: RemoveNoise at t - 1 or
    t + 1 misses x0 by far more than that."""
    g = torch.Generator().manual_seed(t)
    x0 = (torch.rand(1, 3, 8, 8, 4, generator=g, dtype=torch.float64) * 2 - 1).to(dtype)
    noise = torch.randn(x0.shape, generator=g, dtype=torch.float64).to(dtype)
    x_t = add_noise(x0, noise, t, SCHEDULE)
    tolerance = 4 * torch.finfo(dtype).eps * (x0.abs() + x_t.abs() / math.sqrt(float(SCHEDULE.alpha_bars[t])))
    assert bool(((remove_noise(x_t, noise, t, SCHEDULE) - x0).abs() <= tolerance).all())
    for wrong in (t - 1, t + 1):
        assert float(((remove_noise(x_t, noise, wrong, SCHEDULE) - x0).abs() / tolerance).max()) > 100
