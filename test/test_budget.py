"""The time-budget planner (model/execution/budget.py): fake clocks and fake throughputs, then the command end to end."""

from __future__ import annotations

import logging

import pytest
import torch

from conftest import TEST_WINDOW, grand_challenge_paths, write_case
from model.execution.plan import plan_case
from model.execution.budget import (
    PLAN_FILL,
    ChainDeadline,
    Throughput,
    TimeBudget,
    candidates,
    choose_settings,
)
from model.weights.calibration import Calibration, Rung, ladder_for
from model.cli.main import main
from model.errors import UsageError
from model.method.sampler import Mode, refine_with_diffusion
from model.method.schedule import cosine_schedule
from model.config.settings import preset

HEAD = (197, 233, 189)  # a whole 1 mm head
CPU_LIKE = Throughput(unet=0.74, bridge=1.4)  # windows per second, of the order measured on 2 CPU cores


def _rung(label: str, score: float, mode: str = "full", chain=(25, 10, 1), overlap: float = 0.25) -> Rung:
    return Rung(label, {"mode": mode, "bridge_timestep": 100, "chain_levels": list(chain), "refinements": 1,
                        "overlap": overlap}, score)


# A calibration as bench.calibrate writes it (the scores are made up: the planner only uses their order).
CALIBRATION = Calibration(tuple(sorted((
    _rung("chain 25,10,1, overlap 0.7", 0.73, overlap=0.7),
    _rung("chain 25,10,1, overlap 0.5", 0.72, overlap=0.5),
    _rung("chain 25,10,1, overlap 0.25", 0.71),
    _rung("chain 10, overlap 0.25", 0.70, chain=(10,)),
    _rung("bridge, overlap 0.7", 0.69, mode="bridge", overlap=0.7),
    _rung("bridge, overlap 0.25", 0.68, mode="bridge"),
), key=lambda rung: -rung.score)), True, "test")


def ladder(request):
    return ladder_for(request, CALIBRATION, None)


def options_for(request):
    return candidates(request, ladder(request))


class FakeClock:
    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_each_rung_is_cheaper_than_the_paper():
    paper = preset("paper")
    full_cost = CPU_LIKE.seconds(plan_case(paper, HEAD))
    assert all(CPU_LIKE.seconds(plan_case(settings, HEAD)) < full_cost for _, settings in options_for(paper)[1:])


def test_the_request_runs_as_asked_when_it_fits():
    request = preset("paper")
    plan = choose_settings(request, HEAD, CPU_LIKE, allowance=1e7, ladder=ladder(request))
    assert plan.fits and plan.label == "as requested"
    assert plan.settings.algorithm == request.algorithm
    assert plan.settings.engine.overlap == request.engine.overlap


@pytest.mark.parametrize("allowance", [45.0, 80.0, 150.0, 300.0, 900.0, 3000.0, 20000.0])
def test_the_plan_is_the_first_candidate_that_fits(allowance):
    options = options_for(preset("paper"))
    plan = choose_settings(preset("paper"), HEAD, CPU_LIKE, allowance, ladder(preset("paper")))
    chosen = [label for label, _ in options].index(plan.label)
    assert plan.fits and plan.estimate <= PLAN_FILL * allowance
    assert all(CPU_LIKE.seconds(plan_case(settings, HEAD)) > PLAN_FILL * allowance for _, settings in options[:chosen])
    assert plan.estimate == pytest.approx(CPU_LIKE.seconds(plan_case(plan.settings, HEAD)))


def test_a_budget_too_small_for_anything_runs_the_minimum_work_and_says_so():
    plan = choose_settings(preset("paper"), HEAD, CPU_LIKE, allowance=1.0, ladder=ladder(preset("paper")))
    assert not plan.fits
    assert plan.settings.algorithm.mode is Mode.BRIDGE
    cheapest = min(CPU_LIKE.seconds(plan_case(settings, HEAD)) for _, settings in options_for(preset("paper")))
    assert plan.estimate == pytest.approx(cheapest)
    assert "OVER" in plan.describe()


def test_the_fallbacks_keep_the_requested_engine_choices_but_never_compile():
    request = preset("paper").updated(window=(96, 96, 32), windows_per_batch=2, precision="float32", seed=7)
    for _, settings in options_for(request):
        assert settings.engine.window == (96, 96, 32) and settings.engine.windows_per_batch == 2
        assert settings.engine.precision == "float32" and settings.engine.compile == "off"
        assert settings.algorithm.seed == 7


def test_bridge_mode_only_coarsens_the_bridge_grid():
    request = preset("paper").updated(mode="bridge", bridge_timestep=150)
    options = options_for(request)
    assert len(options) > 1
    overlaps = [settings.engine.overlap for _, settings in options]
    assert overlaps == sorted(overlaps, reverse=True) and len(set(overlaps)) == len(overlaps)
    assert all(s.algorithm == request.algorithm for _, s in options)


def test_identity_needs_no_plan_and_diffusion_is_refused():
    assert len(options_for(preset("paper").updated(mode="identity"))) == 1
    with pytest.raises(UsageError, match="diffusion"):
        options_for(preset("paper").updated(mode="diffusion"))


def test_the_budget_shares_the_time_left_among_the_cases_and_keeps_room_for_reading_and_writing():
    clock = FakeClock(0.0)
    budget = TimeBudget(100.0, clock=clock)
    clock.now = 10.0
    # 90 s left; this case's writing (as long as its 2 s of reading) and the next case's reading and writing (4 s)
    assert budget.case_allowance(cases_left=2, read_seconds=2.0) == pytest.approx((90 - 2 - 4) / 2)
    budget.record_io(5.0)
    clock.now = 60.0
    assert budget.case_allowance(cases_left=1, read_seconds=2.0) == pytest.approx(40 - 2)
    clock.now = 200.0
    assert budget.case_allowance(cases_left=1, read_seconds=2.0) == 0.0


@pytest.mark.parametrize("seconds", [0.0, -5.0, float("nan")])
def test_a_budget_must_be_positive(seconds):
    with pytest.raises(UsageError, match="time-budget"):
        TimeBudget(seconds)


def test_the_chain_deadline_stops_before_a_level_that_would_not_finish():
    clock = FakeClock(0.0)
    deadline = ChainDeadline(10.0, first_level_estimate=3.0, clock=clock)
    for now, level in ((0.0, 25), (3.0, 10), (6.0, 5)):
        clock.now = now
        assert deadline(level)
    clock.now = 9.5  # the levels took 9.5 / 3 s each: the next would end at 12.7 > 10
    assert not deadline(1)
    assert deadline.stopped_at == 1 and len(deadline.level_starts) == 3


def test_a_first_level_estimate_beyond_the_deadline_skips_the_chain():
    assert not ChainDeadline(5.0, first_level_estimate=6.0, clock=FakeClock(0.0))(25)


def test_the_sampler_ends_the_chain_where_keep_going_says_and_returns_that_estimate():
    schedule = cosine_schedule()
    x0 = torch.linspace(-1, 1, 2 * 3 * 4 * 4 * 4).reshape(2, 3, 4, 4, 4)
    calls = []

    def denoiser(x_t, t):
        calls.append(t)
        return 0.1 * x_t

    def run(levels, keep_going=None):
        return refine_with_diffusion(x0, denoiser, schedule, torch.Generator().manual_seed(3), levels=levels,
                                     refinements=2, keep_going=keep_going)

    stopped = run((25, 10, 1), keep_going=lambda level: level != 1)
    assert calls == [25, 25, 10, 10]
    torch.testing.assert_close(stopped, run((25, 10)), rtol=0, atol=0)


def run_with_budget(tmp_path, weights, *extra):
    write_case(grand_challenge_paths(tmp_path / "input"))
    window = [str(w) for w in TEST_WINDOW]
    return main(["--input", str(tmp_path / "input"), "--output", str(tmp_path / "output"), "--weights", str(weights),
                 "--preset", "smoke", "--window", *window, *map(str, extra)])


def test_the_command_plans_each_case_and_reports_the_time_used(tmp_path, tiny_weights, caplog):
    with caplog.at_level(logging.INFO, logger="model"):  # bench mains lower the "model" logger for good
        assert run_with_budget(tmp_path, tiny_weights, "--time-budget", 600) == 0
    text = caplog.text
    assert "time budget: as requested" in text
    assert "windows per second" in text and "time budget: the run took" in text
    assert len(list((tmp_path / "output").rglob("*.mha"))) == 3


def test_a_tiny_budget_still_writes_the_minimum_work_and_warns(tmp_path, tiny_weights, caplog):
    with caplog.at_level(logging.INFO, logger="model"):  # bench mains lower the "model" logger for good
        assert run_with_budget(tmp_path, tiny_weights, "--time-budget", 0.001) == 0
    assert "OVER" in caplog.text and "mode bridge" in caplog.text
    assert len(list((tmp_path / "output").rglob("*.mha"))) == 3


def test_a_budget_with_the_diffusion_ablation_is_refused_before_reading(tmp_path, tiny_weights, caplog):
    assert run_with_budget(tmp_path, tiny_weights, "--time-budget", 60, "--mode", "diffusion") == 2
    assert "--mode diffusion" in caplog.text
    assert not (tmp_path / "output").exists()


def test_the_budget_counts_from_the_start_of_the_process():
    import time

    from model.execution.budget import process_started

    age = time.monotonic() - process_started()
    assert 0.01 < age < 24 * 3600  # this process imported torch before the test ran


def test_a_planned_grid_is_the_one_evaluated(tiny_weights):
    import time

    import numpy as np

    from model.pipeline.enhancer import Enhancer
    from model.execution.windows import window_count

    shape = (80, 70, 40)
    request = preset("smoke").updated(window=TEST_WINDOW, overlap=0.7, windows_per_batch=1)  # counts = windows
    enhancer = Enhancer(request, tiny_weights, torch.device("cpu"))
    volume = np.random.default_rng(0).uniform(-1, 1, (3, *shape)).astype(np.float32)
    enhancement = enhancer.enhance(volume, deadline=time.monotonic() + 0.001)  # nothing fits: the minimum work
    choice = enhancement.budget
    assert not choice.fits and choice.settings.algorithm.mode is Mode.BRIDGE and enhancement.plan == choice.plan
    overlap = choice.settings.engine.overlap
    assert window_count(shape, TEST_WINDOW, overlap) < window_count(shape, TEST_WINDOW, 0.7)
    assert enhancement.counts.bridge_windows == window_count(shape, TEST_WINDOW, overlap) == enhancement.plan.bridge_windows
    assert enhancer.engine.settings == request.engine  # the planned grid is passed, not swapped in


def test_auto_lets_the_weights_decide_unless_a_calibrated_setting_is_given(tmp_path, tiny_weights, monkeypatch):
    """The image sets ULF_PRECISION=auto: how the networks compute does not stop the calibrated ladder from deciding
    under a budget; an option the ladder sets (the overlap, say) does."""
    from model.cli import main as cli

    decided = []
    real = cli.Enhancer

    def spy(*args, **kwargs):
        decided.append(kwargs.get("weights_decide"))
        return real(*args, **kwargs)

    monkeypatch.setattr(cli, "Enhancer", spy)
    monkeypatch.setenv("ULF_PRECISION", "auto")
    write_case(grand_challenge_paths(tmp_path / "in"))
    common = ["--input", str(tmp_path / "in"), "--weights", str(tiny_weights), "--window", *map(str, TEST_WINDOW),
              "--time-budget", "600", "--quiet", "--allow-untrained-levels"]
    assert main([*common, "--output", str(tmp_path / "a")]) == 0
    assert main([*common, "--output", str(tmp_path / "b"), "--overlap", "0.5"]) == 0
    assert decided == [True, False]
