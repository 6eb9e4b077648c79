"""The sampler's speed levers: early low-overlap shifted grids, level placement, the compile policy."""


import numpy as np
import pytest
import torch

from model.execution.engine import COMPILE_MIN_WINDOWS, CompiledBridge, CompiledNetwork
from model.execution.plan import early_levels_above, overlap_at, plan_case, uses_early_grid
from model.pipeline.enhancer import Enhancer
from model.config.settings import PRESETS, SamplerSettings, preset
from test_bench import MICRO_WINDOW, micro_weights  # noqa: F401 (a fixture)

UNET_WINDOW = MICRO_WINDOW


def small_volume(seed=0, shape=(24, 18, 10)):
    return np.random.default_rng(seed).uniform(-1, 1, (3, *shape)).astype(np.float32)


def levers(**changes) -> SamplerSettings:
    base = dict(mode="diffusion", bridge_timestep=4, refinements=2, overlap=0.7, compile="off", window=UNET_WINDOW,
                early_overlap=0.0, early_levels_fraction=0.5)
    return SamplerSettings().updated(**{**base, **changes})


def test_settings_say_which_levels_use_the_early_grid():
    s = PRESETS["paper"].updated(early_overlap=0.25, early_levels_fraction=0.75)
    assert early_levels_above(s) == 100 and uses_early_grid(s)
    assert overlap_at(s, 400) == overlap_at(s, 101) == 0.25 and overlap_at(s, 100) == overlap_at(s, 1) == 0.7
    plan = plan_case(s, (24, 18, 10))
    assert plan.shifted(400) and not plan.shifted(100) and plan.overlap_at(101) == 0.25
    assert not uses_early_grid(PRESETS["paper"]) and overlap_at(PRESETS["paper"], 400) == 0.7
    assert not uses_early_grid(PRESETS["paper"].updated(early_overlap=0.25))  # fraction 0: no early levels
    for bad in (dict(early_overlap=1.0), dict(early_levels_fraction=1.5)):
        with pytest.raises(ValueError):
            SamplerSettings().updated(**bad)


def test_levers_keep_seeded_determinism(micro_weights):
    volume = small_volume()
    runs = [Enhancer(levers(seed=seed), micro_weights, torch.device("cpu")) for seed in (7, 7, 8)]
    a, b, c = (enhancer.enhance(volume) for enhancer in runs)
    assert np.array_equal(a.volume, b.volume) and not np.array_equal(a.volume, c.volume)
    counts = a.counts
    assert counts.evaluations == 8 and counts.early_evaluations == 4  # levels 4 and 3 (> 2) on the early grid


def test_early_grid_changes_the_result_and_costs_fewer_windows(micro_weights):
    volume = small_volume()
    early = Enhancer(levers(), micro_weights, torch.device("cpu"))
    plain = Enhancer(levers(early_levels_fraction=0.0), micro_weights, torch.device("cpu"))
    early_run, plain_run = early.enhance(volume), plain.enhance(volume)
    assert not np.array_equal(early_run.volume, plain_run.volume)
    assert early_run.counts.windows < plain_run.counts.windows
    for run in (early_run, plain_run):  # the plan the cost is read from is the plan that ran: they cannot drift
        assert run.counts.windows == run.plan.unet_windows and run.counts.evaluations == run.plan.evaluations


def levels(settings: SamplerSettings) -> tuple[int, ...]:
    a = settings.algorithm
    return a.visited_levels()


def test_level_spacing_places_the_strided_levels():
    uniform = PRESETS["paper"].updated(level_stride=100)
    assert levels(uniform) == (400, 300, 200, 100)
    quadratic = uniform.updated(level_spacing="quadratic")
    assert levels(quadratic) == (400, 225, 100, 25)  # 400 (j/4)^2, j = 4..1: same count, dense near t = 0
    every = levels(PRESETS["paper"].updated(level_spacing="quadratic"))
    assert every[0] == 400 and every[-1] == 1 and list(every) == sorted(set(every), reverse=True)
    with pytest.raises(ValueError, match="level-spacing"):
        SamplerSettings().updated(level_spacing="cubic")


def test_presets_are_valid_and_named():
    assert {"paper", "fast", "cpu", "smoke"} <= set(PRESETS)
    assert preset("paper") == SamplerSettings()


def test_compile_auto_only_for_long_cpu_runs(micro_weights):
    short = Enhancer(levers(compile="auto"), micro_weights, torch.device("cpu"))
    short.prepare(short.plan((24, 18, 10)))
    assert not isinstance(short.engine.unet, CompiledNetwork)
    long = Enhancer(levers(compile="auto", bridge_timestep=400, refinements=3), micro_weights, torch.device("cpu"))
    plans = long.prepare(long.plan((24, 18, 10)))  # torch.compile is lazy: nothing is compiled until the first call
    assert 1200 * plans.for_level(400).num_windows >= COMPILE_MIN_WINDOWS and isinstance(long.engine.unet, CompiledNetwork)
    assert not isinstance(long.engine.bridge, CompiledBridge)  # "auto" leaves the bridge (once per case) eager
    always = Enhancer(levers(compile="on", mode="full"), micro_weights, torch.device("cpu"))
    always.prepare(always.plan((24, 18, 10)))
    assert isinstance(always.engine.unet, CompiledNetwork) and isinstance(always.engine.bridge, CompiledBridge)
    never = Enhancer(levers(compile="off", bridge_timestep=400, refinements=3), micro_weights, torch.device("cpu"))
    never.prepare(never.plan((24, 18, 10)))
    assert not isinstance(never.engine.unet, CompiledNetwork)
    with pytest.raises(ValueError, match="compile"):
        SamplerSettings().updated(compile="sometimes")


def test_compiled_network_falls_back_to_eager_when_compiling_fails(caplog):
    network = torch.nn.Conv3d(1, 1, 1)
    compiled = CompiledNetwork(network)

    def no_compiler(*args):
        raise RuntimeError("InductorError: CppCompileError: C++ compile error\n(details)")

    compiled.compiled = no_compiler
    x = torch.randn(1, 1, 2, 2, 2)
    with torch.no_grad():
        assert torch.equal(compiled(x), network(x)) and torch.equal(compiled(x), network(x))
    assert compiled.failed and caplog.text.count("torch.compile failed") == 1
    assert compiled.weight is network.weight  # attributes pass through to the eager network
