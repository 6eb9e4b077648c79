"""Tests of the magnitude-preserving primitives (model/networks/mp_layers.py, after EDM2 Sec. 2.2-2.5)."""

import math

import pytest
import torch
import torch.nn.functional as F

from model.networks.mp_layers import (
    MP_SILU_SCALE,
    MPConv3d,
    MPFourier,
    MPLinear,
    cosine_self_attention,
    mp_cat,
    mp_silu,
    mp_sum,
    normalize,
    pixel_norm,
    resample_down,
    resample_up,
)


def rms(x: torch.Tensor) -> float:
    return x.double().pow(2).mean().sqrt().item()


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


def test_normalize_gives_unit_rms_per_output_unit(gen):
    w = torch.randn(6, 4, 3, 3, 3, generator=gen) * torch.arange(1, 7).reshape(6, 1, 1, 1, 1)
    per_unit = normalize(w).pow(2).mean(dim=(1, 2, 3, 4)).sqrt()
    torch.testing.assert_close(per_unit, torch.ones(6), atol=1e-3, rtol=0)


def test_pixel_norm_gives_unit_rms_across_channels(gen):
    x = torch.randn(2, 5, 4, 3, 2, generator=gen) * 7.0
    per_voxel = pixel_norm(x).pow(2).mean(dim=1).sqrt()
    torch.testing.assert_close(per_voxel, torch.ones(2, 4, 3, 2), atol=1e-3, rtol=0)


def test_normalize_keeps_low_precision_dtype(gen):
    x = torch.randn(2, 8, 3, 3, 3, generator=gen).to(torch.bfloat16)
    assert pixel_norm(x).dtype == torch.bfloat16


def test_mp_silu_preserves_unit_magnitude(gen):
    x = torch.randn(1_000_000, generator=gen)
    assert MP_SILU_SCALE == 0.596
    assert rms(mp_silu(x)) == pytest.approx(1.0, abs=0.01)
    assert rms(F.silu(x)) == pytest.approx(0.596, abs=0.005)


def test_mp_sum_known_value_and_unit_magnitude(gen):
    a = torch.randn(1_000_000, generator=gen)
    b = torch.randn(1_000_000, generator=gen)
    out = mp_sum(a, b, t=0.3)
    torch.testing.assert_close(out, (0.7 * a + 0.3 * b) / math.sqrt(0.58))
    assert rms(out) == pytest.approx(1.0, abs=0.01)
    # The plain interpolation would shrink the magnitude to sqrt(0.58) ~= 0.762.
    assert rms(torch.lerp(a, b, 0.3)) == pytest.approx(math.sqrt(0.58), abs=0.01)
    torch.testing.assert_close(mp_sum(a, b, t=0.0), a)


@pytest.mark.parametrize("n_a, n_b, t", [(16, 48, 0.5), (32, 32, 0.5), (8, 24, 0.3)])
def test_mp_cat_unit_magnitude_and_energy_split(gen, n_a, n_b, t):
    a = torch.randn(4, n_a, 16, 16, 8, generator=gen)
    b = torch.randn(4, n_b, 16, 16, 8, generator=gen)
    out = mp_cat(a, b, dim=1, t=t)
    assert out.shape == (4, n_a + n_b, 16, 16, 8)
    assert rms(out) == pytest.approx(1.0, abs=0.01)
    energy_a = out[:, :n_a].double().pow(2).sum()
    energy_b = out[:, n_a:].double().pow(2).sum()
    share_b = (energy_b / (energy_a + energy_b)).item()
    assert share_b == pytest.approx(t**2 / ((1 - t) ** 2 + t**2), abs=0.01)


def test_forced_weight_normalisation_in_training_mode(gen):
    conv = MPConv3d(4, 6, 3)
    with torch.no_grad():
        conv.weight.mul_(torch.arange(1, 7).reshape(6, 1, 1, 1, 1) * 3.0)
    conv.train()
    conv(torch.randn(1, 4, 5, 5, 5, generator=gen))
    per_unit = conv.weight.detach().pow(2).mean(dim=(1, 2, 3, 4)).sqrt()
    torch.testing.assert_close(per_unit, torch.ones(6), atol=1e-3, rtol=0)


def test_eval_mode_leaves_stored_weight_untouched(gen):
    conv = MPConv3d(4, 6, 3).eval()
    with torch.no_grad():
        conv.weight.mul_(5.0)
    before = conv.weight.detach().clone()
    out = conv(torch.randn(1, 4, 5, 5, 5, generator=gen))
    torch.testing.assert_close(conv.weight.detach(), before, atol=0, rtol=0)
    # Weight normalisation still applies at every forward: the scale of the stored weight is irrelevant.
    conv2 = MPConv3d(4, 6, 3).eval()
    with torch.no_grad():
        conv2.weight.copy_(before / 5.0)
    torch.testing.assert_close(conv2(torch.randn(1, 4, 5, 5, 5, generator=gen.manual_seed(1234))),
                               conv(torch.randn(1, 4, 5, 5, 5, generator=gen.manual_seed(1234))),
                               atol=1e-3, rtol=1e-3)  # up to the 1e-4 epsilon of normalize
    assert out.shape == (1, 6, 5, 5, 5)


def test_conv_preserves_magnitude_of_white_noise(gen):
    conv = MPConv3d(32, 32, 3).eval()
    x = torch.randn(2, 32, 16, 16, 16, generator=gen)
    y = conv(x)[:, :, 1:-1, 1:-1, 1:-1]  # ignore the zero-padded border
    assert rms(y) == pytest.approx(1.0, abs=0.1)


def test_gain_scales_output_and_zero_gain_gives_zero(gen):
    conv = MPConv3d(3, 2, 1).eval()
    x = torch.randn(1, 3, 4, 4, 4, generator=gen)
    torch.testing.assert_close(conv(x, gain=2.5), 2.5 * conv(x))
    assert torch.count_nonzero(conv(x, gain=torch.zeros([]))) == 0


def test_linear_mode(gen):
    layer = MPLinear(16, 64).train()
    y = layer(torch.randn(1000, 16, generator=gen))
    assert y.shape == (1000, 64)
    assert rms(y) == pytest.approx(1.0, abs=0.1)
    torch.testing.assert_close(layer.weight.detach().pow(2).mean(dim=1).sqrt(), torch.ones(64), atol=1e-3, rtol=0)


def test_several_training_forwards_before_one_backward(gen):
    conv = MPConv3d(2, 3, 3).train()
    x = torch.randn(1, 2, 4, 4, 4, generator=gen)
    loss = conv(x).square().mean() + conv(x).square().mean()
    loss.backward()
    assert torch.isfinite(conv.weight.grad).all()


def test_conv_under_autocast_and_channels_last(gen):
    conv = MPConv3d(4, 8, 3).eval()
    x = torch.randn(1, 4, 6, 6, 6, generator=gen)
    reference = conv(x)
    x_cl = x.contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(conv(x_cl), reference, atol=1e-5, rtol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = conv(x)
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), reference, atol=0.1, rtol=0.05)


def test_odd_kernel_required():
    with pytest.raises(ValueError, match="odd"):
        MPConv3d(2, 2, 2)


def test_mp_fourier_unit_magnitude_and_fixed(gen):
    fourier = MPFourier(256, scale=16.0, seed=3)
    c = torch.rand(512, generator=gen)
    y = fourier(c)
    assert y.shape == (512, 256)
    assert rms(y) == pytest.approx(1.0, abs=0.05)
    torch.testing.assert_close(MPFourier(256, scale=16.0, seed=3)(c), y)
    assert set(fourier.state_dict()) == {"freqs", "phases"}
    assert not list(fourier.parameters())
    assert fourier.freqs.std().item() == pytest.approx(16.0, rel=0.2)


def test_cosine_attention_matches_direct_softmax(gen):
    batch, heads, head_dim, spatial = 2, 2, 4, (3, 2, 2)
    channels = heads * head_dim
    qkv = torch.randn(batch, 3 * channels, *spatial, generator=gen)
    out = cosine_self_attention(qkv, num_heads=heads)
    assert out.shape == (batch, channels, *spatial)

    n = math.prod(spatial)
    q, k, v = qkv.reshape(batch, 3, heads, head_dim, n).unbind(1)
    q, k, v = (t / (1e-4 + t.pow(2).mean(dim=2, keepdim=True).sqrt()) for t in (q, k, v))
    weights = torch.softmax(torch.einsum("bhcn,bhcm->bhnm", q, k) / math.sqrt(head_dim), dim=-1)
    expected = torch.einsum("bhnm,bhcm->bhcn", weights, v).reshape(batch, channels, *spatial)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)
    # Cosine attention: rescaling queries, keys or values changes nothing.
    torch.testing.assert_close(cosine_self_attention(qkv * 10.0, num_heads=heads), out, atol=1e-3, rtol=1e-3)


def test_anisotropic_resampling(gen):
    x = torch.randn(1, 2, 8, 8, 4, generator=gen)
    down = resample_down(x, (2, 2, 1))
    assert down.shape == (1, 2, 4, 4, 4)
    torch.testing.assert_close(down[0, 0, 0, 0, 0], x[0, 0, :2, :2, 0].mean())
    up = resample_up(down, (2, 2, 1))
    assert up.shape == x.shape
    torch.testing.assert_close(resample_down(up, (2, 2, 1)), down)
    assert rms(resample_up(x, (2, 2, 2))) == pytest.approx(rms(x), rel=1e-6)  # nearest: magnitude kept
    assert resample_down(x, (1, 1, 1)) is x and resample_up(x, (1, 1, 1)) is x
