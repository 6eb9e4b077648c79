"""Export: the newest checkpoint of a diffusion run and of a bridge run, as frozen networks plus the
manifest that inference loads (:func:`model.weights.save_networks`).

The EMA weights are exported by default. Each network's manifest provenance carries the
training configuration, the data provenance and subject split, the step, the checkpoint's
sha256 and its validation metrics; a fine-tuned network also carries ``initialised_from``, the
provenance of the weights it started from (and so on back to a run from scratch).
"""

from __future__ import annotations

import datetime
import logging
import subprocess
from pathlib import Path
from typing import Any

from model.schedule import cosine_schedule
from model.weights import save_networks, sha256_of
from training import checkpoint
from training.config import NETWORKS, RunConfig
from training.loop import build_network

log = logging.getLogger(__name__)


def _code_version() -> str | None:
    """The git commit of this code (with ``-dirty`` for local changes), when it is a git checkout."""
    try:
        result = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=40"], capture_output=True,
                                text=True, timeout=10, cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def exported_network(run_dir: Path, expected: str, use_ema: bool = True) -> tuple[Any, dict[str, Any]]:
    """The network of a run's newest checkpoint and its provenance."""
    run_dir = Path(run_dir)
    kind, config_dict, data_provenance = checkpoint.read_run(run_dir)
    if kind != expected:
        raise ValueError(f"{run_dir} is a {kind} run; expected a {expected} run")
    path = checkpoint.latest_path(run_dir)
    if path is None:
        raise ValueError(f"{run_dir} has no checkpoint to export")
    config = RunConfig.from_dict(config_dict)
    state = checkpoint.load(path)
    network = build_network(kind, config)
    network.load_state_dict(state["ema" if use_ema else "network"])
    finished = state["step"] >= config.train.steps
    if not finished:
        log.warning("%s: exporting an unfinished run (step %d of %d)", run_dir, state["step"], config.train.steps)
    provenance = {
        "run_dir": str(run_dir.resolve()), "checkpoint": path.name, "checkpoint_sha256": sha256_of(path),
        "step": state["step"], "finished": finished, "weights": "ema" if use_ema else "raw",
        "validation_metrics": {k: v for k, v in state["metrics"].items() if k.startswith("val/")},
        "training_metrics": {k: v for k, v in state["metrics"].items() if k.startswith("train/")},
        "training_config": config_dict, "data": data_provenance,
    }
    initialised_from = checkpoint.read_initialisation(run_dir)
    if initialised_from is not None:
        provenance["initialised_from"] = initialised_from
    return network.eval(), provenance


def export(diffusion_run: Path, bridge_run: Path, out: Path, use_ema: bool = True) -> Path:
    """Write ``out/diffusion.pt``, ``out/bridge.pt`` and ``out/manifest.json``; returns the manifest path."""
    networks, provenance = {}, {
        "source": "python -m training export",
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "code_version": _code_version(),
    }
    for name, run in zip(NETWORKS, (diffusion_run, bridge_run)):
        networks[name], provenance[name] = exported_network(run, name, use_ema)
    timesteps = {name: RunConfig.from_dict(provenance[name]["training_config"]).section(name).timesteps
                 for name in NETWORKS}
    if len(set(timesteps.values())) != 1:
        raise ValueError(f"the runs were trained with different schedules (T: {timesteps}); the bridge works at "
                         "the diffusion model's levels, so both need the same T")
    return save_networks(Path(out), networks, trained=True, provenance=provenance,
                         schedule=cosine_schedule(timesteps["diffusion"]))
