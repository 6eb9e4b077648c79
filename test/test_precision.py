"""Precision per device (model/execution/precision.py): the dispatch, the refusals, and float32 blending of low-precision windows."""

from __future__ import annotations

import pytest
import torch

from conftest import tiny_networks
from model.execution import precision as precision_module
from model.execution.engine import WindowEngine
from model.errors import DeviceError
from model.execution.precision import cpu_has_native_bfloat16, resolve_precision
from model.config.settings import EngineSettings, SamplerSettings
from model.execution.plan import plan_case
from model.execution.windows import evaluate_in_windows, plan_windows

CPU = torch.device("cpu")
CUDA = torch.device("cuda", 0)


def fake_gpu(monkeypatch, capability, bf16):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16)


@pytest.mark.parametrize(("capability", "bf16", "expected"), [
    ((7, 5), False, "float16"),  # T4: Grand Challenge's default
    ((7, 0), False, "float16"),  # V100
    ((8, 0), True, "bfloat16"),  # A100
    ((9, 0), True, "bfloat16"),  # H100 / H200
    ((6, 1), False, "float32"),  # Pascal: no tensor cores
])
def test_auto_picks_the_gpus_fast_precision(monkeypatch, capability, bf16, expected):
    fake_gpu(monkeypatch, capability, bf16)
    assert resolve_precision("auto", CUDA) == expected


def test_bfloat16_is_refused_on_a_gpu_without_it(monkeypatch):
    fake_gpu(monkeypatch, (7, 5), False)
    with pytest.raises(DeviceError, match="sm_75.*has no bfloat16.*float16"):
        resolve_precision("bfloat16", CUDA)
    assert resolve_precision("float16", CUDA) == "float16"
    assert resolve_precision("float32", CUDA) == "float32"


def test_auto_on_the_cpu_is_bfloat16_only_where_native_and_float16_is_refused(monkeypatch):
    for native in (False, True):
        monkeypatch.setattr(precision_module, "cpu_has_native_bfloat16", lambda native=native: native)
        assert resolve_precision("auto", CPU) == ("bfloat16" if native else "float32")
        assert resolve_precision("bfloat16", CPU) == "bfloat16"
        assert resolve_precision("float32", CPU) == "float32"
    with pytest.raises(DeviceError, match="float16 is for GPUs"):
        resolve_precision("float16", CPU)


def test_native_bfloat16_is_read_from_the_processor_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t\t: fpu sse2 avx2 avx512f\n")
    assert not cpu_has_native_bfloat16(cpuinfo)
    cpuinfo.write_text("flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_tile\n")
    assert cpu_has_native_bfloat16(cpuinfo)
    assert not cpu_has_native_bfloat16(tmp_path / "absent")


def test_low_precision_windows_are_blended_in_float32():
    x = torch.randn(1, 3, 40, 36, 20, generator=torch.Generator().manual_seed(0))
    plan = plan_windows(x.shape[2:], (32, 32, 16), 0.5, CPU)
    half = evaluate_in_windows(lambda batch: (batch * 0.5).to(torch.float16), x, plan)
    full = evaluate_in_windows(lambda batch: batch * 0.5, x, plan)
    assert half.dtype == torch.float32
    # each window holds x/2 rounded to float16 (relative step 2**-11); a weighted mean of such values keeps it
    torch.testing.assert_close(half, full, rtol=2**-10, atol=2**-14)


def test_bfloat16_autocast_on_the_cpu_gives_float32_output_close_to_float32():
    networks = tiny_networks()
    x = torch.randn(1, 3, 64, 32, 32, generator=torch.Generator().manual_seed(1))
    outputs = {}
    for precision in ("float32", "bfloat16"):
        engine = WindowEngine(EngineSettings(window=(64, 32, 32), overlap=0.0, precision=precision), CPU,
                              unet=networks["diffusion"], bridge=networks["bridge"])
        plans = engine.window_plans(plan_case(SamplerSettings(engine=engine.settings), tuple(x.shape[2:])))
        with engine.running():
            outputs[precision] = engine.denoiser(plans, seed=0)(x, 10)
    assert outputs["bfloat16"].dtype == torch.float32
    reference = outputs["float32"]
    # bfloat16 keeps 8 significant bits (relative step 2**-8); the tiny U-Net has about 16 rounding stages
    # (convolutions, normalisations, additions), so errors stay within 16 steps of the output's scale
    scale = float(reference.abs().max())
    assert float((outputs["bfloat16"] - reference).abs().max()) <= 16 * 2**-8 * scale
    assert not torch.equal(outputs["bfloat16"], reference)  # autocast really ran in bfloat16
