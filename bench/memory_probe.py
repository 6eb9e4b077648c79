"""``python -m bench.memory_probe``: peak memory of one batch of windows through the networks.

For the ``paper`` preset on a 16 GB T4: the networks' activations for one batch of windows are
what grows with the window and the batch; the volumes Algorithm 1 keeps (about ten float32 copies
of the 3-channel volume, :mod:`model.execution.memory`) come on top. ``--paper-networks`` probes the paper-size
networks (the default ``UNetConfig()`` and ``BridgeConfig()``, random weights: memory does not
depend on the values) instead of those in ``--weights``. On the CPU the resident-set growth of an
eager inference-mode forward stands in for the GPU's allocation (same tensors, no cuDNN workspace).
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import torch

from bench.cli import FULL_HEAD_SHAPE
from bench.measure import MB, PeakMemory
from model.networks.bridge import Bridge, BridgeConfig
from model.execution.device import select_device
from model.execution.memory import VOLUME_COPIES
from model.cli.options import add_device, add_weights
from model.networks.unet import MPUNet3D
from model.networks.unet_config import UNetConfig
from model.weights.manifest import load_network


def probe(network: torch.nn.Module, call, batch: int, window: tuple[int, ...], device: torch.device) -> dict:
    """Peak memory (host growth, GPU peak) of one forward of ``batch`` windows."""
    x = torch.randn(batch, 3, *window, device=device)
    with torch.inference_mode(), PeakMemory(device) as peak:
        call(network, x)
    return {"batch": batch, "window": list(window), "host_added_mb": peak.host_added_bytes / MB,
            "gpu_peak_mb": None if peak.gpu_bytes is None else peak.gpu_bytes / MB}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.memory_probe", description=__doc__.split("\n\n")[0])
    add_weights(p)
    p.add_argument("--paper-networks", action="store_true", help="probe the default (paper-size) networks")
    add_device(p)
    p.add_argument("--windows-per-batch", type=int, default=4)
    p.add_argument("--window", type=int, nargs=3, default=[128, 128, 32])
    args = p.parse_args(argv)
    device = select_device(args.device)
    if args.paper_networks:
        unet, bridge = MPUNet3D(UNetConfig()).to(device).eval(), Bridge(BridgeConfig()).to(device).eval()
    else:
        unet, bridge = (load_network(args.weights, name, device) for name in ("diffusion", "bridge"))
    window = tuple(args.window)
    volume_mb = VOLUME_COPIES * 3 * 4 * math.prod(FULL_HEAD_SHAPE) / MB
    result = {
        "device": str(device), "networks": "paper-size defaults" if args.paper_networks else str(args.weights),
        "unet": probe(unet, lambda n, x: n(x, torch.full((x.shape[0],), 200.0, device=x.device)),
                      args.windows_per_batch, window, device),
        "bridge": probe(bridge, lambda n, x: n.residual(x), args.windows_per_batch, window, device),
        "full_head_volumes_mb": volume_mb,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
