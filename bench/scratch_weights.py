"""``python -m bench.scratch_weights DIR``: random (untrained) small networks for trying the benchmark.

The networks' output layers are made non-zero (both start at exactly zero by design), so that the
sampler has something to compute. Their outputs are not enhanced images: use trained weights for scores.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from model.networks.bridge import Bridge, BridgeConfig
from model.networks.unet import MPUNet3D
from model.networks.unet_config import UNetConfig
from model.weights.manifest import save_networks

# The shape of training/configs/cpu-small.toml's networks.
SMALL_UNET = dict(model_channels=8, channel_mult=(1, 2, 2), num_blocks=1, channels_per_head=8, window=(64, 64, 32))
SMALL_BRIDGE = dict(feature_size=12, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1), window_size=4)


def scratch_networks(seed: int = 0, unet: dict | None = None, bridge: dict | None = None) -> dict[str, torch.nn.Module]:
    """A randomly initialised U-Net and bridge with non-zero outputs."""
    torch.manual_seed(seed)
    diffusion = MPUNet3D(UNetConfig(**(SMALL_UNET if unet is None else unet)))
    bridge_net = Bridge(BridgeConfig(**(SMALL_BRIDGE if bridge is None else bridge)))
    with torch.no_grad():
        diffusion.out_gain.fill_(0.3)
        for block in diffusion.modules():
            if hasattr(block, "emb_gain"):
                block.emb_gain.fill_(0.5)
        torch.nn.init.normal_(bridge_net.phi.out.conv.conv.weight, std=0.05)
    return {"diffusion": diffusion.eval(), "bridge": bridge_net.eval()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.scratch_weights", description=__doc__.split("\n\n")[0])
    p.add_argument("directory", type=Path)
    p.add_argument("--init-seed", type=int, default=0, help="seed of the random initialisation")
    p.add_argument("--paper-size", action="store_true",
                   help="the default (paper-size) UNetConfig() and BridgeConfig() instead of the small ones")
    args = p.parse_args(argv)
    sizes = dict(unet={}, bridge={}) if args.paper_size else {}
    networks = scratch_networks(args.init_seed, **sizes)
    manifest = save_networks(args.directory, networks, trained=False,
                             provenance={"source": "bench.scratch_weights: random initialisation, for benchmarking"})
    print(manifest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
