"""Checkpoints (network, EMA, optimiser, step) and the exponential moving average of the weights.

A run folder holds ``config.json`` (the resolved run configuration), ``data.json`` (the data
provenance and subject split), ``code.json`` (the git commit and intensity normalisation the run
started with, and those of each resume), ``checkpoints/step-XXXXXXXX.pt`` (the newest few), and
``checkpoints/latest`` naming the newest. Checkpoints are written atomically by the first process.
Resuming restores everything the next step depends on, so on the CPU a resumed run continues
bit for bit as if it had never stopped (the data and noise are functions of the step; see
:mod:`training.patches`).
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import torch
from torch import nn

CHECKPOINTS = "checkpoints"
LATEST = "latest"
CONFIG = "config.json"
DATA = "data.json"
INITIALISED_FROM = "initialised_from.json"  # the exported weights a fine-tuning run started from
CODE = "code.json"  # the commit (and intensity normalisation) the run started with, and each resume's


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
    """Where a fine-tuning run's ``kind`` network came from: the weights folder, the sha256 of the file (read
    from the file itself and checked against the manifest, so the folder being overwritten later cannot change
    what the record names) and that network's manifest provenance (itself carrying ``initialised_from`` when it
    was fine-tuned too), so an export names its whole lineage even after the folder it started from is gone."""
    from model.errors import WeightsError
    from model.weights.manifest import network_entry, read_manifest, sha256_of

    directory = Path(directory)
    manifest = read_manifest(directory)
    entry = network_entry(manifest, kind, directory)
    actual = sha256_of(directory / entry.file)
    if actual != entry.sha256:
        raise WeightsError(f"{kind} weights {directory / entry.file} changed while the run started: sha256 {actual}, "
                           f"manifest says {entry.sha256}")
    provenance = entry.provenance if isinstance(entry.provenance, dict) else {}
    others = {name for name in manifest["networks"] if name != kind}
    return {"weights": str(directory.resolve()), "file": entry.file, "sha256": actual,
            "provenance": {key: value for key, value in provenance.items() if key not in others}}


def code_version() -> str | None:
    """The git commit of this code (with ``-dirty`` for local changes), when it is a git checkout."""
    try:
        result = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=40"], capture_output=True,
                                text=True, timeout=10, cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def record_code(run_dir: Path, step: int) -> dict[str, Any]:
    """Write the run's ``code.json`` when it starts (``step`` 0): the git commit and the intensity normalisation
    it trains with; a resume (``step`` > 0) appends its own under ``resumes``. A run from before ``code.json``
    gets one whose start is unknown (``code_version`` and ``intensity`` null)."""
    from model.volumes.intensity import normalisation_record

    path = Path(run_dir) / CODE
    now = {"code_version": code_version(), "intensity": normalisation_record(), "at": _now()}
    if step == 0:
        record = {**now, "resumes": []}
    else:
        record = read_code(run_dir) or {"code_version": None, "intensity": None, "at": None, "resumes": []}
        record.setdefault("resumes", []).append({**now, "step": step})
    write_json(path, record)
    return record


def check_code_resumable(run_dir: Path) -> None:
    """Refuse to resume a run that started with another intensity normalisation than this code implements."""
    from model.volumes.intensity import normalisation_record

    record = read_code(run_dir)
    started = record.get("intensity") if record else None
    if started is not None and started != normalisation_record():
        raise ValueError(f"cannot resume {run_dir}: it started with the intensity normalisation "
                         f"{json.dumps(started, sort_keys=True)} ({CODE}), this code implements "
                         f"{json.dumps(normalisation_record(), sort_keys=True)}")


def read_code(run_dir: Path) -> dict[str, Any] | None:
    """The run's ``code.json`` (:func:`record_code`), or None for a run from before it existed."""
    path = Path(run_dir) / CODE
    return json.loads(path.read_text()) if path.is_file() else None


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
