"""Which device a run uses (``--device``): CUDA when present, a given GPU, or the CPU."""

from __future__ import annotations

import re

import torch

from ..errors import DeviceError

CUDA_INDEX = re.compile(r"^cuda:(\d+)$")


def select_device(requested: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; ``cuda`` without a GPU, and ``cuda:N`` for a GPU this machine
    does not have, are refused clearly."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda was asked for, but no CUDA device is available (use --device cpu or auto)")
    match = CUDA_INDEX.match(requested)
    if match:
        index, count = int(match.group(1)), torch.cuda.device_count() if torch.cuda.is_available() else 0
        if index >= count:
            present = f"GPUs 0..{count - 1}" if count else "no CUDA device"
            raise DeviceError(f"--device {requested} was asked for, but this machine has {present} "
                              "(use --device cpu, auto or an existing index)")
        return torch.device("cuda", index)
    if requested not in ("cpu", "cuda"):
        raise DeviceError(f"unknown device '{requested}'; expected auto, cpu, cuda or cuda:N")
    return torch.device(requested)
