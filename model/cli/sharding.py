"""Cohorts over several processes: ``torchrun --nproc-per-node N process.py --input IN --output OUT``.

Each process (one GPU each, ``cuda:LOCAL_RANK``, or the CPU) takes a deterministic share of the
subjects, every ``WORLD_SIZE``-th of them in sorted order starting at its ``RANK``, and writes
them; once all are done, the per-process results are gathered over a gloo process group (CPU
tensors, so it works whatever the device) and rank 0 logs the combined summary (and writes the QC
index). A run with the same seed gives the same outputs as one process would: every subject is
seeded by the seed alone, never by its position in the run.

Every process then waits at a last barrier until rank 0 has written the summary and the index, so that
no process's exit makes torchrun stop rank 0 half-way. Rank 0 carries the run's exit status (1 when a
subject failed anywhere); the others exit 0 after the barrier. A process that ends with an error writes
its one line into torchrun's error file (``TORCHELASTIC_ERROR_FILE``, :func:`report_to_launcher`), so
that torchrun's own report, which it prints last and which cannot be suppressed, ends with that line
instead of a pointer to its documentation.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

from .cohorts import CaseResult, output_folder
from ..errors import EnhancementError, UsageError
from ..volumes.layouts import Case

log = logging.getLogger(__name__)

# Gathering waits for the slowest process: a cohort's share can take many hours.
GATHER_TIMEOUT = timedelta(days=7)
# How long rank 0 waits, after the last barrier, for the other processes on its node to have exited before it
# exits itself (with the run's status): torchrun stops the processes still running when one fails.
PEERS_EXIT_WAIT = 20.0


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


def run_shard(shard: Shard, work: Callable[[], list[CaseResult]], cases: list[Case],
              finish: Callable[[list[CaseResult]], None] | None = None) -> list[CaseResult]:
    """Run this process's ``work`` (its share, ``cases``), gather every process's results, let rank 0 ``finish``
    the run with them (the summary, the QC index), and wait until it has; returns the gathered results.

    A refusal that stops this share as a whole (e.g. an output folder it cannot write), or any other error
    of it, becomes a failed line per case of the share, so that the others' results are still gathered
    and summarised.
    """
    start(shard)
    try:
        try:
            results = work()
        except Exception as error:  # noqa: BLE001 - one share's failure must not lose the others' results
            line = one_line(error)
            log.debug("process %d failed", shard.rank, exc_info=True)
            log.error("process %d: %s", shard.rank, line)
            results = [CaseResult(case.case_id, f"FAILED {line}", 0.0, output_folder(case)) for case in cases]
        gathered = [CaseResult(**item) for item in gather([result.to_dict() for result in results])]
        peers = gather([(socket.gethostname(), os.getpid())])
        try:
            if finish is not None and shard.is_leader:
                finish(gathered)
        finally:
            dist.barrier()  # nobody exits (and makes torchrun stop the others) before rank 0 has finished
    finally:
        leave()
    if shard.is_leader:
        wait_for_peers(peers)
    return gathered


def wait_for_peers(peers: list[tuple[str, int]], timeout: float = PEERS_EXIT_WAIT) -> None:
    """Rank 0, last: until the other processes of this node have exited (or ``timeout``), so that its own exit
    with a failure status cannot make torchrun stop one of them half-way out (and report it as failed too)."""
    host, mine = socket.gethostname(), os.getpid()
    waiting = [pid for name, pid in peers if name == host and pid != mine]
    deadline = time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        waiting = [pid for pid in waiting if _running(pid)]
        if waiting:
            time.sleep(0.05)


def _running(pid: int) -> bool:
    """Whether process ``pid`` still runs (an exited one that its parent has not reaped yet does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True
    return state not in ("Z", "X")


def one_line(error: Exception) -> str:
    """An error in one line: ours as it is, any other with its type."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return text if isinstance(error, EnhancementError) else f"{type(error).__name__}: {text or 'no message'}"


def report_to_launcher(message: str) -> None:
    """Under torchrun, ``message`` into this process's error file, which torchrun's report of a failed process
    shows as the last line (in place of its 'To enable traceback see: ...'). Elsewhere nothing."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not path:
        return
    try:
        with open(path, "w", encoding="utf-8") as stream:
            # torch.distributed.elastic's own layout (ErrorHandler.record_exception), without a Python call stack:
            # its report shows extraInfo.py_callstack when present, else message.message
            json.dump({"message": {"message": message, "extraInfo": {"timestamp": str(int(time.time()))}}}, stream)
    except OSError as error:
        log.debug("cannot write torchrun's error file %s: %s", path, error)


def leave() -> None:
    """Leave the process group."""
    if dist.is_initialized():
        dist.destroy_process_group()
