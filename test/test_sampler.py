"""Algorithm 1 and the ablation modes (docs/method.md: Algorithm 1, the ablations)."""

import numpy as np
import pytest
import torch

from model.config.settings import AlgorithmSettings
from model.method.operators import RemoveNoiseVariant
from model.method.sampler import Mode, sample
from model.method.schedule import cosine_schedule
from model.execution.windows import evaluate_in_windows, plan_windows

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


def run(mode, seed=0, denoiser=None, bridge=lambda x: 0.1 * x, refinements=3, **kw):
    return sample(x0_lf(), refinements=refinements, mode=mode, denoiser=denoiser or CountingDenoiser(), bridge_residual=bridge,
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
    """The sampler refuses a missing network; K, J and the levels are the settings' to check (the sampler
    trusts them), each in one place."""
    with pytest.raises(ValueError, match="needs the bridge"):
        run(Mode.FULL, bridge=None, bridge_timestep=3)
    with pytest.raises(ValueError, match="chain_levels must descend strictly within 1..K=3"):
        AlgorithmSettings(bridge_timestep=3, chain_levels=(5, 1))
    with pytest.raises(ValueError, match="--refine must be at least 1"):
        AlgorithmSettings(refinements=0)
    for k in (0, 1001):
        with pytest.raises(ValueError, match="--bridge-timestep must be in 1..1000"):
            AlgorithmSettings(bridge_timestep=k).check_against(SCHEDULE)


# --- Reference replays of Algorithm 1's arithmetic (the paper's lines 1-9, eqs. 8, 10, 11) -----------------
#
# The fakes below record what the sampler hands the networks; the tests recompute every step in float64 from
# the paper's formulas and the seeded generator's draws (the bridge's draw first, then one per level), and
# compare with tolerances of a few float32 ulps scaled by the magnitudes involved.

ULP32 = torch.finfo(torch.float32).eps


def _root(t):
    """(sqrt(alpha_bar_t), sqrt(1 - alpha_bar_t)) in float64."""
    alpha_bar = float(SCHEDULE.alpha_bars[t])
    return alpha_bar ** 0.5, (1.0 - alpha_bar) ** 0.5


def ref_add_noise(x, eps, t):
    """Eq. 10 in float64: sqrt(alpha_bar_t) x + sqrt(1 - alpha_bar_t) eps."""
    a, s = _root(t)
    return a * x.double() + s * eps.double()


def ref_remove_noise(x_t, eps, t):
    """RemoveNoise, the x0 reading (the inverse of eq. 10), in float64."""
    a, s = _root(t)
    return (x_t.double() - s * eps.double()) / a


def ulps(*magnitudes, factor=8):
    """An elementwise float32 rounding bound: ``factor`` ulps of the sum of the magnitudes involved."""
    return factor * ULP32 * sum(m.double().abs() for m in magnitudes)


def close(actual, expected, tolerance):
    return bool(((actual.double() - expected.double()).abs() <= tolerance).all())


def draws(seed, shape, count):
    """The first ``count`` standard normal draws of a generator seeded like the sampler's."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g) for _ in range(count)]


class RecordingDenoiser:
    """A deterministic, t-dependent stand-in for eps_theta that records each (x_t, t, eps) it sees and returns."""

    def __init__(self, fn=lambda x_t, t: 0.5 * torch.tanh(x_t) * (t / 10) + 0.05):
        self.fn, self.calls = fn, []

    def __call__(self, x_t, t):
        eps = self.fn(x_t, t)
        self.calls.append((x_t.clone(), t, eps.clone()))
        return eps


class RecordingBridge:
    """phi(x) = 0.1 tanh(x) + 0.02, recording its input and output."""

    def __init__(self):
        self.calls = []

    def __call__(self, x):
        out = 0.1 * torch.tanh(x) + 0.02
        self.calls.append((x.clone(), out.clone()))
        return out


def run_recorded(*, seed=3, shape=(1, 3, 6, 5, 4), mode=Mode.FULL, K=6, levels=None, J=3, denoiser=None):
    x = x0_lf(seed=seed, shape=shape)
    denoiser, bridge, estimates = denoiser or RecordingDenoiser(), RecordingBridge(), []
    out = sample(x, mode=mode, denoiser=denoiser, bridge_residual=bridge, schedule=SCHEDULE,
                 generator=torch.Generator().manual_seed(seed), bridge_timestep=K, refinements=J, levels=levels,
                 on_estimate=lambda step, t, before, after: estimates.append((step, t, before.clone(), after.clone())))
    return x, out, denoiser, bridge, estimates


def replay_bridge(x, bridge, eps_k, K):
    """Lines 1-4 / eq. 8: x_K = AddNoise(x0_LF, eps, K); x0_hat = RemoveNoise(x_K + phi(x_K), eps, K).

    Checks the bridge saw x_K at level K, returns the float64 reference x0_hat and its tolerance.
    """
    assert len(bridge.calls) == 1
    x_k, phi = bridge.calls[0]
    a, s = _root(K)
    assert close(x_k, ref_add_noise(x, eps_k, K), ulps(a * x, s * eps_k, x_k))
    x0_hat = ref_remove_noise(x_k.double() + phi.double(), eps_k, K)
    return x0_hat, ulps(x_k, phi, s * eps_k) / a + ulps(x0_hat)


def test_noise_is_drawn_once_for_the_bridge_then_once_per_level_and_shared_by_its_refinements():
    """Algorithm 1, lines 1 and 5-9: eps ~ N(0, I) for the bridge at K, then one fresh eps per level t, the
    same eps for all J re-noisings x_t = AddNoise(x0_hat, eps, t) (eq. 10) of that level.

    Every x_t the denoiser sees is replayed in float64 from the previous estimate (itself replayed from the
    previous x_t and eps_theta with RemoveNoise at that level) and the seeded generator's draws in order.
    """
    K, J, levels = 6, 3, (6, 4, 2, 1)
    x, _, denoiser, bridge, _ = run_recorded(K=K, J=J, levels=levels)
    noise = draws(3, x.shape, 1 + len(levels))
    x0_hat, tolerance = replay_bridge(x, bridge, noise[0], K)
    assert [t for _, t, _ in denoiser.calls] == [t for t in levels for _ in range(J)]
    for i, (x_t, t, eps_theta) in enumerate(denoiser.calls):
        a, s = _root(t)
        level_noise = noise[1 + levels.index(t)]
        expected = ref_add_noise(x0_hat, level_noise, t)
        assert close(x_t, expected, a * tolerance + ulps(a * x0_hat, s * level_noise, x_t)), \
            f"call {i} (level {t}, refinement {i % J + 1}): x_t is not AddNoise(x0_hat, that level's draw, t)"
        x0_hat = ref_remove_noise(x_t, eps_theta, t)
        tolerance = ulps(x_t, s * eps_theta) / a + ulps(x0_hat)


def test_the_noise_added_is_shared_within_a_level_and_fresh_across_levels():
    """Algorithm 1, lines 5-8, without replaying the generator: the noise the sampler adds at each
    refinement, eps = (x_t - sqrt(alpha_bar_t) x0_hat) / sqrt(1 - alpha_bar_t) (eq. 10 solved for eps), is the
    same for the J refinements of one level and differs from one level to the next (and from the bridge's).
    """
    K, J, levels = 5, 3, (5, 3, 1)
    x, _, denoiser, bridge, estimates = run_recorded(K=K, J=J, levels=levels)
    x0_hat = estimates[0][3]  # the bridge's estimate, the sampler's own float32 value
    x_k = bridge.calls[0][0]
    a_k, s_k = _root(K)
    observed = {"bridge": [((x_k.double() - a_k * x.double()) / s_k, ulps(x_k, a_k * x) / s_k)]}
    for x_t, t, eps_theta in denoiser.calls:
        a, s = _root(t)
        observed.setdefault(t, []).append(((x_t.double() - a * x0_hat.double()) / s, ulps(x_t, a * x0_hat) / s))
        x0_hat = ((x_t.double() - s * eps_theta.double()) / a).float()
    assert [len(observed[t]) for t in levels] == [J] * len(levels)
    for t in levels:
        first, first_tolerance = observed[t][0]
        for j, (eps, tolerance) in enumerate(observed[t][1:], start=2):
            assert close(eps, first, first_tolerance + tolerance), f"level {t}: refinement {j} re-noised with new noise"
    firsts = [observed[key][0][0] for key in ("bridge", *levels)]
    for i, eps in enumerate(firsts):
        assert 0.5 < float(eps.std()) < 2.0  # a standard normal draw, not a residue
        for other in firsts[i + 1:]:
            assert float((eps - other).abs().max()) > 0.5, "two levels (or a level and the bridge) share a draw"


def test_removing_the_drawn_noise_at_each_level_returns_the_estimate():
    """RemoveNoise(AddNoise(x0_hat, eps, t), eps, t) = x0_hat (eq. 10 and the x0 reading of eq. 11, at the
    same level t): a denoiser that returns exactly the noise drawn for its level leaves every estimate as it
    was, to a few ulps of |x0_hat| + |x_t| / sqrt(alpha_bar_t) per refinement.
    """
    K, J, levels, seed = 6, 3, (6, 5, 3, 2, 1), 3
    noise = draws(seed, (1, 3, 6, 5, 4), 1 + len(levels))
    true_noise = RecordingDenoiser(lambda x_t, t: noise[1 + levels.index(t)].clone())
    _, out, _, _, estimates = run_recorded(seed=seed, K=K, J=J, levels=levels, denoiser=true_noise)
    refinements = [(x_t, t) for x_t, t, _ in true_noise.calls]
    assert [step for step, *_ in estimates] == ["bridge"] + ["refine"] * len(levels)
    for step, t, before, after in estimates[1:]:
        a, _ = _root(t)
        x_ts = [x_t for x_t, level in refinements if level == t]
        tolerance = J * ulps(before, *(x_t / a for x_t in x_ts), factor=4)
        assert close(after, before, tolerance), f"level {t}: the estimate moved"
    assert torch.equal(out, estimates[-1][3])


class Oracle:
    """eps_theta that knows the clean volume x0: the true noise of x_t,
    (x_t - sqrt(alpha_bar_t) x0) / sqrt(1 - alpha_bar_t)."""

    def __init__(self, x0):
        self.x0, self.levels, self.largest_x_t = x0.double(), [], {}

    def __call__(self, x_t, t):
        self.levels.append(t)
        self.largest_x_t[t] = torch.maximum(self.largest_x_t.get(t, x_t.abs()), x_t.abs())
        a, s = _root(t)
        return ((x_t.double() - a * self.x0) / s).to(x_t.dtype)


@pytest.mark.parametrize("K,levels,J", [(100, (25, 10, 1), 1), (100, (25, 10, 1), 3), (6, None, 2),
                                         (400, (400, 250, 30, 2), 2)])
def test_an_oracle_denoiser_leaves_the_estimate_unchanged_through_the_chain(K, levels, J):
    """Algorithm 1 with eps_theta = the true noise of x_t (lines 6-8, RemoveNoise at the level t the noise
    was added at): with no bridge (ablation 3, phi = 0) every estimate, the bridge's and each level's, is
    x0 to a few ulps of |x0| + |x_t| / sqrt(alpha_bar_t)."""
    x = x0_lf(seed=5, shape=(1, 3, 6, 5, 4))
    oracle, estimates = Oracle(x), []
    out = sample(x, mode=Mode.DIFFUSION, denoiser=oracle, bridge_residual=None, schedule=SCHEDULE,
                 generator=torch.Generator().manual_seed(5), bridge_timestep=K, refinements=J, levels=levels,
                 on_estimate=lambda step, t, before, after: estimates.append((step, t, after.clone())))
    a_k, s_k = _root(K)
    expected_levels = tuple(range(K, 0, -1)) if levels is None else levels
    assert oracle.levels == [t for t in expected_levels for _ in range(J)]
    assert [(step, t) for step, t, _ in estimates] == [("bridge", K)] + [("refine", t) for t in expected_levels]
    x_k = a_k * x.double() + s_k * draws(5, x.shape, 1)[0].double()  # the bridge's x_K (line 2), seen by no network
    for step, t, after in estimates:
        a, _ = _root(t)
        x_t = x_k.abs() if step == "bridge" else oracle.largest_x_t[t]
        assert close(after, x, ulps(x, x_t / a)), f"{step} at level {t}: the estimate left x0"
    assert torch.equal(out, estimates[-1][2])


def test_the_cpu_preset_chain_bridges_at_K_then_evaluates_25_10_1():
    """The ``cpu`` preset (model/config/settings.py; docs/speed.md): Algorithm 1's lines 1-4 at K = 100 (the bridge
    network sees x_K = AddNoise(x0_LF, eps, 100), eq. 8), then lines 5-9 on the levels 25, 10, 1 with J = 1:
    eps_theta is evaluated exactly at t = 25, 10, 1, each on AddNoise(x0_hat, fresh eps, t)."""
    from model.config.settings import preset

    a = preset("cpu").algorithm
    assert (a.mode, a.bridge_timestep, a.visited_levels(), a.refinements) == (Mode.FULL, 100, (25, 10, 1), 1)
    x, _, denoiser, bridge, estimates = run_recorded(seed=a.seed, mode=a.mode, K=a.bridge_timestep,
                                                     levels=a.visited_levels(), J=a.refinements)
    assert [t for _, t, _ in denoiser.calls] == [25, 10, 1]
    assert [(step, t) for step, t, *_ in estimates] == [("bridge", 100), ("refine", 25), ("refine", 10), ("refine", 1)]
    noise = draws(a.seed, x.shape, 4)
    x0_hat, tolerance = replay_bridge(x, bridge, noise[0], 100)
    for (x_t, t, eps_theta), level_noise in zip(denoiser.calls, noise[1:]):
        root_a, root_s = _root(t)
        assert close(x_t, ref_add_noise(x0_hat, level_noise, t),
                     root_a * tolerance + ulps(root_a * x0_hat, root_s * level_noise, x_t)), f"x_t at level {t}"
        x0_hat = ref_remove_noise(x_t, eps_theta, t)
        tolerance = ulps(x_t, root_s * eps_theta) / root_a + ulps(x0_hat)


# --- Adding a sampler: one registered function in the method room, nothing else -------------------------------------


def test_a_registered_sampler_runs_through_the_enhancer_and_the_command_line_settings(tiny_weights):
    """A DDIM-style deterministic refinement (x_t = sqrt(alpha_bar_t) x0, no fresh noise), registered in a few
    lines: the settings accept its name, the enhancer runs it on the case plan's levels, and it is what ran (its
    output does not depend on the seed after the bridge is taken out, unlike Algorithm 1's)."""
    from model.cli.options import typed_setting
    from model.config.settings import preset
    from model.method.operators import remove_noise
    from model.method.sampler import SAMPLERS, register_sampler
    from model.pipeline.enhancer import Enhancer

    @register_sampler("deterministic-test")
    def deterministic(x0_lf, networks, schedule, generator, steps, hooks):
        x0 = x0_lf.clone()
        for level in steps.levels:
            x_t = schedule.alpha_bar_at(level) ** 0.5 * x0
            x0 = remove_noise(x_t, networks.denoiser(x_t, level), level, schedule, steps.variant)
        return x0

    try:
        assert typed_setting("sampler", "deterministic-test") == "deterministic-test"
        settings = preset("smoke").updated(window=(32, 32, 32), mode="diffusion", sampler="deterministic-test")
        volume = np.random.default_rng(0).uniform(-1, 1, (3, 20, 18, 12)).astype(np.float32)
        runs = [Enhancer(settings.updated(seed=seed), tiny_weights, torch.device("cpu")).enhance(volume) for seed in (0, 1)]
        assert np.array_equal(runs[0].volume, runs[1].volume) and runs[0].counts.evaluations == len(runs[0].plan.levels) == 2
        paper = [Enhancer(settings.updated(seed=seed, sampler="algorithm-1"), tiny_weights, torch.device("cpu")).enhance(volume)
                 for seed in (0, 1)]
        assert not np.array_equal(paper[0].volume, paper[1].volume)
    finally:
        SAMPLERS.pop("deterministic-test")
    with pytest.raises(ValueError, match="--sampler must be one of algorithm-1"):
        preset("smoke").updated(sampler="deterministic-test")
