"""Algorithm 1 and the ablation modes (SPEC 3.5, 3.6)."""

import pytest
import torch

from model.operators import RemoveNoiseVariant
from model.sampler import Mode, sample
from model.schedule import cosine_schedule
from model.windows import evaluate_in_windows, plan_windows

SCHEDULE = cosine_schedule()


def x0_lf(seed=0, shape=(1, 3, 12, 10, 6)):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


class CountingDenoiser:
    """A deterministic stand-in for eps_theta over the whole volume that counts its calls."""

    def __init__(self):
        self.levels = []

    def __call__(self, x_t, t):
        self.levels.append(t)
        return 0.5 * torch.tanh(x_t) * (t / 1000)


def run(mode, seed=0, denoiser=None, bridge=lambda x: 0.1 * x, **kw):
    return sample(x0_lf(), mode=mode, denoiser=denoiser or CountingDenoiser(), bridge_residual=bridge,
                  schedule=SCHEDULE, generator=torch.Generator().manual_seed(seed), **kw)


def test_identity_returns_the_input():
    assert torch.equal(run(Mode.IDENTITY, bridge_timestep=5), x0_lf())


def test_bridge_only_with_a_zero_bridge_returns_its_input():
    """Ablation 2: noising to K and removing the same noise perfectly is the identity."""
    out = run(Mode.BRIDGE, bridge=torch.zeros_like, bridge_timestep=400)
    assert torch.allclose(out, x0_lf(), atol=1e-5)


def test_bridge_only_adds_the_denoised_residual():
    """x0_hat = x0 + phi(x_K) / sqrt(alpha_bar_K): the bridge's change, with the known noise removed."""
    out = run(Mode.BRIDGE, bridge=lambda x: torch.full_like(x, 0.1), bridge_timestep=400)
    expected = x0_lf() + 0.1 / float(SCHEDULE.alpha_bars[400]) ** 0.5
    assert torch.allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize("mode", list(Mode))
def test_all_modes_run_and_are_seeded(mode):
    a, b, c = run(mode, seed=1, bridge_timestep=6), run(mode, seed=1, bridge_timestep=6), run(mode, seed=2, bridge_timestep=6)
    assert a.shape == x0_lf().shape and torch.isfinite(a).all()
    assert torch.equal(a, b)
    if mode is not Mode.IDENTITY:
        assert not torch.equal(a, c)


@pytest.mark.parametrize("K,J", [(5, 3), (4, 1)])
def test_denoiser_calls_are_K_times_J_in_order(K, J):
    denoiser = CountingDenoiser()
    run(Mode.FULL, denoiser=denoiser, bridge_timestep=K, refinements=J)
    assert denoiser.levels == [level for level in range(K, 0, -1) for _ in range(J)]


def test_window_evaluations_follow_K_J_and_the_grid():
    """Network calls over windows = (K * J evaluations + 1 bridge) x windows per evaluation."""
    calls = {"unet": 0, "bridge": 0}
    x = x0_lf(shape=(1, 3, 20, 18, 9))
    plan = plan_windows(x.shape[2:], (8, 8, 4), 0.5)

    def windows(name):
        def fn(batch):
            calls[name] += batch.shape[0]
            return torch.zeros_like(batch)
        return fn

    sample(x, mode=Mode.FULL, denoiser=lambda x_t, t: evaluate_in_windows(windows("unet"), x_t, plan, 3),
           bridge_residual=lambda v: evaluate_in_windows(windows("bridge"), v, plan, 3), schedule=SCHEDULE,
           generator=torch.Generator().manual_seed(0), bridge_timestep=4, refinements=2)
    assert calls == {"unet": 4 * 2 * plan.num_windows, "bridge": plan.num_windows}


def test_strided_levels_visit_only_those_levels():
    denoiser = CountingDenoiser()
    run(Mode.DIFFUSION, denoiser=denoiser, bridge_timestep=10, refinements=1, levels=(10, 7, 4, 1))
    assert denoiser.levels == [10, 7, 4, 1]


def test_diffusion_only_ignores_the_bridge():
    ones = lambda x: torch.ones_like(x)  # noqa: E731
    assert torch.equal(run(Mode.DIFFUSION, bridge=ones, bridge_timestep=3), run(Mode.DIFFUSION, bridge=None, bridge_timestep=3))


def test_posterior_mean_variant_differs():
    a = run(Mode.FULL, bridge_timestep=3)
    b = run(Mode.FULL, bridge_timestep=3, variant=RemoveNoiseVariant.POSTERIOR_MEAN)
    assert not torch.allclose(a, b)


def test_missing_networks_and_bad_levels_are_refused():
    with pytest.raises(ValueError, match="needs the bridge"):
        run(Mode.FULL, bridge=None, bridge_timestep=3)
    with pytest.raises(ValueError, match="levels must lie"):
        run(Mode.FULL, bridge_timestep=3, levels=(5, 1))
