"""The CPU lever benchmark (bench/cpu_levers.py) on tiny networks: every combination timed, float32 alone is
the reference, the profile's categories add up to the call."""

from bench import cpu_levers
from conftest import TEST_WINDOW
from model.weights.manifest import load_network


def test_levers_cover_every_combination_and_float32_is_the_reference(tiny_weights):
    fn = cpu_levers.call("diffusion", load_network(tiny_weights, "diffusion"))
    rows = cpu_levers.lever_rows("diffusion", fn, repeats=1, precisions=["float32"], window=TEST_WINDOW)
    assert {(r["per_call"], r["channels_last"]) for r in rows} == {(1, False), (1, True), (4, False), (4, True)}
    reference = next(r for r in rows if r["per_call"] == 1 and not r["channels_last"])
    assert reference["difference"] == 0.0
    assert all(r["difference"] < 1e-4 for r in rows)  # float32 in any layout or batch: rounding only
    assert all(r["seconds"] > 0 for r in rows)


def test_the_profile_splits_one_call_into_categories(tiny_weights):
    fn = cpu_levers.call("bridge", load_network(tiny_weights, "bridge"))
    categories, total = cpu_levers.profile_rows(fn, TEST_WINDOW)
    assert "convolutions" in categories and abs(sum(categories.values()) - total) < 1e-9
    assert cpu_levers.flops_per_window(fn, TEST_WINDOW) > 0


def test_the_command_prints_the_tables(tiny_weights, capsys):
    assert cpu_levers.main(["--weights", str(tiny_weights), "--repeats", "1", "--networks", "bridge",
                            "--window", *map(str, TEST_WINDOW)]) == 0
    out = capsys.readouterr().out
    assert "| bridge | 1 | float32 | no |" in out and "GFLOP per window" in out
