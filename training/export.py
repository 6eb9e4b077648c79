"""Export: the newest checkpoint of a diffusion run and of a bridge run, as frozen networks plus the
manifest that inference loads (:func:`model.weights.manifest.save_networks`).

The EMA weights are exported by default. Each network's manifest provenance carries the
training configuration, the data provenance and subject split, the step, the checkpoint's
sha256, its validation metrics and ``code_version``, the git commit the run started with (from the
run's ``code.json``; ``resumes`` when it was resumed at other commits); a fine-tuned network also carries
``initialised_from``, the sha256 and provenance of the weights it started from (and so on back to a run
from scratch). ``export_code_version`` beside them is the export's own commit. The manifest's
``intensity`` block is this code's normalisation; a run that started with another is refused.
"""

from __future__ import annotations

import datetime
import json
import logging
from pathlib import Path
from typing import Any

from model.volumes.intensity import normalisation_record
from model.method.schedule import cosine_schedule
from model.weights.manifest import load_network, read_manifest, save_networks, sha256_of
from training import checkpoint
from training.config import NETWORKS, RunConfig
from training.loop import build_network

log = logging.getLogger(__name__)


def _training_code(run_dir: Path) -> dict[str, Any]:
    """``code_version``: the commit the run started with (and ``resumes``: the commits of its resumes, when any
    differs), from the run's ``code.json``; refuses a run trained with another intensity normalisation than
    this code's, which the manifest would otherwise misstate."""
    record = checkpoint.read_code(run_dir)
    if record is None:
        log.warning("%s records no training commit (%s; runs before it): code_version is null", run_dir,
                    checkpoint.CODE)
        return {"code_version": None}
    current = normalisation_record()
    for part in [record, *record.get("resumes", [])]:
        if part.get("intensity") not in (None, current):
            raise ValueError(f"{run_dir} trained with the intensity normalisation "
                             f"{json.dumps(part['intensity'], sort_keys=True)} ({checkpoint.CODE}), this code "
                             f"implements {json.dumps(current, sort_keys=True)}: export it with the code that trained it")
    found: dict[str, Any] = {"code_version": record.get("code_version")}
    resumes = record.get("resumes", [])
    if any(r.get("code_version") != found["code_version"] for r in resumes):
        found["resumes"] = [{"step": r.get("step"), "code_version": r.get("code_version")} for r in resumes]
    return found


def exported_network(run_dir: Path, expected: str, use_ema: bool = True) -> tuple[Any, dict[str, Any]]:
    """The network of a run's newest checkpoint and its provenance."""
    run_dir = Path(run_dir)
    kind, config_dict, data_provenance = checkpoint.read_run(run_dir)
    if kind != expected:
        raise ValueError(f"{run_dir} is a {kind} run; expected a {expected} run")
    trained_by = _training_code(run_dir)
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
        "run_dir": str(run_dir.resolve()), **trained_by, "checkpoint": path.name, "checkpoint_sha256": sha256_of(path),
        "step": state["step"], "finished": finished, "weights": "ema" if use_ema else "raw",
        "validation_metrics": {k: v for k, v in state["metrics"].items() if k.startswith("val/")},
        "training_metrics": {k: v for k, v in state["metrics"].items() if k.startswith("train/")},
        "training_config": config_dict, "data": data_provenance,
    }
    initialised_from = checkpoint.read_initialisation(run_dir)
    if initialised_from is not None:
        provenance["initialised_from"] = initialised_from
    return network.eval(), provenance


def copied_network(weights: Path, name: str) -> tuple[Any, dict[str, Any]]:
    """Network ``name`` of an exported weights folder, unchanged (verified like inference verifies it), and its
    provenance there, with where it was copied from: a network kept while the other is retrained."""
    manifest = read_manifest(weights)
    entry = manifest["networks"][name]
    provenance = dict((entry.get("provenance") or {}).get(name) or {})
    if "training_config" not in provenance:
        raise ValueError(f"{weights}: the {name} network's provenance has no training_config; it cannot be copied")
    provenance["copied_from"] = {"weights": str(Path(weights).resolve()), "file": entry["file"], "sha256": entry["sha256"]}
    return load_network(weights, name), provenance


def export(diffusion_run: Path | None, bridge_run: Path | None, out: Path, use_ema: bool = True,
           bridge_from: Path | None = None, diffusion_from: Path | None = None) -> Path:
    """Write ``out/diffusion.pt``, ``out/bridge.pt`` and ``out/manifest.json``; returns the manifest path. Each
    network comes from its run folder, or unchanged from a weights folder (``diffusion_from``, ``bridge_from``: a
    network retrained alone beside the other, shipped one)."""
    sources = {"diffusion": (diffusion_run, diffusion_from), "bridge": (bridge_run, bridge_from)}
    for name, (run, kept) in sources.items():
        if (run is None) == (kept is None):
            raise ValueError(f"give the {name}'s run folder or a weights folder to copy it from, one of them")
    if diffusion_run is None and bridge_run is None:
        raise ValueError("nothing to export: both networks would be copied unchanged")
    networks, provenance = {}, {
        "source": "python -m training export",
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "export_code_version": checkpoint.code_version(),
    }
    for name, (run, kept) in sources.items():
        networks[name], provenance[name] = (exported_network(run, name, use_ema) if run is not None
                                            else copied_network(kept, name))
    timesteps = {name: RunConfig.from_dict(provenance[name]["training_config"]).section(name).timesteps
                 for name in NETWORKS}
    if len(set(timesteps.values())) != 1:
        raise ValueError(f"the runs were trained with different schedules (T: {timesteps}); the bridge works at "
                         "the diffusion model's levels, so both need the same T")
    return save_networks(Path(out), networks, trained=True, provenance=provenance,
                         schedule=cosine_schedule(timesteps["diffusion"]))
