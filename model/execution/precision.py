"""Which arithmetic the networks run in on a device (``--precision``, ``ULF_PRECISION``; docs/speed.md, "Precision").

The networks run under ``torch.autocast`` in the resolved low precision; window blending and the sampler's
arithmetic always stay in float32 (:func:`model.execution.windows.evaluate_in_windows` accumulates in float32).

``auto``:

* CUDA, compute capability 8.0 or newer (A100, H100, L4, ...): bfloat16 (float32's range, no overflow);
* CUDA 7.x (T4, V100): float16, whose tensor cores are Grand Challenge's T4's fast path (about 65 TFLOP/s
  against 8 in float32);
* a CPU that computes bfloat16 natively (AVX512-BF16: AMD Zen 4 and later, Intel Cooper Lake; AMX: Intel
  Sapphire Rapids and later): bfloat16. Measured on a Zen 4 AMD EPYC, one thread (``python -m bench.cpu_levers``,
  docs/speed.md, "CPU"): 1.4x (U-Net) and 1.6x (bridge) per window, held-out scores within 0.0005 of float32;
* older GPUs and other CPUs: float32 (bfloat16 there is emulated, tens of times slower).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import torch

from ..config.settings import PRECISIONS
from ..errors import DeviceError

log = logging.getLogger(__name__)

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def cpu_has_native_bfloat16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the processor computes bfloat16 natively (AMX or AVX512-BF16), from its feature flags."""
    try:
        flags = cpuinfo.read_text(errors="replace").split()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def gpu_name(device: torch.device) -> str:
    """'NVIDIA T4 (sm_75)'."""
    major, minor = torch.cuda.get_device_capability(device)
    return f"{torch.cuda.get_device_name(device)} (sm_{major}{minor})"


def resolve_precision(requested: str, device: torch.device) -> str:
    """The precision ``requested`` runs in on ``device``: ``float32``, ``bfloat16`` or ``float16``; a precision
    the device cannot run is refused with a :class:`model.errors.DeviceError`."""
    if requested not in PRECISIONS:
        raise DeviceError(f"--precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    if device.type == "cuda":
        major, _ = torch.cuda.get_device_capability(device)
        if requested == "auto":
            return "bfloat16" if major >= 8 else "float16" if major == 7 else "float32"
        if requested == "bfloat16" and not torch.cuda.is_bf16_supported(including_emulation=False):
            raise DeviceError(f"--precision bfloat16: {gpu_name(device)} has no bfloat16 arithmetic; "
                              "use --precision float16 (or auto) on this GPU")
        return requested
    if requested == "float16":
        raise DeviceError("--precision float16 is for GPUs (T4 tensor cores); on the CPU use float32, "
                          "or bfloat16 on a processor with AMX / AVX512-BF16")
    if requested == "auto":
        return "bfloat16" if cpu_has_native_bfloat16() else "float32"
    if requested == "bfloat16" and not cpu_has_native_bfloat16():
        log.warning("--precision bfloat16 on a processor without native bfloat16 (AMX / AVX512-BF16): emulated, and far slower "
                    "than float32 (40x for the U-Net on the development machine's AMD EPYC, docs/speed.md)")
    return requested


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for a resolved low precision; nothing for float32."""
    if precision == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[precision])


@contextlib.contextmanager
def inference(precision: str, device: torch.device) -> Iterator[None]:
    """``torch.inference_mode`` under :func:`autocast`."""
    with torch.inference_mode(), autocast(precision, device):
        yield
