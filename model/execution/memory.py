"""Up-front memory estimate of one case, so that an oversized volume is refused before computing."""

from __future__ import annotations

import math

import torch

from ..errors import InputError

# Whole-volume float32 tensors alive at once in Algorithm 1 (x0_lf, x0, noise, x_level, the
# blended output and its accumulator, a padded copy, and NumPy copies on the way in and out).
VOLUME_COPIES = 10
# Activation memory of one window through the network, in multiples of the window's input size,
# measured for the default U-Net under inference_mode on the CPU (87x: 523 MB of peak RSS for one
# 128x128x32 window); kept generous.
ACTIVATION_FACTOR = 120
HEADROOM = 0.9  # use at most this fraction of what is available


def estimate_bytes(shape: tuple[int, ...], channels: int, window: tuple[int, ...], windows_per_batch: int) -> int:
    """Bytes needed for a volume of ``shape`` (x, y, z) with ``channels`` channels."""
    padded = [max(s, w) for s, w in zip(shape, window)]
    volume = math.prod(padded) * channels * 4
    activations = math.prod(window) * channels * 4 * ACTIVATION_FACTOR * windows_per_batch
    return VOLUME_COPIES * volume + activations


def available_bytes(device: torch.device) -> int | None:
    """Free memory on ``device`` (host: MemAvailable of /proc/meminfo); ``None`` when unknown."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def input_bytes(size: tuple[int, ...], bytes_per_voxel: int) -> int:
    """Host bytes of one input file once read: its own voxel type plus the float32 copy made of it."""
    return math.prod(size) * (bytes_per_voxel + 4)


def check_memory(shape, channels, window, windows_per_batch, device: torch.device, name: str,
                 extra_bytes: int = 0) -> None:
    """Refuse a case whose estimate exceeds the available memory, stating both.

    Called with the shape a header announces, before any voxel is read or resampled. ``extra_bytes``
    (the input files once read) and the whole-volume copies live on the host; on CUDA the device is
    checked as well.
    """
    shape, window = tuple(shape), tuple(window)
    needed = estimate_bytes(shape, channels, window, windows_per_batch)
    host = needed if device.type == "cpu" else estimate_bytes(shape, channels, window, 0)
    checks = [(torch.device("cpu"), host + extra_bytes)] + ([(device, needed)] if device.type != "cpu" else [])
    for where, amount in checks:
        available = available_bytes(where)
        if available is not None and amount > HEADROOM * available:
            raise InputError(
                f"{name}: a {'x'.join(map(str, shape))} volume needs about {amount / 2**30:.1f} GiB on {where} "
                f"but only {available / 2**30:.1f} GiB is available; crop or downsample it, or use a larger machine"
            )
