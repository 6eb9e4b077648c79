"""Processes, devices and precision: one process per GPU under ``torchrun``, or a single process.

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; with more than one process the
process group uses NCCL on CUDA and gloo on CPU (the tests run two CPU processes on gloo).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from dataclasses import dataclass
from typing import ContextManager

import torch
import torch.distributed as dist
from torch import nn

from model.execution.precision import cpu_has_native_bfloat16

log = logging.getLogger(__name__)

PROCESS_GROUP_TIMEOUT = datetime.timedelta(hours=2)  # rank 0 may prepare many subjects while the others wait


@dataclass(frozen=True)
class Runtime:
    """Where this process runs and how it computes."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    bfloat16: bool  # bf16 autocast (CUDA, or a CPU that computes bfloat16 natively)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """Whether this is the process that logs, validates and writes checkpoints."""
        return self.rank == 0

    def autocast(self) -> ContextManager:
        """bf16 autocast when asked for and native (CUDA, or AVX512-BF16 / AMX on the CPU); float32 otherwise."""
        if self.bfloat16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def mean_over_processes(self, values: dict[str, torch.Tensor]) -> dict[str, float]:
        """Each scalar averaged over the processes (every process must call this)."""
        if not values:
            return {}
        names = sorted(values)
        stacked = torch.stack([values[n].detach().float().to(self.device) for n in names])
        if self.distributed:
            dist.all_reduce(stacked)
            stacked /= self.world_size
        return dict(zip(names, stacked.tolist()))


def start(device: str = "auto", precision: str = "auto") -> Runtime:
    """Join the torchrun process group (when there is one) and pick this process's device."""
    rank = int(os.environ.get("RANK", 0))
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        raise RuntimeError("train.device = 'cuda' but no CUDA device is available")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        chosen = torch.device("cuda", local_rank)
    else:
        chosen = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=PROCESS_GROUP_TIMEOUT)
    # On the CPU only where the processor computes bfloat16 natively: measured 1.4x (diffusion and bridge)
    # per step on a Zen 4 AMD EPYC, one thread (docs/training.md); emulated elsewhere, and far slower.
    # "auto" and "bfloat16" (the inference vocabulary, model.config.settings.PRECISIONS) both mean: bf16 autocast
    # where the device computes it natively, else float32 (a training run never emulates it).
    native = use_cuda or cpu_has_native_bfloat16()
    wants_bfloat16 = precision in ("auto", "bfloat16")
    if precision == "bfloat16" and not native:
        log.info("train.precision = bfloat16: this CPU has no native bfloat16 (AVX512-BF16 / AMX); computing in float32")
    return Runtime(rank, world_size, local_rank, chosen, bfloat16=wants_bfloat16 and native)


def stop(runtime: Runtime) -> None:
    """Leave the process group."""
    if runtime.distributed and dist.is_initialized():
        dist.destroy_process_group()


class Float32WhenSmallConv3d(nn.Conv3d):
    """A Conv3d that computes in float32 under CPU autocast when its input is smaller than its kernel along two
    axes or more (see :func:`guard_small_convolutions`); otherwise exactly ``nn.Conv3d``. Same parameters, same
    state-dict keys."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        small = sum(size < k for size, k in zip(x.shape[2:], self.kernel_size)) >= 2
        if not (small and x.device.type == "cpu" and torch.is_autocast_enabled("cpu")):
            return super().forward(x)
        with torch.autocast("cpu", enabled=False):
            return super().forward(x.float())


def guard_small_convolutions(network: nn.Module) -> int:
    """Make the 3D convolutions of ``network`` compute in float32 where oneDNN's bfloat16 weight gradient is wrong.

    On the CPU, with torch 2.13.0, the bfloat16 weight gradient of a 3x3x3 convolution of a 2x2x1 or 2x2x2 input
    (192 channels, batch 2: the Swin UNETR bridge's bottleneck on a 64x64x32 patch) comes back as garbage in 29 and
    28 of 30 random trials (values up to 1e30; 4x4x1 and larger inputs: 0 of 30; AMD EPYC Zen 4, AVX512-BF16;
    ``python -m training.step_speed`` does not see it, as it checks no values), which made every bfloat16 bridge
    run NaN within its first steps. Such inputs are a few voxels, so computing them in float32 costs nothing
    measurable. Returns how many convolutions were guarded."""
    guarded = 0
    for module in network.modules():
        if type(module) is nn.Conv3d:
            module.__class__ = Float32WhenSmallConv3d
            guarded += 1
    return guarded
