"""ONNX Runtime as the engine's backend on the CPU (``backend="onnxruntime"``; optional: ``pip install
onnxruntime``, the ``onnx`` extra of the package).

The networks are exported from the weights already loaded (``torch.onnx.export``, in memory, the window's shape
fixed and the batch dynamic) at their first call, and run by ONNX Runtime's CPU kernels in float32 (they have
no bfloat16 convolutions) on the threads torch uses. They take the engine's calls unchanged: the U-Net as
``unet(x, t)``, the bridge as ``bridge.residual(x)``. docs/speed.md, "CPU", measures what it buys.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import time

import numpy as np
import torch

from ..errors import DeviceError
from ..networks.bridge import BridgeResidual

log = logging.getLogger(__name__)


def onnxruntime_available() -> bool:
    """Whether onnxruntime is installed (it is optional)."""
    return importlib.util.find_spec("onnxruntime") is not None


class _Exported:
    """A torch module exported to ONNX at its first call, then run by an ONNX Runtime session."""

    def __init__(self, module: torch.nn.Module, what: str, inputs: tuple[str, ...]):
        self.module, self.what, self.inputs = module.eval(), what, inputs
        self.session = None

    def _session(self, *example: torch.Tensor):
        import onnxruntime

        started = time.perf_counter()
        buffer = io.BytesIO()
        dynamic = {name: {0: "batch"} for name in (*self.inputs, "output")}
        with torch.inference_mode(False), torch.no_grad():
            torch.onnx.export(self.module, tuple(t.float() for t in example), buffer, input_names=list(self.inputs),
                              output_names=["output"], dynamic_axes=dynamic, opset_version=17, dynamo=False)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = torch.get_num_threads(), 1
        self.session = onnxruntime.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
        log.info("%s exported to ONNX Runtime in %.1f s", self.what, time.perf_counter() - started)

    def run(self, *tensors: torch.Tensor) -> torch.Tensor:
        if self.session is None:
            self._session(*tensors)
        feed = {name: np.ascontiguousarray(t.detach().float().cpu().numpy()) for name, t in zip(self.inputs, tensors)}
        return torch.from_numpy(self.session.run(None, feed)[0])


class OnnxUNet:
    """eps_theta(x, t) through ONNX Runtime."""

    def __init__(self, unet: torch.nn.Module):
        self.exported = _Exported(unet, "the U-Net", ("x", "t"))

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.exported.run(x, t)


class OnnxBridge:
    """The bridge's residual phi(x) through ONNX Runtime."""

    def __init__(self, bridge: torch.nn.Module):
        self.exported = _Exported(BridgeResidual(bridge), "the bridge", ("x",))

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.exported.run(x)


def resolve_backend(requested: str, device: torch.device) -> str:
    """``torch`` or ``onnxruntime``: the ONNX Runtime backend runs on the CPU only, and needs onnxruntime."""
    if requested == "torch":
        return "torch"
    if device.type != "cpu":
        raise DeviceError(f"--backend {requested}: ONNX Runtime runs on the CPU here; use --backend torch on {device}")
    if not onnxruntime_available():
        raise DeviceError("--backend onnxruntime: onnxruntime is not installed (pip install onnxruntime, "
                          "or the package's [onnx] extra)")
    return "onnxruntime"
