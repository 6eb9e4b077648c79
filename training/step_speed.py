"""``python -m training.step_speed --config CONFIG``: seconds per training step of both networks, float32
against bfloat16 autocast (where the processor computes it natively, or on CUDA).

One step is what the training loop does per batch (:func:`training.objectives.train_step`): the objective's
forward, the backward pass, gradient clipping and an AdamW step, and for the bridge its identity step too, on
random patches of the configuration's size and batch (a step costs the same whatever the patches hold). Each
network and precision in turn, one warm-up step, median of ``--repeats``; one thread unless ``--threads``.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch

from model.execution.precision import cpu_has_native_bfloat16
from model.networks import NETWORK_NAMES
from training.cli import resolve_config
from training.loop import build_network
from training.objectives import build_objective, train_step

LEVELS = {"diffusion": (10, 20), "bridge": (100, 120)}  # timesteps of the two patches of a step


def step_seconds(kind: str, config, precision: str, repeats: int) -> float:
    """Median seconds of one training step of network ``kind`` in ``precision``: the loop's own
    :func:`training.objectives.train_step` (the bridge's identity step included, when its weight is not 0)."""
    network = build_network(kind, config)
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bfloat16" else contextlib.nullcontext
    section = getattr(config, kind)
    objective = build_objective(kind, network, section, autocast)
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-4)
    parameters = [p for p in network.parameters() if p.requires_grad]
    identity_step = kind == "bridge" and section.identity_weight > 0
    generator = torch.Generator().manual_seed(0)
    shape = (config.train.batch_size, 3, *config.data.patch)
    batch = {"high": torch.rand(shape, generator=generator) * 2 - 1, "noise": torch.randn(shape, generator=generator),
             "t": torch.tensor([LEVELS[kind][i % 2] for i in range(shape[0])])}
    if kind == "bridge":
        batch["low"] = torch.rand(shape, generator=generator) * 2 - 1
    seconds = []
    for repeat in range(repeats + 1):
        started = time.perf_counter()
        train_step(objective, batch, optimizer, parameters, config.train.grad_clip, identity_step)
        if repeat:  # the first is the warm-up
            seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.step_speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, required=True, help="a run configuration (networks, patch size, batch)")
    p.add_argument("--repeats", type=int, default=3, help="timed steps per network and precision (median)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a configuration key, as the training commands take it (repeatable)")
    p.add_argument("--network", choices=NETWORK_NAMES, action="append", help="time only this network (repeatable)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = resolve_config(args.config, args.overrides)
    precisions = ["float32"] + (["bfloat16"] if cpu_has_native_bfloat16() else [])
    print(f"{args.threads} thread(s), batch {config.train.batch_size} of {config.data.patch}, native bfloat16: "
          f"{'yes' if len(precisions) > 1 else 'no'}\n\n| network | precision | s / step | steps / hour |\n|---|---|---|---|")
    for kind in args.network or NETWORK_NAMES:
        for precision in precisions:
            seconds = step_seconds(kind, config, precision, args.repeats)
            print(f"| {kind} | {precision} | {seconds:.2f} | {3600 / seconds:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
