"""The per-case plan (model/execution/plan.py): levels, the grid of each, evaluations per grid and windows per case."""

from model.execution.plan import plan_case
from model.config.settings import PRESETS
from model.execution.windows import plan_windows, window_count

FULL_HEAD = (197, 233, 189)


def test_preset_costs_count_evaluations_per_grid():
    assert plan_case(PRESETS["paper"], FULL_HEAD).evaluations_by_overlap == {0.7: 1200}
    settings = PRESETS["paper"].updated(level_stride=10, refinements=2, early_overlap=0.25, early_levels_fraction=0.5)
    cost = plan_case(settings, FULL_HEAD)  # levels 400, 390, ..., 10: 20 above t=200
    assert cost.evaluations_by_overlap == {0.25: 40, 0.7: 40} and cost.evaluations == 80


def test_windows_of_the_presets_on_a_full_head():
    """docs/speed.md: 228 windows per evaluation at overlap 0.7 (48 at 0.25); paper 273,600 U-Net windows, cpu 144."""
    paper = plan_case(PRESETS["paper"], FULL_HEAD)
    assert paper.windows_by_overlap[0.7] == 228 and paper.unet_windows == 1200 * 228 and paper.bridge_windows == 228
    assert plan_case(PRESETS["fast"], FULL_HEAD).unet_windows == 3 * 2 * 228  # 3 levels, J = 2
    cpu = plan_case(PRESETS["cpu"], FULL_HEAD)
    assert cpu.levels == (25, 10, 1) and cpu.unet_windows == 3 * 48 and cpu.windows == 3 * 48 + 48


def test_modes_cost_only_the_networks_they_evaluate():
    shape = (60, 50, 40)
    identity = plan_case(PRESETS["paper"].updated(mode="identity"), shape)
    assert identity.windows == 0 and identity.levels == ()
    bridge = plan_case(PRESETS["paper"].updated(mode="bridge"), shape)
    assert bridge.unet_windows == 0 and bridge.bridge_windows == window_count(shape, (128, 128, 32), 0.7)
    assert plan_case(PRESETS["paper"].updated(mode="diffusion"), shape).bridge_windows == 0


def test_window_count_is_the_plans_count():
    for shape, window, overlap in (((197, 233, 189), (128, 128, 32), 0.7), ((20, 9, 33), (16, 16, 8), 0.25)):
        assert window_count(shape, window, overlap) == plan_windows(shape, window, overlap).num_windows


def test_an_explicit_chain_is_what_is_visited_and_costed():
    """chain_levels: the chain may start below K (the bridge still runs at K) and is costed as listed."""
    settings = PRESETS["paper"].updated(bridge_timestep=150, chain_levels=(40, 10, 1), refinements=1)
    assert settings.algorithm.visited_levels() == (40, 10, 1) and settings.algorithm.level_count == 3
    cost = plan_case(settings, FULL_HEAD)
    assert cost.levels == (40, 10, 1) and cost.evaluations == 3 and cost.bridge_windows == 228
    assert plan_case(settings.updated(mode="bridge"), FULL_HEAD).levels == ()
