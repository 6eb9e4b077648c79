"""The benchmark's pieces: the fast engine against the naive MONAI path, and the cost accounting."""

import pytest
import torch
from conftest import TEST_WINDOW, tiny_networks

from bench.configurations import NAIVE, default_engine, engine_variants
from bench.naive import naive_bridge, naive_denoiser
from bench.peak import achieved_tflops, compute_floor_seconds, matmul_peak_tflops
from bench.report import table
from model.pipeline.enhancer import Enhancer
from model.config.settings import PRESETS, preset
from model.networks.unet import MPUNet3D
from model.networks.unet_config import UNetConfig
from model.weights.manifest import load_network, save_networks

MICRO_WINDOW = (16, 16, 8)
# A two-level U-Net small enough that a few dozen windows take a second or two on one CPU core.
MICRO_UNET = UNetConfig(model_channels=4, channel_mult=(1, 2), num_blocks=1, attention_levels=(), channels_per_head=4,
                        window=MICRO_WINDOW)


@pytest.fixture(scope="session")
def micro_weights(tmp_path_factory):
    """A micro U-Net (non-zero, t-dependent output) and the tests' tiny bridge."""
    torch.manual_seed(0)
    unet = MPUNet3D(MICRO_UNET)
    with torch.no_grad():
        unet.out_gain.fill_(0.5)
        for block in unet.modules():
            if hasattr(block, "emb_gain"):
                block.emb_gain.fill_(0.5)
    directory = tmp_path_factory.mktemp("micro-weights")
    save_networks(directory, {"diffusion": unet.eval(), "bridge": tiny_networks()["bridge"]}, trained=False,
                  provenance={"source": "test fixture, random init"})
    return directory


@pytest.mark.parametrize("windows_per_batch,channels_last", [(4, False), (3, True)])
def test_fast_engine_equals_the_naive_monai_path(micro_weights, windows_per_batch, channels_last):
    settings = preset("paper").updated(window=MICRO_WINDOW, windows_per_batch=windows_per_batch,
                                       channels_last=channels_last, compile="off")
    enhancer = Enhancer(settings, micro_weights, torch.device("cpu"))
    x_t = torch.randn(1, 3, 22, 20, 11, generator=torch.Generator().manual_seed(0))
    naive = naive_denoiser(load_network(micro_weights, "diffusion"), MICRO_WINDOW, settings.engine.overlap)(x_t, 250)
    plans = enhancer.prepare(enhancer.plan(tuple(x_t.shape[2:])))
    with torch.inference_mode():
        fast = enhancer.engine.denoiser(plans, 0)(x_t, 250)
        again = enhancer.engine.denoiser(plans, 0)(x_t, 250)  # buffers reused
    assert plans.main.num_windows == 3 * 2 * 3 and float(naive.abs().max()) > 0.01
    assert (fast - naive).abs().max() <= 1e-5
    assert torch.equal(fast, again)


def test_fast_bridge_equals_the_naive_monai_path(micro_weights):
    settings = preset("paper").updated(window=TEST_WINDOW, compile="off")
    enhancer = Enhancer(settings, micro_weights, torch.device("cpu"))
    x = torch.randn(1, 3, 70, 36, 32, generator=torch.Generator().manual_seed(1))
    naive = naive_bridge(load_network(micro_weights, "bridge"), TEST_WINDOW, settings.engine.overlap)(x)
    with torch.inference_mode():
        fast = enhancer.engine.bridge_residual(enhancer.prepare(enhancer.plan(tuple(x.shape[2:]))))(x)
    assert float(naive.abs().max()) > 0.01
    assert (fast - naive).abs().max() <= 1e-5


def test_engine_variants_start_with_the_baseline_and_the_default():
    engines = engine_variants(torch.device("cpu"), quick=False)
    assert engines[0] == NAIVE and engines[1] == default_engine()
    assert len({e.key for e in engines}) == len(engines)
    assert not any(e.cuda_only for e in engines)
    assert {e.settings.compile for e in engines[1:]} == {"auto", "off"}


def test_table_marks_extrapolated_times():
    rows = [{"configuration": "x", "seconds_per_evaluation": 2.0, "seconds_per_evaluation_source": "extrapolated",
             "seconds_per_case": 10.0, "seconds_per_case_source": "measured", "score": None}]
    text = table(rows)
    assert "| 2.0* |" in text and "| 10 |" in text and "| - |" in text


def test_measured_peak_and_compute_floor():
    peak = matmul_peak_tflops(torch.device("cpu"), torch.float32, size=128, repeats=2)
    assert 0 < peak < 100  # a positive throughput, far below any GPU's
    assert compute_floor_seconds(2e9, 1000, 1.0) == pytest.approx(2.0)  # 2 TFLOP at 1 TFLOP/s
    assert achieved_tflops(2e9, 500.0) == pytest.approx(1.0)
