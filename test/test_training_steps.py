"""One optimiser step of each network on a fixed batch, and the bridge's losses at initialisation."""

from __future__ import annotations

import torch

from model.networks.bridge import Bridge, BridgeConfig
from model.method.schedule import cosine_schedule
from model.networks.unet import MPUNet3D
from model.networks.unet_config import UNetConfig
from test_training_helpers import single_thread  # noqa: F401 (fixture)
from training.config import BridgeTraining, DiffusionTraining
from training.objectives import BridgeObjective, DiffusionObjective, train_step

UNET = UNetConfig(model_channels=8, channel_mult=(1, 2, 2), num_blocks=1, channels_per_head=8, window=(32, 32, 16))
BRIDGE = BridgeConfig(feature_size=12, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1), window_size=4, window=(64, 32, 32))


def _batch(shape, t, seed=0):
    generator = torch.Generator().manual_seed(seed)
    grid = torch.stack(torch.meshgrid(*[torch.linspace(-1, 1, n) for n in shape], indexing="ij"))
    head = (grid.square().sum(0) < 0.7).float()
    high = torch.stack([head * (0.2 + 0.3 * torch.cos((c + 2) * grid[0])) for c in range(3)]) * 2 - 1
    high = torch.stack([high, high.flip(1)])
    low = 0.8 * high + 0.1 * torch.randn(high.shape, generator=generator)
    return {"high": high, "low": low, "noise": torch.randn(high.shape, generator=generator), "t": torch.tensor(t)}


def _optimiser(network):
    return torch.optim.AdamW(network.parameters(), lr=3e-4)


def test_one_diffusion_step_lowers_its_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    network = MPUNet3D(UNET).train()
    objective = DiffusionObjective(network, DiffusionTraining(network=UNET, ssim_weight=0.1, sobel_weight=0.1))
    batch = _batch((32, 32, 16), [30, 600])
    del batch["low"]
    with torch.no_grad():
        before = objective(**batch)
    assert set(before) == {"noise", "ssim", "sobel", "loss"}
    torch.testing.assert_close(before["loss"], before["noise"] + 0.1 * before["ssim"] + 0.1 * before["sobel"])
    metrics = train_step(objective, batch, _optimiser(network), list(network.parameters()), 1.0, identity_step=False)
    assert "grad_norm" in metrics
    with torch.no_grad():
        after = objective(**batch)
    assert after["loss"] < before["loss"]


def test_bridge_losses_at_initialisation_share_one_noise_draw():
    """phi starts at zero, so with one shared eps: latent = alpha_bar_t ||x0_LF - x0_HF||^2, x0 = ||x0_LF - x0_HF||^2."""
    schedule = cosine_schedule()
    torch.manual_seed(0)
    objective = BridgeObjective(Bridge(BRIDGE), BridgeTraining(network=BRIDGE))
    batch = _batch((64, 32, 32), [250, 750])
    with torch.no_grad():
        out = objective(**batch)
        identity = objective(**batch, identity=True)
    per_sample = (batch["low"] - batch["high"]).square().flatten(1).mean(1)
    alpha_bar = schedule.alpha_bars[batch["t"]].float()
    torch.testing.assert_close(out["latent"], (alpha_bar * per_sample).mean(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["x0"], per_sample.mean(), rtol=1e-5, atol=1e-6)
    assert identity["identity"].item() == 0.0


def test_one_bridge_step_lowers_its_losses_on_a_fixed_batch():
    torch.manual_seed(0)
    network = Bridge(BRIDGE).train()
    objective = BridgeObjective(network, BridgeTraining(network=BRIDGE))
    batch = {k: v[:1] for k, v in _batch((64, 32, 32), [300, 700]).items()}
    with torch.no_grad():
        before = objective(**batch)
    metrics = train_step(objective, batch, _optimiser(network), list(network.parameters()), 1.0, identity_step=True)
    assert {"latent", "x0", "loss", "identity", "grad_norm", "identity_grad_norm"} <= set(metrics)
    with torch.no_grad():
        after = objective(**batch)
        identity_before = objective(**batch, identity=True)["loss"]
    assert after["loss"] < before["loss"]
    assert identity_before > 0  # phi is no longer zero ...
    plain = torch.optim.SGD(network.parameters(), lr=0.1)  # (Adam's momentum still carries the first step)
    train_step(lambda **b: objective(**b, identity=True), batch, plain, list(network.parameters()), 0.0, False)
    with torch.no_grad():
        assert objective(**batch, identity=True)["loss"] < identity_before  # ... and the identity loss pulls it back
