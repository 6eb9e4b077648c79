"""``python -m bench.network_size``: parameters and forward FLOPs of the 3D MP U-Net (per window), for the
README's size table and the bench's achieved TFLOP/s and compute floor."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from model.networks.unet import MPUNet3D
from model.networks.unet_config import UNetConfig, tiny_config
from model.weights.manifest import MANIFEST_NAME


def describe(config: UNetConfig | None = None, device: str | torch.device = "meta") -> dict[str, Any]:
    """Parameter count and forward FLOPs of one ``config.window`` (batch 1).

    FLOPs are counted with :class:`torch.utils.flop_counter.FlopCounterMode` (matrix
    multiplies, convolutions and attention; element-wise work is not counted) during an
    eval-mode forward.  The default ``device="meta"`` runs the forward on shape-only
    tensors, which is instant and counts the attention kernel (the CPU attention kernel is
    not registered with the counter); pass ``device="cpu"`` to run on real data.
    """
    from torch.utils.flop_counter import FlopCounterMode

    config = config if config is not None else UNetConfig()
    model = MPUNet3D(config).eval()
    parameters = sum(p.numel() for p in model.parameters())
    model = model.to(device)
    x = torch.zeros(1, config.in_channels, *config.window, device=device)
    t = torch.zeros(1, device=device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x, t)
    return {
        "parameters": parameters,
        "flops_per_window": counter.get_total_flops(),
        "window": list(config.window),
        "level_shapes": [list(s) for s in config.level_shapes],
        "down_factors": [list(f) for f in config.down_factors],
    }


def _time_cpu_forward(config: UNetConfig) -> float:
    model = MPUNet3D(config).eval()
    x = torch.randn(1, config.in_channels, *config.window)
    t = torch.full((1,), config.num_timesteps // 2)
    with torch.no_grad():
        start = time.perf_counter()
        model(x, t)
        return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Size and cost of the 3D MP U-Net.")
    parser.add_argument("--time-cpu", action="store_true", help="also time one CPU forward of each config")
    args = parser.parse_args(argv)
    for name, config in (("default", UNetConfig()), ("tiny", tiny_config())):
        info = describe(config)
        info["gflops_per_window"] = round(info["flops_per_window"] / 1e9, 3)
        if args.time_cpu:
            info["cpu_forward_seconds"] = round(_time_cpu_forward(config), 3)
        print(json.dumps({"config": name, **info, "settings": config.to_dict()}))


def unet_flops_per_window(weights: Path, window: tuple[int, int, int]) -> float:
    """Forward FLOPs of the weights' U-Net on one ``window`` (counted on shape-only tensors)."""
    manifest = json.loads((weights / MANIFEST_NAME).read_text())
    config = UNetConfig.from_dict({**manifest["networks"]["diffusion"]["config"], "window": list(window)})
    return float(describe(config)["flops_per_window"])


if __name__ == "__main__":
    main()
