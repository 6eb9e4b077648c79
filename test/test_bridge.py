"""The Swin UNETR bridge (eq. 8)."""

import pytest
import torch

from conftest import TINY_BRIDGE
from model.networks.bridge import Bridge, BridgeConfig


def test_identity_at_initialisation():
    bridge = Bridge(TINY_BRIDGE).eval()
    x = torch.randn(2, 3, 64, 32, 32)
    with torch.no_grad():
        assert torch.equal(bridge(x), x)
        assert torch.count_nonzero(bridge.residual(x)) == 0


def test_residual_is_added():
    bridge = Bridge(TINY_BRIDGE).eval()
    with torch.no_grad():
        bridge.phi.out.conv.conv.bias.fill_(0.25)
        x = torch.randn(1, 3, 64, 32, 32)
        assert torch.allclose(bridge(x) - x, bridge.residual(x))
        assert torch.allclose(bridge.residual(x), torch.full_like(x, 0.25), atol=1e-6)


def test_config_round_trip_and_unknown_keys():
    config = BridgeConfig(feature_size=12, window=(64, 64, 32))
    assert BridgeConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown bridge configuration keys: bogus"):
        BridgeConfig.from_dict({**config.to_dict(), "bogus": 1})


def test_window_must_suit_swin():
    with pytest.raises(ValueError, match="divisible by 32"):
        Bridge(BridgeConfig(window=(128, 128, 20)))
