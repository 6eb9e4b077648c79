"""How a simulated data set names and seeds its subjects (``python -m simulation``, the training stage)."""

from __future__ import annotations

import numpy as np


def subject_seed(base_seed: int, number: int) -> int:
    """The seed of subject ``number`` in a data set made with ``--seed base_seed`` (independent of batching)."""
    return int(np.random.SeedSequence([base_seed, number]).generate_state(1, dtype=np.uint32)[0])


def subject_id(prefix: str, number: int) -> str:
    """``SIM0001``-style identifier."""
    return f"{prefix}{number:04d}"
