"""The presets x precisions table and the planner's accuracy table (bench/time_budget.py)."""

import json

from bench import time_budget
from conftest import TEST_WINDOW


def test_the_tables_time_each_preset_refuse_what_the_device_cannot_and_keep_the_budget(tiny_weights, tmp_path, capsys):
    out = tmp_path / "time_budget.json"
    code = time_budget.main(["--weights", str(tiny_weights), "--device", "cpu", "--shape-scale", "0.4", "--crop", "40",
                             "44", "20", "--window", *map(str, TEST_WINDOW), "--presets", "smoke", "--precisions",
                             "float32", "float16", "--planned", "smoke", "--budgets", "600", "--json", str(out)])
    assert code == 0
    document = json.loads(out.read_text())
    timed, refused = document["presets"]
    assert timed["resolved"] == "float32" and timed["seconds"] > 0 and timed["windows"] > 0 and 0 < timed["score"] <= 1
    assert "float16 is for GPUs" in refused["refused"]
    (budget,) = document["budgets"]
    assert budget["plan"] == "as requested" and budget["fits"] and budget["seconds"] <= budget["budget"]
    assert "| smoke | float16 | refused" in capsys.readouterr().out
