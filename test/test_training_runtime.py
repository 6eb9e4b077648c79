"""Where training runs and in which arithmetic (training/runtime.py): bfloat16 on the CPU only where native."""

import pytest
import torch

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
