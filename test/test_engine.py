"""The execution engine (model/execution/engine.py): windows per network call chosen per device."""

import torch

from model.execution.engine import AUTO_WINDOWS_PER_CALL, windows_per_call
from model.pipeline.enhancer import Enhancer
from model.config.settings import preset


def test_auto_windows_per_call_is_one_on_the_cpu_and_a_batch_on_a_gpu():
    assert windows_per_call(0, torch.device("cpu")) == AUTO_WINDOWS_PER_CALL["cpu"] == 1
    assert windows_per_call(0, torch.device("cuda")) == AUTO_WINDOWS_PER_CALL["cuda"] == 4
    assert windows_per_call(3, torch.device("cpu")) == 3 and windows_per_call(2, torch.device("cuda")) == 2


def test_the_default_engine_on_the_cpu_sends_one_window_per_call(tiny_weights):
    assert preset("cpu").engine.windows_per_batch == 0
    assert Enhancer(preset("smoke"), tiny_weights, torch.device("cpu")).engine.windows_per_batch == 1
    assert Enhancer(preset("smoke").updated(windows_per_batch=4), tiny_weights, torch.device("cpu")).engine.windows_per_batch == 4
