"""Tests of the 3D magnitude-preserving U-Net (model/networks/unet.py): shapes, EDM2 initial behaviour, config."""

import json

import pytest
import torch

from model.networks.unet import MPUNet3D, UNetBlock
from model.networks.unet_config import UNetConfig, down_factors_for, tiny_config


def small_config(**overrides) -> UNetConfig:
    """Three levels on a 16x16x8 window (8x8x4 -> 4x4x4): z stops halving first, fast on CPU."""
    base = dict(model_channels=8, channel_mult=(1, 2, 2), num_blocks=1, window=(16, 16, 8), min_size=4,
                channels_per_head=8)
    base.update(overrides)
    return UNetConfig(**base)


def build(config: UNetConfig, seed: int = 0) -> MPUNet3D:
    torch.manual_seed(seed)
    return MPUNet3D(config).eval()


def activate_gains(model: MPUNet3D, value: float = 0.7) -> None:
    """Move the zero-initialised gains (output gain, per-block embedding gains) away from zero."""
    with torch.no_grad():
        model.out_gain.fill_(value)
        for module in model.modules():
            if isinstance(module, UNetBlock):
                module.emb_gain.fill_(value)


# -- configuration ---------------------------------------------------------------------


def test_default_window_levels_halve_z_last():
    config = UNetConfig()
    assert config.window == (128, 128, 32)
    assert config.level_shapes == ((128, 128, 32), (64, 64, 16), (32, 32, 8), (16, 16, 8))
    assert config.down_factors == ((2, 2, 2), (2, 2, 2), (2, 2, 1))
    assert config.total_factor == (8, 8, 4)
    assert config.attention_level_set == {3}
    assert down_factors_for((128, 128, 32), 5, 8)[-1] == (2, 2, 1)


def test_config_round_trip_through_json():
    config = small_config(attention_levels=(1, -1), dropout=0.1, fourier_scale=4.0)
    restored = UNetConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config
    assert UNetConfig.from_dict(UNetConfig().to_dict()) == UNetConfig()
    assert config.num_blocks == (1, 1, 1)  # an int means the same count at every level


def test_config_rejects_unknown_keys_by_name():
    data = UNetConfig().to_dict() | {"bogus_width": 3, "attn": True}
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['attn', 'bogus_width'\]"):
        UNetConfig.from_dict(data)


@pytest.mark.parametrize("bad", [dict(num_blocks=(1, 2)), dict(attention_levels=(5,)), dict(window=(16, 16)),
                                 dict(dropout=1.0), dict(channel_mult=())])
def test_config_rejects_invalid_values(bad):
    with pytest.raises((ValueError, TypeError)):
        small_config(**bad)


def test_same_config_builds_same_architecture():
    a, b = build(small_config(), seed=0), build(small_config(), seed=1)
    assert [(k, v.shape) for k, v in a.state_dict().items()] == [(k, v.shape) for k, v in b.state_dict().items()]
    torch.testing.assert_close(a.time_fourier.freqs, b.time_fourier.freqs)  # fixed by fourier_seed


# -- shapes ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(16, 16, 8), (37, 29, 11), (5, 3, 2), (17, 16, 9)])
def test_output_shape_matches_input(size):
    model = build(small_config(in_channels=3, out_channels=3))
    x = torch.randn(2, 3, *size)
    y = model(x, torch.tensor([1, 999]))
    assert y.shape == x.shape and y.dtype == x.dtype


def test_output_channels_may_differ():
    model = build(small_config(in_channels=3, out_channels=1))
    assert model(torch.randn(1, 3, 16, 16, 8), torch.tensor([5])).shape == (1, 1, 16, 16, 8)


def test_full_tiny_window():
    config = tiny_config()
    model = build(config)
    x = torch.randn(1, config.in_channels, *config.window)
    assert model(x, torch.tensor([500])).shape == x.shape


# -- EDM2 initial behaviour ----------------------------------------------------------------


def test_output_is_exactly_zero_at_initialisation():
    model = build(small_config())
    y = model(torch.randn(2, 3, 37, 29, 11), torch.tensor([0, 1000]))
    assert torch.count_nonzero(y) == 0


def test_activations_keep_unit_magnitude_at_initialisation():
    config = small_config(channel_mult=(1, 2, 2), num_blocks=2, model_channels=16, channels_per_head=16)
    model = build(config)
    magnitudes: dict[str, float] = {}
    for name, module in model.named_modules():
        if isinstance(module, UNetBlock) or name == "conv_in":
            module.register_forward_hook(
                lambda mod, args, out, name=name: magnitudes.__setitem__(name, out.pow(2).mean().sqrt().item())
            )
    x = torch.randn(2, 3, 32, 32, 16)
    with torch.no_grad():
        model(x, torch.tensor([100, 800]))
    assert len(magnitudes) == 1 + len(model.encoder) + len(model.decoder)
    out_of_range = {k: v for k, v in magnitudes.items() if not 0.5 <= v <= 2.0}
    assert not out_of_range, out_of_range


def test_output_depends_on_timestep():
    model = build(small_config())
    activate_gains(model)
    x = torch.randn(1, 3, 16, 16, 8)
    y_early, y_late = model(x, torch.tensor([10])), model(x, torch.tensor([900]))
    assert y_early.abs().max() > 0
    assert (y_early - y_late).abs().max() > 1e-3
    # Any dtype, scalar or (B,) tensor, same embedding.
    torch.testing.assert_close(model(x, torch.tensor([10.0])), y_early)
    torch.testing.assert_close(model(x, torch.tensor(10, dtype=torch.int32)), y_early)


def test_backward_gives_finite_gradients_for_all_parameters():
    config = small_config(dropout=0.1)
    model = build(config).train()
    activate_gains(model)
    x = torch.randn(2, 3, 16, 16, 8)
    loss = (model(x, torch.tensor([3, 700])) - torch.randn_like(x)).square().mean()
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
    assert model.out_gain.grad.abs() > 0


def test_training_mode_forces_weight_normalisation_and_eval_does_not():
    model = build(small_config())
    with torch.no_grad():
        model.conv_in.weight.mul_(4.0)
    model(torch.randn(1, 3, 16, 16, 8), torch.tensor([1]))
    assert model.conv_in.weight.pow(2).mean().sqrt().item() == pytest.approx(4.0, rel=0.2)
    model.train()
    model(torch.randn(1, 3, 16, 16, 8), torch.tensor([1]))
    per_unit = model.conv_in.weight.detach().pow(2).mean(dim=(1, 2, 3, 4)).sqrt()
    torch.testing.assert_close(per_unit, torch.ones_like(per_unit), atol=1e-3, rtol=0)


# -- memory formats, autocast, size ------------------------------------------------------


def test_channels_last_and_autocast():
    model = build(small_config())
    activate_gains(model)
    x = torch.randn(1, 3, 19, 16, 9)
    t = torch.tensor([300])
    with torch.no_grad():
        reference = model(x, t)
        channels_last = model(x.contiguous(memory_format=torch.channels_last_3d), t)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x, t)
    torch.testing.assert_close(channels_last, reference, atol=1e-4, rtol=1e-4)
    assert low.dtype == torch.float32 and low.shape == x.shape
    assert (low - reference).abs().max() < 0.1 * reference.abs().max()
