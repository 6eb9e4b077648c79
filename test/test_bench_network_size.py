"""The U-Net's size and cost (bench/network_size.py): parameters and forward FLOPs per window."""

from bench.network_size import describe, unet_flops_per_window
from model.networks.unet import MPUNet3D
from model.networks.unet_config import UNetConfig
from test_bench import MICRO_UNET, MICRO_WINDOW, micro_weights  # noqa: F401 (a fixture)
from test_unet import small_config


def test_flops_per_window_follow_the_weights_network(micro_weights):
    small = unet_flops_per_window(micro_weights, MICRO_WINDOW)
    assert small == describe(MICRO_UNET)["flops_per_window"] > 0
    larger = UNetConfig.from_dict({**MICRO_UNET.to_dict(), "window": [32, 32, 16]})
    assert unet_flops_per_window(micro_weights, (32, 32, 16)) == describe(larger)["flops_per_window"] > 4 * small


def test_describe_counts_parameters_and_flops():
    config = small_config()
    info = describe(config)
    assert info["parameters"] == sum(p.numel() for p in MPUNet3D(config).parameters())
    assert info["flops_per_window"] > 0
    assert info["level_shapes"] == [[16, 16, 8], [8, 8, 4], [4, 4, 4]]
