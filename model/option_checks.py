"""Option values checked against what the code can take, before any file is read.

The settings validate themselves (:class:`model.settings.SamplerSettings`); these checks need more
than one setting, or a network's constraint.
"""

from __future__ import annotations

from model.bridge import WINDOW_MULTIPLE
from model.errors import UsageError
from model.settings import SamplerSettings

SEED_RANGE = (0, 2**64 - 1)  # torch.Generator.manual_seed and numpy's SeedSequence both take these


def check_options(settings: SamplerSettings) -> None:
    """Refuse a seed out of range, and a window the bridge network cannot take."""
    low, high = SEED_RANGE
    algorithm, window = settings.algorithm, settings.engine.window
    if not low <= algorithm.seed <= high:
        raise UsageError(f"--seed must be in {low}..2**64-1, got {algorithm.seed}")
    if algorithm.mode.uses_bridge and any(size % WINDOW_MULTIPLE for size in window):
        raise UsageError(f"--window {' '.join(map(str, window))}: the bridge (Swin UNETR) needs every "
                         f"window size divisible by {WINDOW_MULTIPLE}, e.g. 128 128 32")
