"""``python -m training``: train the diffusion model or the bridge, or export both into a weights folder.

Under torchrun (``torchrun --nproc-per-node=N -m training ...``) every process runs the same
command; the first one logs, validates and writes checkpoints.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from model.errors import EnhancementError
from model.cli.options import parse_value, split_assignment
from training.config import NETWORKS, RunConfig, load_config

EXAMPLES = """examples:
  python -m training diffusion --config training/configs/cpu-small.toml --run-dir runs/diffusion
  python -m training bridge --config training/configs/cpu-small.toml --run-dir runs/bridge
  python -m training diffusion --run-dir runs/diffusion --resume --set train.steps=2000
  torchrun --standalone --nproc-per-node=4 -m training diffusion --config training/configs/paper.toml --run-dir /runs/diffusion
  python -m training export --diffusion-run runs/diffusion --bridge-run runs/bridge --out weights/
  python -m training config --config training/configs/paper.toml   # print the resolved configuration
  python -m training prepare --config training/configs/campaign-cpu.toml --processes 2  # fill the data cache first
"""


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m training", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="Train the high-field diffusion model (docs/method.md: the diffusion network) or the bridge (docs/method.md: the bridge) of the bridged "
                    "denoising diffusion, on one process or many (torchrun), and export frozen weights.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in NETWORKS:
        sub = commands.add_parser(name, help=f"train the {name} network",
                                  description=f"Train the {name} network; checkpoints, config.json, metrics.jsonl and "
                                              "TensorBoard logs go to --run-dir.")
        _config_arguments(sub, required=False)
        sub.add_argument("--run-dir", type=Path, required=True, help="the run folder (checkpoints, logs, config.json)")
        sub.add_argument("--resume", action="store_true",
                         help="continue from the run folder's newest checkpoint (starts afresh when it has none); "
                              "without --config the run's own config.json is used")
    prepare = commands.add_parser("prepare", help="prepare (simulate or read, normalise) a configuration's subjects "
                                                  "into its data cache, in parallel processes")
    _config_arguments(prepare, required=True)
    prepare.add_argument("--processes", type=int, default=1, help="parallel processes (default 1)")
    show = commands.add_parser("config", help="print a resolved run configuration as JSON")
    _config_arguments(show, required=False)
    export = commands.add_parser("export", help="write the newest checkpoints of two runs as frozen weights + manifest")
    diffusion = export.add_mutually_exclusive_group(required=True)
    diffusion.add_argument("--diffusion-run", type=Path, help="run folder of the diffusion network")
    diffusion.add_argument("--diffusion-from", type=Path, metavar="WEIGHTS",
                           help="keep the diffusion network of this weights folder unchanged (a bridge retrained alone)")
    bridge = export.add_mutually_exclusive_group(required=True)
    bridge.add_argument("--bridge-run", type=Path, help="run folder of the bridge")
    bridge.add_argument("--bridge-from", type=Path, metavar="WEIGHTS",
                        help="keep the bridge of this weights folder unchanged (a diffusion network retrained alone)")
    export.add_argument("--out", type=Path, required=True, help="weights folder to write (e.g. weights/)")
    export.add_argument("--raw", action="store_true", help="export the raw weights instead of their EMA")
    return parser.parse_args(argv)


def _config_arguments(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("--config", type=Path, required=required, help="run configuration (.toml or .json)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one configuration value, e.g. train.steps=100 or data.patch=[64,64,32] "
                             "(TOML syntax; repeatable)")


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set dotted keys (``train.steps=100``) in a nested configuration dict; values in TOML syntax, read as
    every override of the project is (:func:`model.cli.options.parse_value`)."""
    for item in overrides:
        try:
            key, text = split_assignment(item)
        except ValueError:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}") from None
        value = parse_value(text)
        *parents, leaf = key.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {key}: {part} is not a table")
        node[leaf] = value
    return data


def resolve_config(path: Path | None, overrides: list[str], run_dir: Path | None = None) -> RunConfig:
    """The configuration from ``path`` (or, without one, the run folder's config.json), with overrides."""
    if path is None and run_dir is not None and (run_dir / "config.json").is_file():
        data = json.loads((run_dir / "config.json").read_text())["config"]
    elif path is None:
        data = {}
    else:
        data = load_config(path).to_dict()
    return RunConfig.from_dict(apply_overrides(data, overrides))


def _setup_logging() -> None:
    first = int(os.environ.get("RANK", 0)) == 0
    logging.basicConfig(level=logging.INFO if first else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for configuration and usage errors, with a one-line message)."""
    arguments = parse_arguments(argv)
    _setup_logging()
    try:
        if arguments.command == "export":
            from training.export import export

            manifest = export(arguments.diffusion_run, arguments.bridge_run, arguments.out, use_ema=not arguments.raw,
                              bridge_from=arguments.bridge_from, diffusion_from=arguments.diffusion_from)
            print(f"wrote {manifest}")
            return 0
        if arguments.command == "prepare":
            from training.data import prepare_in_processes

            config = resolve_config(arguments.config, arguments.overrides)
            cache = prepare_in_processes(config.data, arguments.processes)
            print(f"prepared {config.data.subjects if config.data.kind == 'simulated' else 'all'} subjects in {cache}")
            return 0
        if arguments.command == "config":
            print(json.dumps(resolve_config(arguments.config, arguments.overrides).to_dict(), indent=2))
            return 0
        if arguments.config is None and not (arguments.resume and (arguments.run_dir / "config.json").is_file()):
            raise ValueError("--config is required (or --resume with a run folder that has a config.json)")
        config = resolve_config(arguments.config, arguments.overrides, arguments.run_dir if arguments.resume else None)
        from training.loop import train

        metrics = train(arguments.command, config, arguments.run_dir, resume=arguments.resume)
        if int(os.environ.get("RANK", 0)) == 0:
            shown = {k: round(v, 6) for k, v in metrics.items() if k.startswith(("val/", "train/loss"))}
            print(json.dumps({"run_dir": str(arguments.run_dir), **shown}))
        return 0
    except (ValueError, TypeError, FileNotFoundError, EnhancementError) as error:  # bad input data: InputError
        print(f"error: {error}", file=sys.stderr)
        return 2
