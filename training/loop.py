"""The training loop shared by both networks: set-up, resume, steps, EMA, logging, validation, checkpoints.

Run by every torchrun process (or by a single process). Each process takes its share of the
global batch; DistributedDataParallel averages the gradients, so the processes together take the
same step as one process with the whole batch.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from model.networks.bridge import Bridge
from model.networks.unet import MPUNet3D
from training import checkpoint, data, patches
from training.config import RunConfig
from training.monitor import Monitor
from training.objectives import build_objective, train_step
from training.runtime import Runtime, guard_small_convolutions, start, stop
from training.validation import Validator

log = logging.getLogger(__name__)

# Keys that may change when a run is resumed: bookkeeping, not the optimisation.
RESUMABLE_CHANGES = {"train.steps", "train.log_every", "train.validate_every", "train.checkpoint_every",
                     "train.keep_checkpoints", "train.progress", "train.validation_patches", "data.workers",
                     "train.time_limit_minutes", "train.init_weights",
                     "train.precision"}  # the arithmetic: a resume may move to bfloat16 where the CPU has it


def build_network(kind: str, config: RunConfig) -> nn.Module:
    """A freshly initialised network of ``kind`` (the same on every process for the same seed), its tiny 3D
    convolutions guarded against oneDNN's wrong bfloat16 weight gradient (:func:`training.runtime.
    guard_small_convolutions`: acts only under CPU autocast, the same network otherwise)."""
    torch.manual_seed(config.seed)
    network_config = config.network_config(kind)
    network = MPUNet3D(network_config) if kind == "diffusion" else Bridge(network_config)
    guard_small_convolutions(network)
    return network


def initialise_from_weights(network: nn.Module, kind: str, directory: Path) -> None:
    """Copy the exported ``kind`` network of a weights folder into ``network`` (fine-tuning start).

    The folder's manifest, checksum and configuration are checked as inference checks them; its
    architecture must equal this run's.
    """
    from model.weights.manifest import load_network

    exported = load_network(directory, kind)
    if exported.config != network.config:
        raise ValueError(f"train.init_weights {directory}: its {kind} network's configuration differs from this run's "
                         f"{kind}.network ({exported.config} vs {network.config})")
    network.load_state_dict(exported.state_dict())


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and key != "network":
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def check_resumable(saved: dict[str, Any], config: RunConfig) -> None:
    """Refuse to resume with a configuration that changes more than :data:`RESUMABLE_CHANGES`."""
    old, new = _flatten(saved), _flatten(config.to_dict())
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k) and k not in RESUMABLE_CHANGES)
    if changed:
        raise ValueError(f"cannot resume: the configuration differs from the run's saved config.json in {', '.join(changed)} "
                         f"(only {', '.join(sorted(RESUMABLE_CHANGES))} may change)")


def _prepare_run_dir(kind: str, config: RunConfig, run_dir: Path, resume: bool, runtime: Runtime) -> Path | None:
    """Check the run folder against the request; write ``config.json``; return the checkpoint to resume from."""
    latest = checkpoint.latest_path(run_dir) if run_dir.is_dir() else None
    if latest is not None and not resume:
        raise ValueError(f"{run_dir} already holds checkpoints; pass --resume to continue it, or use a new --run-dir")
    config_path = run_dir / checkpoint.CONFIG
    if config_path.is_file():
        saved = json.loads(config_path.read_text())
        if saved.get("network") != kind:
            raise ValueError(f"{run_dir} is a {saved.get('network')} run, not a {kind} run")
        if latest is not None:
            check_resumable(saved["config"], config)
            checkpoint.check_code_resumable(run_dir)
    runtime.barrier()  # everyone has read the old config before the first process replaces it
    if runtime.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        checkpoint.write_json(config_path, {"network": kind, "config": config.to_dict()})
    return latest


def _subjects(kind: str, config: RunConfig, run_dir: Path, runtime: Runtime) -> dict[str, list[data.PreparedSubject]]:
    """Prepare (once, shared over processes) and open the training and validation subjects."""
    cache = Path(config.data.cache) if config.data.cache else run_dir / "data-cache"
    split = data.split_subjects(data.list_subjects(config.data), config.data, config.seed)
    everyone = split["train"] + split["validation"]
    if runtime.main:
        log.info("preparing %d subjects in %s", len(everyone), cache)
    data.prepare_subjects(config.data, everyone, cache, runtime.rank, runtime.world_size)
    runtime.barrier()
    if runtime.main:
        checkpoint.write_json(run_dir / checkpoint.DATA, data.provenance(config.data, split))
    need_low = kind == "bridge"
    return {part: data.open_subjects(cache, ids, need_low) for part, ids in split.items()}


def train(kind: str, config: RunConfig, run_dir: Path, resume: bool = False) -> dict[str, float]:
    """Train network ``kind`` (diffusion or bridge) in ``run_dir``; returns the last logged metrics."""
    runtime = start(config.train.device, config.train.precision)
    try:
        return _train(kind, config, Path(run_dir), resume, runtime)
    finally:
        stop(runtime)


def _out_of_time(deadline: float | None, runtime: Runtime) -> bool:
    """Whether the run's time limit has passed; under torchrun, as soon as it has on any process."""
    if deadline is None:
        return False
    late = torch.tensor(float(time.perf_counter() > deadline))
    return runtime.mean_over_processes({"late": late})["late"] > 0


def _train(kind: str, config: RunConfig, run_dir: Path, resume: bool, runtime: Runtime) -> dict[str, float]:
    section, train_cfg = config.section(kind), config.train
    latest = _prepare_run_dir(kind, config, run_dir, resume, runtime)
    subjects = _subjects(kind, config, run_dir, runtime)

    network = build_network(kind, config).to(runtime.device)
    optimizer = torch.optim.AdamW(network.parameters(), lr=config.learning_rate(kind), betas=train_cfg.betas,
                                  weight_decay=train_cfg.weight_decay)
    ema = checkpoint.EMA(network, train_cfg.ema_decay)
    step, metrics = 0, {}
    if latest is not None:
        state = checkpoint.load(latest)
        network.load_state_dict(state["network"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        step, metrics = state["step"], dict(state["metrics"])
    elif train_cfg.init_weights:
        initialise_from_weights(network, kind, Path(train_cfg.init_weights))
        ema = checkpoint.EMA(network, train_cfg.ema_decay)
        if runtime.main:
            checkpoint.write_json(run_dir / checkpoint.INITIALISED_FROM,
                                  checkpoint.initialisation_record(Path(train_cfg.init_weights), kind))
            log.info("%s initialised from the exported weights in %s", kind, train_cfg.init_weights)
    elif runtime.main:  # a fresh start from scratch: no lineage left from an earlier attempt in this folder
        (run_dir / checkpoint.INITIALISED_FROM).unlink(missing_ok=True)
    if runtime.main:  # the commit that trains (at the start; each resume adds its own), read by the export
        checkpoint.record_code(run_dir, step)
    objective = build_objective(kind, network, section, runtime.autocast).to(runtime.device)
    module = objective
    if runtime.distributed:  # no buffer changes while training (no batch norm), so none to broadcast
        module = DistributedDataParallel(objective, device_ids=[runtime.local_rank] if runtime.device.type == "cuda" else None,
                                         broadcast_buffers=False)

    timesteps = patches.TimestepDraw(section.t_min, section.t_max, section.t_power if kind == "diffusion" else 1.0)
    dataset = patches.PatchDataset(subjects["train"], config.data.patch, config.data.head_fraction, timesteps,
                                   kind == "bridge", config.seed,
                                   augment_low=kind == "bridge" and config.data.low_field_augmentation,
                                   random_contrast=config.data.random_contrast if kind == "bridge" else 0.0)
    loader = patches.make_loader(dataset, step, train_cfg.steps, train_cfg.batch_size, runtime.rank,
                                 runtime.world_size, config.data.workers, runtime.device.type == "cuda")
    validator = Validator(kind, config, subjects["validation"], runtime.device, runtime.autocast, objective.schedule)
    if runtime.main and not validator.available:
        log.warning("no validation subjects: validation metrics are skipped")
    monitor = Monitor(run_dir, runtime.main, step, train_cfg.steps, train_cfg.progress)
    parameters = list(network.parameters())
    identity_step = kind == "bridge" and section.identity_weight > 0
    if runtime.main:
        monitor.message(f"{kind}: step {step} of {train_cfg.steps}, {runtime.world_size} process(es) on "
                        f"{runtime.device}, {'bf16 autocast' if runtime.bfloat16 else 'float32'}, "
                        f"{len(subjects['train'])} training / {len(subjects['validation'])} validation subjects")
    interval_start, interval_steps = time.perf_counter(), 0
    deadline = time.perf_counter() + 60.0 * train_cfg.time_limit_minutes if train_cfg.time_limit_minutes else None
    try:
        for batch in loader:
            network.train()
            torch.manual_seed(patches.seed_from(config.seed, 0, step, runtime.rank))  # dropout, if any
            batch = {k: v.to(runtime.device, non_blocking=True) for k, v in batch.items()}
            values = train_step(module, batch, optimizer, parameters, train_cfg.grad_clip, identity_step)
            step += 1
            interval_steps += 1
            ema.update(network, step)
            last = step == train_cfg.steps or _out_of_time(deadline, runtime)
            if step % train_cfg.log_every == 0 or last:
                averaged = runtime.mean_over_processes(values)
                elapsed = time.perf_counter() - interval_start
                logged = {f"train/{k}": v for k, v in averaged.items()}
                logged.update({"train/lr": optimizer.param_groups[0]["lr"], "train/sec_per_step": elapsed / interval_steps})
                monitor.scalars(step, logged)
                metrics.update(logged)
                monitor.advance(step, averaged["loss"])
                interval_start, interval_steps = time.perf_counter(), 0
            else:
                monitor.advance(step)
            if (train_cfg.validate_every and step % train_cfg.validate_every == 0) or last:
                if runtime.main and validator.available:
                    found, rows = validator.run(ema.module)
                    monitor.scalars(step, found)
                    monitor.image(step, f"validation/{kind}", rows)
                    metrics.update(found)
                    monitor.message(f"step {step}: " + ", ".join(f"{k} {v:.4g}" for k, v in found.items()))
                runtime.barrier()
            if step % train_cfg.checkpoint_every == 0 or last:
                if runtime.main:
                    checkpoint.save(run_dir, step, network, ema, optimizer, metrics, train_cfg.keep_checkpoints)
                runtime.barrier()
            if last:
                if runtime.main and step < train_cfg.steps:
                    monitor.message(f"stopped at step {step} of {train_cfg.steps}: train.time_limit_minutes "
                                    f"({train_cfg.time_limit_minutes:g}) reached; resume with --resume")
                break
    finally:
        monitor.close()
    return metrics
