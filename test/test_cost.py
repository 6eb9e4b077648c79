"""The cost model (model/cost.py): evaluations per window grid and windows per case."""

from model.cost import case_cost
from model.settings import PRESETS
from model.windows import plan_windows, window_count

FULL_HEAD = (197, 233, 189)


def test_preset_costs_count_evaluations_per_grid():
    assert case_cost(FULL_HEAD, PRESETS["paper"]).evaluations_by_overlap == {0.7: 1200}
    settings = PRESETS["paper"].updated(level_stride=10, refinements=2, early_overlap=0.25, early_levels_fraction=0.5)
    cost = case_cost(FULL_HEAD, settings)  # levels 400, 390, ..., 10: 20 above t=200
    assert cost.evaluations_by_overlap == {0.25: 40, 0.7: 40} and cost.evaluations == 80


def test_windows_of_the_presets_on_a_full_head():
    """docs/speed.md: 228 windows per evaluation at overlap 0.7 (48 at 0.25); paper 273,600 U-Net windows, cpu 144."""
    paper = case_cost(FULL_HEAD, PRESETS["paper"])
    assert paper.windows_by_overlap[0.7] == 228 and paper.unet_windows == 1200 * 228 and paper.bridge_windows == 228
    assert case_cost(FULL_HEAD, PRESETS["fast"]).unet_windows == 3 * 2 * 228  # 3 levels, J = 2
    cpu = case_cost(FULL_HEAD, PRESETS["cpu"])
    assert cpu.levels == (25, 10, 1) and cpu.unet_windows == 3 * 48 and cpu.windows == 3 * 48 + 48


def test_modes_cost_only_the_networks_they_evaluate():
    shape = (60, 50, 40)
    identity = case_cost(shape, PRESETS["paper"].updated(mode="identity"))
    assert identity.windows == 0 and identity.levels == ()
    bridge = case_cost(shape, PRESETS["paper"].updated(mode="bridge"))
    assert bridge.unet_windows == 0 and bridge.bridge_windows == window_count(shape, (128, 128, 32), 0.7)
    assert case_cost(shape, PRESETS["paper"].updated(mode="diffusion")).bridge_windows == 0


def test_window_count_is_the_plans_count():
    for shape, window, overlap in (((197, 233, 189), (128, 128, 32), 0.7), ((20, 9, 33), (16, 16, 8), 0.25)):
        assert window_count(shape, window, overlap) == plan_windows(shape, window, overlap).num_windows


def test_an_explicit_chain_is_what_is_visited_and_costed():
    """chain_levels: the chain may start below K (the bridge still runs at K) and is costed as listed."""
    settings = PRESETS["paper"].updated(bridge_timestep=150, chain_levels=(40, 10, 1), refinements=1)
    assert settings.algorithm.visited_levels() == (40, 10, 1) and settings.algorithm.level_count == 3
    cost = case_cost(FULL_HEAD, settings)
    assert cost.levels == (40, 10, 1) and cost.evaluations == 3 and cost.bridge_windows == 228
    assert case_cost(FULL_HEAD, settings.updated(mode="bridge")).levels == ()
