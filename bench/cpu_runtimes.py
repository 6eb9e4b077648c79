"""``python -m bench.cpu_runtimes``: the remaining CPU levers for one window of each network, against the engine's
CPU default (eager PyTorch, one window per call, bfloat16 autocast where native, one thread):

* **threads**: the same on 2 (or ``--threads``) threads;
* **torch.compile** (inductor, frozen weights, as the engine's ``compile`` setting runs it): the compilation's
  seconds (first call) and the seconds per window after it;
* **oneDNN** (``--onednn-off``): ``torch.backends.mkldnn`` off (PyTorch's own convolution kernels) against on
  (the default); on a 64x64x32 window it was 80x slower for the U-Net, so it is measured only when asked;
* **ONNX Runtime** (an existing CPU inference runtime, optional: ``pip install onnxruntime onnx``), the network
  exported from the same weights (float32: ONNX Runtime's CPU kernels have no bfloat16 convolutions), with its
  output's relative difference from PyTorch float32.

Every configuration is timed in turn, ``--repeats`` times, after a warm-up call; the table gives medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench.cpu_levers import WINDOW, call, window_input
from model.cli.options import add_weights
from model.execution.engine import CompiledNetwork
from model.networks.bridge import BridgeResidual
from model.execution.precision import cpu_has_native_bfloat16
from model.weights.manifest import load_network


def torch_runner(fn, precision: str, threads: int, mkldnn: bool = True):
    """A timed call of ``fn`` on one window: (seconds, float32 output)."""
    def run(x: torch.Tensor):
        torch.set_num_threads(threads)
        with torch.backends.mkldnn.flags(enabled=mkldnn), torch.inference_mode(), \
                torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16"):
            started = time.perf_counter()
            out = fn(x)
            return time.perf_counter() - started, out.float()
    return run


def onnx_runner(name: str, network: torch.nn.Module, x: torch.Tensor, threads: int, folder: Path):
    """The network exported to ONNX and run by ONNX Runtime on the CPU, or None when it is not installed."""
    try:
        import onnxruntime
    except ImportError:
        return None
    path = folder / f"{name}.onnx"
    module = Timestepped(network) if name == "diffusion" else BridgeResidual(network)
    torch.onnx.export(module.eval(), (x,), str(path), dynamo=False, opset_version=17)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name

    def run(window: torch.Tensor):
        started = time.perf_counter()
        out = session.run(None, {feed: window.numpy()})[0]
        return time.perf_counter() - started, torch.from_numpy(out)
    return run


class Timestepped(torch.nn.Module):
    """eps_theta(x, t = 10) as a one-input module (what ONNX exports)."""

    def __init__(self, network):
        super().__init__()
        self.network = network

    def forward(self, x):
        return self.network(x, torch.full((x.shape[0],), 10.0))


def measure(name: str, weights: Path, args: argparse.Namespace, folder: Path) -> list[dict]:
    network = load_network(weights, name)
    x = window_input(1, tuple(args.window))
    low = "bfloat16" if cpu_has_native_bfloat16() else "float32"
    fn = call(name, network)
    runners = {f"eager, {low}, 1 thread (the engine's default)": torch_runner(fn, low, 1),
               f"eager, {low}, {args.threads} threads": torch_runner(fn, low, args.threads),
               "eager, float32, 1 thread": torch_runner(fn, "float32", 1)}
    if args.onednn_off:
        runners[f"eager, {low}, 1 thread, oneDNN off"] = torch_runner(fn, low, 1, mkldnn=False)
    compile_seconds = None
    if not args.no_compile:
        # the engine compiles the U-Net; the bridge's residual is compiled here to see what it would buy
        compiled_fn = call(name, CompiledNetwork(network)) if name == "diffusion" else CompiledNetwork(BridgeResidual(network))
        run = torch_runner(compiled_fn, low, 1)
        compile_seconds, _ = run(x)  # the first call compiles
        runners[f"torch.compile, {low}, 1 thread"] = run
    for threads in sorted({1, args.threads}):
        ort = onnx_runner(name, network, x, threads, folder)
        if ort is not None:
            runners[f"ONNX Runtime, float32, {threads} thread(s)"] = ort
    for run in runners.values():  # warm-up
        run(x)
    seconds = {label: [] for label in runners}
    outputs = {}
    for _ in range(args.repeats):
        for label, run in runners.items():
            took, out = run(x)
            seconds[label].append(took)
            outputs[label] = out
    torch.set_num_threads(args.threads)
    reference = outputs["eager, float32, 1 thread"]
    base = statistics.median(seconds[next(iter(runners))])
    rows = []
    for label in runners:
        median = statistics.median(seconds[label])
        rows.append({"network": name, "configuration": label, "seconds": median, "speedup": base / median,
                     "difference": float((outputs[label] - reference).norm() / reference.norm()),
                     "compile_seconds": compile_seconds if label.startswith("torch.compile") else None})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cpu_runtimes", description=__doc__.split("\n\n")[0])
    add_weights(p)
    p.add_argument("--threads", type=int, default=2, help="the multi-thread configuration's threads (default 2)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--networks", nargs="*", default=["diffusion", "bridge"], choices=["diffusion", "bridge"])
    p.add_argument("--window", type=int, nargs=3, default=list(WINDOW), metavar=("X", "Y", "Z"))
    p.add_argument("--no-compile", action="store_true", help="leave torch.compile out (it takes minutes)")
    p.add_argument("--onednn-off", action="store_true", help="also time oneDNN switched off (far slower: minutes)")
    args = p.parse_args(argv)
    print(f"torch {torch.__version__}; native bfloat16: {'yes' if cpu_has_native_bfloat16() else 'no'}; "
          f"window {tuple(args.window)}; medians of {args.repeats}\n")
    print("| network | configuration | s / window | speed-up vs the engine's default | output difference vs "
          "float32 | compilation s |\n|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.networks:
            for r in measure(name, args.weights, args, Path(folder)):
                compile_seconds = "" if r["compile_seconds"] is None else f"{r['compile_seconds']:.0f}"
                print(f"| {r['network']} | {r['configuration']} | {r['seconds']:.3f} | {r['speedup']:.2f}x | "
                      f"{r['difference']:.1e} | {compile_seconds} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
