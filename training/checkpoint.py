"""Checkpoints (network, EMA, optimiser, step) and the exponential moving average of the weights.

A run folder holds ``config.json`` (the resolved run configuration), ``data.json`` (the data
provenance and subject split), ``checkpoints/step-XXXXXXXX.pt`` (the newest few), and
``checkpoints/latest`` naming the newest. Checkpoints are written atomically by the first process.
Resuming restores everything the next step depends on, so on the CPU a resumed run continues
bit for bit as if it had never stopped (the data and noise are functions of the step; see
:mod:`training.patches`).
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

CHECKPOINTS = "checkpoints"
LATEST = "latest"
CONFIG = "config.json"
DATA = "data.json"
INITIALISED_FROM = "initialised_from.json"  # the exported weights a fine-tuning run started from


class EMA:
    """``ema <- d ema + (1 - d) w`` after every step, with ``d = min(decay, (1 + step) / (10 + step))``.

    The warm-up keeps the first steps from being dominated by the random initialisation. Buffers
    are copied. The averaged network is a separate module in eval mode without gradients.
    """

    def __init__(self, network: nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(network).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, network: nn.Module, step: int) -> None:
        """Fold in the weights after optimiser step ``step`` (1-based)."""
        decay = min(self.decay, (1 + step) / (10 + step))
        averaged = list(self.module.parameters())
        torch._foreach_lerp_(averaged, [p.detach() for p in network.parameters()], 1.0 - decay)
        for mine, theirs in zip(self.module.buffers(), network.buffers()):
            mine.copy_(theirs)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(partial, path)


def save(run_dir: Path, step: int, network: nn.Module, ema: EMA, optimizer: torch.optim.Optimizer,
         metrics: dict[str, float], keep: int) -> Path:
    """Write ``checkpoints/step-<step>.pt``, point ``latest`` at it and delete all but the ``keep`` newest."""
    folder = Path(run_dir) / CHECKPOINTS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step-{step:08d}.pt"
    partial = folder / f".{path.name}.partial"
    torch.save({"step": step, "network": network.state_dict(), "ema": ema.state_dict(),
                "optimizer": optimizer.state_dict(), "metrics": metrics}, partial)
    os.replace(partial, path)
    latest = folder / LATEST
    partial = folder / f".{LATEST}.partial"
    partial.write_text(path.name + "\n")
    os.replace(partial, latest)
    for old in sorted(folder.glob("step-*.pt"))[:-keep]:
        old.unlink()
    return path


def latest_path(run_dir: Path) -> Path | None:
    """The newest checkpoint of a run, or None."""
    latest = Path(run_dir) / CHECKPOINTS / LATEST
    if not latest.is_file():
        return None
    path = latest.parent / latest.read_text().strip()
    if not path.is_file():
        raise FileNotFoundError(f"{latest} names {path.name}, which is missing")
    return path


def load(path: Path) -> dict[str, Any]:
    """A checkpoint's contents, on the CPU."""
    return torch.load(path, map_location="cpu", weights_only=True)


def initialisation_record(directory: Path, kind: str) -> dict[str, Any]:
    """Where a fine-tuning run's ``kind`` network came from: the weights folder, the file's sha256 and that
    network's manifest provenance (itself carrying ``initialised_from`` when it was fine-tuned too), so an
    export names its whole lineage even after the folder it started from is gone."""
    from model.weights import network_entry, read_manifest

    directory = Path(directory)
    manifest = read_manifest(directory)
    entry = network_entry(manifest, kind, directory)
    provenance = entry.provenance if isinstance(entry.provenance, dict) else {}
    others = {name for name in manifest["networks"] if name != kind}
    return {"weights": str(directory.resolve()), "file": entry.file, "sha256": entry.sha256,
            "provenance": {key: value for key, value in provenance.items() if key not in others}}


def read_initialisation(run_dir: Path) -> dict[str, Any] | None:
    """The run's :func:`initialisation_record`, or None for a run that started from scratch."""
    path = Path(run_dir) / INITIALISED_FROM
    return json.loads(path.read_text()) if path.is_file() else None


def read_run(run_dir: Path) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``(network, config dict, data provenance)`` of a run folder."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).is_file():
        raise FileNotFoundError(f"{run_dir} is not a training run folder (no {CONFIG})")
    saved = json.loads((run_dir / CONFIG).read_text())
    data = json.loads((run_dir / DATA).read_text()) if (run_dir / DATA).is_file() else {}
    return saved["network"], saved["config"], data
