"""ONNX Runtime as the engine's CPU backend (model/execution/onnx_backend.py): the same networks, exported from
the weights in hand, give the float32 result of PyTorch to float rounding."""

import numpy as np
import pytest
import torch

from conftest import TEST_WINDOW
from model.config.settings import preset
from model.errors import DeviceError
from model.execution import onnx_backend
from model.execution.onnx_backend import resolve_backend
from model.pipeline.enhancer import Enhancer


def test_onnx_runtime_gives_pytorchs_float32_result(tiny_weights):
    settings = preset("smoke").updated(window=TEST_WINDOW, precision="float32", bridge_timestep=3, overlap=0.25)
    volume = np.random.default_rng(0).uniform(-1, 1, (3, 70, 40, 36)).astype(np.float32)
    torch_run = Enhancer(settings, tiny_weights, torch.device("cpu")).enhance(volume)
    onnx_enhancer = Enhancer(settings.updated(backend="onnxruntime"), tiny_weights, torch.device("cpu"))
    onnx_run = onnx_enhancer.enhance(volume)
    assert onnx_enhancer.precision == "float32" and onnx_run.counts.windows == torch_run.counts.windows > 0
    # float32 through two runtimes' kernels: the sums differ in order only (a few ulp per layer)
    scale = float(np.abs(torch_run.volume).max())
    assert float(np.abs(onnx_run.volume - torch_run.volume).max()) <= 1e-4 * scale
    assert not onnx_enhancer.engine.wants_compile(onnx_run.plan.settings and onnx_enhancer.plan((70, 40, 36),
                                                  settings.updated(backend="onnxruntime", compile="on")))


def test_the_backend_is_refused_where_it_cannot_run(monkeypatch):
    with pytest.raises(DeviceError, match="runs on the CPU"):
        resolve_backend("onnxruntime", torch.device("cuda"))
    monkeypatch.setattr(onnx_backend, "onnxruntime_available", lambda: False)
    with pytest.raises(DeviceError, match="onnxruntime is not installed"):
        resolve_backend("onnxruntime", torch.device("cpu"))
    assert resolve_backend("torch", torch.device("cpu")) == "torch"
