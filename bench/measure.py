"""Timing and peak-memory helpers: wall clock with device synchronisation, host RSS and GPU peaks."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

RSS_SAMPLE_SECONDS = 0.01
MB = 2**20


def synchronize(device: torch.device) -> None:
    """Wait for queued device work (CUDA), so that wall-clock times are complete."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def resident_bytes() -> int:
    """The process's resident set size now (Linux ``/proc/self/statm``); 0 where unavailable."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    import os

    return pages * os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Peak host RSS (sampled every 10 ms by a thread) and peak GPU allocation while the block runs."""

    def __init__(self, device: torch.device):
        self.device = device
        self.host_bytes = 0  # peak resident set size of the process
        self.host_baseline_bytes = 0  # resident set size when the block started
        self.gpu_bytes: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.host_bytes = max(self.host_bytes, resident_bytes())
            self._stop.wait(RSS_SAMPLE_SECONDS)

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        self.host_bytes = self.host_baseline_bytes = resident_bytes()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        synchronize(self.device)
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self.host_bytes = max(self.host_bytes, resident_bytes())
        if self.device.type == "cuda":
            self.gpu_bytes = int(torch.cuda.max_memory_allocated(self.device))

    @property
    def host_added_bytes(self) -> int:
        """How far the process's resident set grew above its size at the start of the block."""
        return max(0, self.host_bytes - self.host_baseline_bytes)


@dataclass
class Timings:
    """Wall-clock seconds of repeated runs of one thing."""

    seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def timed(self, run: Callable[[], object], device: torch.device):
        """Run once, record its seconds (device work included) and return its result."""
        synchronize(device)
        started = time.perf_counter()
        result = run()
        synchronize(device)
        self.seconds.append(time.perf_counter() - started)
        return result
