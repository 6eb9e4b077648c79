"""Where training runs and in which arithmetic (training/runtime.py): bfloat16 on the CPU only where native."""

import copy

import pytest
import torch
from torch import nn

from training import runtime


@pytest.mark.parametrize("native", [False, True])
def test_bfloat16_training_on_the_cpu_only_where_the_processor_computes_it(monkeypatch, native):
    monkeypatch.setattr(runtime, "cpu_has_native_bfloat16", lambda: native)
    chosen = runtime.start(device="cpu", precision="bfloat16")
    assert chosen.device.type == "cpu" and chosen.bfloat16 is native
    with chosen.autocast():
        y = torch.nn.functional.linear(torch.randn(2, 4), torch.randn(3, 4))
    assert y.dtype == (torch.bfloat16 if native else torch.float32)
    assert not runtime.start(device="cpu", precision="float32").bfloat16


def test_small_convolutions_compute_in_float32_under_autocast_and_keep_their_parameters():
    """The Swin UNETR bottleneck's shape (192 channels, 2x2x1 voxels): under CPU bf16 autocast the guarded
    convolution's weight gradient is float32's (oneDNN's bf16 one is wrong there); a large input stays bf16."""
    torch.manual_seed(0)
    network = nn.Sequential(nn.Conv3d(192, 192, 3, padding=1))
    reference = copy.deepcopy(network)
    keys = set(network.state_dict())
    assert runtime.guard_small_convolutions(network) == 1
    assert set(network.state_dict()) == keys and isinstance(copy.deepcopy(network)[0], runtime.Float32WhenSmallConv3d)
    x, grad = torch.randn(2, 192, 2, 2, 1), torch.randn(2, 192, 2, 2, 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = network(x)
    y.backward(grad)
    reference(x).backward(grad)
    assert y.dtype == torch.float32
    assert torch.allclose(network[0].weight.grad, reference[0].weight.grad, rtol=1e-5, atol=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert network(torch.randn(1, 192, 4, 4, 2)).dtype == torch.bfloat16  # one small axis: autocast as usual
