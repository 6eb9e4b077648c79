"""Options from environment variables (model/cli/environment.py) and the output interfaces' relative paths."""

from __future__ import annotations

import pytest

from conftest import TEST_WINDOW, grand_challenge_paths, write_case
from model.cli.main import build_parser, main, settings_from
from model.cli.environment import environment_table, with_environment
from model.volumes.layouts import CONTRASTS


def parse(environ, *argv):
    return with_environment(build_parser(), environ).parse_args(list(argv))


def test_every_option_has_one_variable_and_help_names_it():
    parser = with_environment(build_parser(), {})
    table = environment_table(parser)
    names = [name for name, _ in table]
    assert len(names) == len(set(names))
    assert ("ULF_TIME_BUDGET", "--time-budget") in table and ("ULF_PRESET", "--preset") in table
    text = parser.format_help()
    assert all(f"[{name}]" in text for name in names)


def test_the_environment_sets_defaults_and_the_command_line_wins():
    environ = {"ULF_PRESET": "cpu", "ULF_OVERLAP": "0.5", "ULF_WINDOW": "64 32 32", "ULF_TIME_BUDGET": "900",
               "ULF_QUIET": "yes", "ULF_PRECISION": "float32"}
    args = parse(environ)
    assert args.preset == "cpu" and args.time_budget == 900.0 and args.quiet is True
    settings = settings_from(args)
    assert settings.engine.overlap == 0.5 and settings.engine.window == (64, 32, 32)
    assert settings.engine.precision == "float32" and settings.algorithm.bridge_timestep == 100  # the cpu preset's K
    args = parse(environ, "--overlap", "0.25", "--preset", "fast")
    assert args.preset == "fast" and settings_from(args).engine.overlap == 0.25


@pytest.mark.parametrize(("variable", "value", "says"), [
    ("ULF_MODE", "everything", "expected one of identity"),
    ("ULF_WINDOW", "64 32", "expected 3 values"),
    ("ULF_TIME_BUDGET", "ten minutes", "ULF_TIME_BUDGET"),
    ("ULF_QUIET", "maybe", "expected one of 1"),
    ("ULF_OVERLAP", "", "empty"),
    ("ULF_REFINE", "2.5", "ULF_REFINE"),
])
def test_a_bad_value_is_refused_naming_the_variable(variable, value, says, capsys):
    with pytest.raises(SystemExit) as raised:
        parse({variable: value})
    assert raised.value.code == 2
    error = capsys.readouterr().err
    assert variable in error and says in error


def test_output_interfaces_write_to_their_relative_paths(tmp_path, tiny_weights, monkeypatch):
    write_case(grand_challenge_paths(tmp_path / "input"))
    folders = {"T1": "images/pseudo-3t/t1", "T2": "images/t2-out", "FLAIR": "images/enhanced-flair-brain-mri"}
    for contrast in ("T1", "T2"):
        monkeypatch.setenv(f"ULF_OUTPUT_PATH_{contrast}", folders[contrast])
    monkeypatch.setenv("ULF_PRESET", "smoke")
    monkeypatch.setenv("ULF_WINDOW", " ".join(map(str, TEST_WINDOW)))
    code = main(["--input", str(tmp_path / "input"), "--output", str(tmp_path / "output"),
                 "--weights", str(tiny_weights), "--quiet"])
    assert code == 0
    for contrast in CONTRASTS:
        written = list((tmp_path / "output" / folders[contrast]).glob("*.mha"))
        assert len(written) == 1, contrast


@pytest.mark.parametrize("folder", ["../escape", "/abs/olute", ".", ""])
def test_an_output_path_outside_the_output_folder_is_refused(tmp_path, monkeypatch, caplog, folder):
    write_case(grand_challenge_paths(tmp_path / "input"))
    monkeypatch.setenv("ULF_OUTPUT_PATH_T2", folder)
    assert main(["--input", str(tmp_path / "input"), "--output", str(tmp_path / "output"), "--mode", "identity"]) == 2
    assert "ULF_OUTPUT_PATH_T2" in caplog.text
    assert not (tmp_path / "output").exists()


def test_two_contrasts_on_one_output_path_are_refused(tmp_path, monkeypatch, caplog):
    write_case(grand_challenge_paths(tmp_path / "input"))
    monkeypatch.setenv("ULF_OUTPUT_PATH_T1", "images/same")
    monkeypatch.setenv("ULF_OUTPUT_PATH_FLAIR", "images/same")
    assert main(["--input", str(tmp_path / "input"), "--output", str(tmp_path / "output"), "--mode", "identity"]) == 2
    assert "ULF_OUTPUT_PATH_" in caplog.text


def test_the_container_documentation_lists_every_variable():
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "container.md").read_text()
    missing = [name for name, _ in environment_table(with_environment(build_parser(), {})) if f"`{name}`" not in text]
    assert not missing, f"docs/container.md does not list {missing}"
