"""Cohorts over several processes: ``torchrun --nproc-per-node N process.py --input IN --output OUT``.

Each process (one GPU each, ``cuda:LOCAL_RANK``, or the CPU) takes a deterministic share of the
subjects, every ``WORLD_SIZE``-th of them in sorted order starting at its ``RANK``, and writes
them; once all are done, the per-process results are gathered over a gloo process group (CPU
tensors, so it works whatever the device) and rank 0 logs the combined summary (and writes the QC
index). A run with the same seed gives the same outputs as one process would: every subject is
seeded by the seed alone, never by its position in the run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from model.batch import CaseResult, output_folder
from model.errors import EnhancementError, UsageError
from model.layouts import Case

log = logging.getLogger(__name__)

# Gathering waits for the slowest process: a cohort's share can take many hours.
GATHER_TIMEOUT = timedelta(days=7)


@dataclass(frozen=True)
class Shard:
    """This process's place among the processes of a torchrun launch."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_leader(self) -> bool:
        return self.rank == 0

    def assign(self, cases: list[Case]) -> list[Case]:
        """This process's subjects: every ``world_size``-th one of the ID-sorted list, from ``rank`` on."""
        ordered = sorted(cases, key=lambda case: case.case_id)
        return ordered[self.rank::self.world_size]

    def device(self, requested: str) -> str:
        """``auto``/``cuda`` become this process's own GPU (``cuda:LOCAL_RANK``) when GPUs are present."""
        if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
            return f"cuda:{self.local_rank}"
        return requested


def current_shard() -> Shard | None:
    """The shard of a process started by torchrun (``WORLD_SIZE`` > 1), else None."""
    try:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        raise UsageError("WORLD_SIZE, RANK and LOCAL_RANK must be integers (they are set by torchrun)") from None
    if world_size <= 1:
        return None
    if not 0 <= rank < world_size:
        raise UsageError(f"RANK {rank} is outside 0..{world_size - 1} (WORLD_SIZE {world_size})")
    return Shard(rank, world_size, local_rank)


def start(shard: Shard) -> None:
    """Join the gloo process group (torchrun's rendezvous: MASTER_ADDR, MASTER_PORT in the environment)."""
    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=GATHER_TIMEOUT)
    log.info("process %d of %d (local rank %d)", shard.rank + 1, shard.world_size, shard.local_rank)


def gather(items: list) -> list:
    """Every process's ``items``, concatenated in rank order, on every process (waits for all of them)."""
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, items)
    return [item for part in gathered for item in part]


def run_shard(shard: Shard, work: Callable[[], list[CaseResult]], cases: list[Case]) -> list[CaseResult]:
    """Run this process's ``work`` (its share, ``cases``), then gather every process's results.

    A refusal that stops this share as a whole (e.g. an output folder it cannot write) becomes a
    failed line per case of the share, so that the others' results are still gathered and summarised.
    """
    start(shard)
    try:
        try:
            results = work()
        except EnhancementError as error:
            log.error("process %d: %s", shard.rank, error)
            results = [CaseResult(case.case_id, f"FAILED {str(error).splitlines()[0]}", 0.0, output_folder(case))
                       for case in cases]
        return [CaseResult(**item) for item in gather([result.to_dict() for result in results])]
    finally:
        finish()


def finish() -> None:
    """Leave the process group."""
    if dist.is_initialized():
        dist.destroy_process_group()
