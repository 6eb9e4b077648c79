"""``python -m bench.peak``: the device's measured matrix-multiply peak, and the compute floor.

The issue asks for the achieved TFLOP/s against the card's *measured* peak (not the datasheet's):
the peak is the median throughput of large square matrix products (2 n^3 FLOPs each) in the given
dtype, after a warm-up. The compute floor of a case is the U-Net's FLOPs per window x windows ÷
that peak: no implementation of Algorithm 1 with that network on that device can be faster.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

from bench.measure import synchronize
from model.execution.device import select_device
from model.cli.options import add_device

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def matmul_peak_tflops(device: torch.device, dtype: torch.dtype, size: int, repeats: int = 5,
                       products_per_repeat: int = 4) -> float:
    """Median TFLOP/s of ``size`` x ``size`` matrix products on ``device`` in ``dtype`` (2 size^3 FLOPs each)."""
    generator = torch.Generator(device).manual_seed(0)
    a = torch.randn(size, size, generator=generator, device=device).to(dtype)
    b = torch.randn(size, size, generator=generator, device=device).to(dtype)
    with torch.inference_mode():
        torch.matmul(a, b)  # warm-up: kernels, clocks
        synchronize(device)
        rates = []
        for _ in range(repeats):
            started = time.perf_counter()
            for _ in range(products_per_repeat):
                torch.matmul(a, b)
            synchronize(device)
            rates.append(products_per_repeat * 2 * size**3 / (time.perf_counter() - started) / 1e12)
    return statistics.median(rates)


def compute_floor_seconds(flops_per_window: float, windows: int, peak_tflops: float) -> float:
    """Seconds that ``windows`` network windows of ``flops_per_window`` take at ``peak_tflops``, at best."""
    return flops_per_window * windows / (peak_tflops * 1e12)


def achieved_tflops(flops_per_window: float, windows_per_second: float) -> float:
    """The network's useful TFLOP/s at a measured window rate."""
    return flops_per_window * windows_per_second / 1e12


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.peak", description=__doc__.split("\n\n")[0])
    add_device(p)
    p.add_argument("--size", type=int, help="matrix size (default 8192 on CUDA, 2048 on the CPU)")
    p.add_argument("--dtypes", nargs="+", choices=sorted(DTYPES),
                   help="default: float32 and bfloat16 on CUDA (TF32 off), float32 on the CPU")
    args = p.parse_args(argv)
    device = select_device(args.device)
    size = args.size or (8192 if device.type == "cuda" else 2048)
    dtypes = args.dtypes or (["float32", "bfloat16"] if device.type == "cuda" else ["float32"])
    torch.backends.cuda.matmul.allow_tf32 = False
    result = {"device": str(device), "size": size,
              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
              "peak_tflops": {name: matmul_peak_tflops(device, DTYPES[name], size) for name in dtypes}}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
