"""``python -m bench.cpu_levers``: where a window's time goes on the CPU, and what each lever buys.

For each network of a weights folder, on one 128x128x32 window of random input (a window costs the same
whatever it holds), one thread by default:

1. **Levers**: seconds per window for every combination of windows per call (1 or 4), arithmetic (float32,
   and bfloat16 autocast where the processor computes it natively: AVX512-BF16 or AMX, detected) and memory
   layout (contiguous or channels-last-3D); configurations interleaved, median of ``--repeats``; the
   output's relative difference from float32 alone.
2. **Profile**: one float32 call under ``torch.profiler``, self time per operator category.
3. **FLOPs** per window (``torch.utils.flop_counter``) and the achieved GFLOP/s of the float32 call.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from model.cli.options import add_weights
from model.execution.precision import cpu_has_native_bfloat16
from model.weights.manifest import load_network

WINDOW = (128, 128, 32)
CATEGORIES = (  # operator name fragment -> category, first match wins
    ("convolution", "convolutions"), ("conv3d", "convolutions"), ("bmm", "attention"), ("softmax", "attention"),
    ("attention", "attention"), ("isneginf", "attention"), ("norm", "normalisation"), ("div", "normalisation"),
    ("silu", "activations"), ("gelu", "activations"), ("mul", "elementwise"), ("add", "elementwise"),
    ("lerp", "elementwise"), ("clamp", "elementwise"), ("where", "elementwise"), ("cat", "copies"),
    ("copy", "copies"), ("clone", "copies"), ("contiguous", "copies"), ("pool", "resampling"),
    ("upsample", "resampling"), ("interpolate", "resampling"),
)


def call(name: str, network: torch.nn.Module):
    """The network's whole-window function: eps_theta(x, t) or the bridge's residual phi(x)."""
    if name == "diffusion":
        return lambda x: network(x, torch.full((x.shape[0],), 10.0))
    return network.residual


def window_input(n: int, window: tuple[int, ...]) -> torch.Tensor:
    return torch.randn(n, 3, *window, generator=torch.Generator().manual_seed(0))


def timed(fn, x: torch.Tensor, precision: str, channels_last: bool) -> tuple[float, torch.Tensor]:
    """Seconds per window of one call, and its float32 output."""
    x = x.contiguous(memory_format=torch.channels_last_3d) if channels_last else x
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16")
    with torch.inference_mode(), autocast:
        started = time.perf_counter()
        out = fn(x)
        return (time.perf_counter() - started) / x.shape[0], out.float()


def lever_rows(name: str, fn, repeats: int, precisions: list[str], window: tuple[int, ...] = WINDOW) -> list[dict]:
    """Every combination, interleaved, medians over ``repeats``."""
    inputs = window_input(4, window)
    configurations = list(itertools.product((1, 4), precisions, (False, True)))
    seconds = defaultdict(list)
    outputs = {}
    for configuration in configurations:  # warm-up
        timed(fn, inputs[: configuration[0]], *configuration[1:])
    for _ in range(repeats):
        for configuration in configurations:
            per_window, out = timed(fn, inputs[: configuration[0]], *configuration[1:])
            seconds[configuration].append(per_window)
            outputs[configuration] = out[:1]
    reference = outputs[(1, "float32", False)]
    base = statistics.median(seconds[(4, "float32", False)])
    rows = []
    for configuration in configurations:
        median = statistics.median(seconds[configuration])
        difference = float((outputs[configuration] - reference).norm() / reference.norm())
        rows.append({"network": name, "per_call": configuration[0], "precision": configuration[1],
                     "channels_last": configuration[2], "seconds": median, "speedup": base / median,
                     "difference": difference})
    return rows


def profile_rows(fn, window: tuple[int, ...] = WINDOW) -> tuple[dict[str, float], float]:
    """Self CPU seconds per category of one float32 call of one window, and the call's total."""
    x = window_input(1, window)
    with torch.inference_mode():
        fn(x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fn(x)
    categories: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        name = event.key.lower()
        category = next((c for fragment, c in CATEGORIES if fragment in name), "other")
        categories[category] += event.self_cpu_time_total / 1e6
    return dict(sorted(categories.items(), key=lambda kv: -kv[1])), sum(categories.values())


def flops_per_window(fn, window: tuple[int, ...] = WINDOW) -> float:
    x = window_input(1, window)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        fn(x)
    return float(counter.get_total_flops())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cpu_levers", description=__doc__.split("\n\n")[0])
    add_weights(p)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per configuration (median)")
    p.add_argument("--networks", nargs="*", default=["diffusion", "bridge"], choices=["diffusion", "bridge"])
    p.add_argument("--window", type=int, nargs=3, default=list(WINDOW), metavar=("X", "Y", "Z"),
                   help="window size (default 128 128 32)")
    args = p.parse_args(argv)
    window = tuple(args.window)
    torch.set_num_threads(args.threads)
    native = cpu_has_native_bfloat16()
    precisions = ["float32", "bfloat16"] if native else ["float32"]
    print(f"{args.threads} thread(s); native bfloat16: {'yes' if native else 'no (bfloat16 left out: emulated)'}; "
          f"torch {torch.__version__}; weights {Path(args.weights)}\n")
    print("| network | windows per call | precision | channels-last | s / window | speed-up vs 4 per call, float32 | "
          "output difference vs float32 |\n|---|---|---|---|---|---|---|")
    profiles = {}
    for name in args.networks:
        fn = call(name, load_network(args.weights, name))
        for r in lever_rows(name, fn, args.repeats, precisions, window):
            print(f"| {r['network']} | {r['per_call']} | {r['precision']} | {'yes' if r['channels_last'] else 'no'} | "
                  f"{r['seconds']:.3f} | {r['speedup']:.2f}x | {r['difference']:.1e} |", flush=True)
        profiles[name] = (profile_rows(fn, window), flops_per_window(fn, window))
    for name, ((categories, total), flops) in profiles.items():
        print(f"\n{name}: {flops / 1e9:.1f} GFLOP per window, {flops / 1e9 / total:.1f} GFLOP/s achieved in float32 "
              f"(one profiled call, {total:.2f} s)\n\n| category | self seconds | share |\n|---|---|---|")
        for category, seconds in categories.items():
            print(f"| {category} | {seconds:.3f} | {100 * seconds / total:.0f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
