"""The training-step benchmark (training/step_speed.py): a step of each network timed in each precision the
processor computes natively."""

from pathlib import Path

from training import step_speed

SMALL = Path(__file__).resolve().parent.parent / "training" / "configs" / "cpu-small.toml"


def test_a_step_of_each_network_is_timed_and_printed(monkeypatch, capsys):
    monkeypatch.setattr(step_speed, "cpu_has_native_bfloat16", lambda: False)  # float32 only
    assert step_speed.main(["--config", str(SMALL), "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "batch 2 of (64, 64, 32)" in out
    assert "| diffusion | float32 |" in out and "| bridge | float32 |" in out and "| bfloat16 |" not in out


def test_overrides_and_the_network_choice_apply(monkeypatch, capsys):
    monkeypatch.setattr(step_speed, "cpu_has_native_bfloat16", lambda: False)
    argv = ["--config", str(SMALL), "--repeats", "1", "--network", "bridge", "--set", "data.patch=[64, 64, 64]"]
    assert step_speed.main(argv) == 0
    out = capsys.readouterr().out
    assert "batch 2 of (64, 64, 64)" in out
    assert "| bridge | float32 |" in out and "| diffusion |" not in out
