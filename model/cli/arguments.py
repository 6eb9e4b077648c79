"""The command line's arguments: the parser, the settings they ask for, the cases and the weights they name."""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path


from ..weights.calibration import FORCE_FLAG, auto_settings
from .cohorts import add_batch_arguments
from .environment import from_environment
from ..errors import InputError, UsageError, WeightsError
from ..volumes.layouts import Case, discover_cases, explicit_case
from .options import DEFAULT_WEIGHTS, add_device, add_weights, setting_argument
from ..pipeline.run_record import RECORD_SUFFIX, read_record, replayed_settings
from ..method.sampler import Mode
from ..config.settings import PAPER_BRIDGE_TIMESTEP, PAPER_REFINEMENTS, PRESETS, SamplerSettings, preset
from ..networks import WINDOW
from ..weights.manifest import MANIFEST_NAME

log = logging.getLogger(__name__)

AUTO = "auto"  # the preset chosen from the weights' calibration (model.weights.calibration)
MODEL_TARBALL_WEIGHTS = Path("/opt/ml/model")  # where Grand Challenge extracts a model tarball
SAMPLER_FLAGS = {  # flag -> (setting, help); each typed by its settings field (model.cli.options)
    "--sampler": ("sampler", "the sampler (default algorithm-1: the paper's Algorithm 1; docs/architecture.md adds one)"),
    "--mode": ("mode", "ablation mode (default: full)"),
    "--bridge-timestep": ("bridge_timestep", f"K, the bridging level (paper: {PAPER_BRIDGE_TIMESTEP})"),
    "--refine": ("refinements", f"J, refinements per level (paper: {PAPER_REFINEMENTS})"),
    "--level-stride": ("level_stride", "visit every n-th level of K..1 (paper: 1)"),
    "--level-spacing": ("level_spacing", "place the strided levels evenly (default) or quadratically, dense near t = 0"),
    "--overlap": ("overlap", "sliding-window overlap in [0, 1) (paper: 0.7)"),
    "--window": ("window", f"window size (paper: {' '.join(map(str, WINDOW))})"),
    "--windows-per-batch": ("windows_per_batch", "windows per network call (default 0: auto, 1 on the CPU, 4 on a GPU)"),
    "--precision": ("precision", "the networks' arithmetic: auto (float16 on a T4, bfloat16 on sm_80+, float32 on the CPU), "
                                 "float32, bfloat16, float16; blending always float32"),
    "--backend": ("backend", "torch (default) or onnxruntime: the networks through ONNX Runtime on the CPU, in float32 "
                             "(needs pip install onnxruntime; docs/speed.md)"),
    "--head-crop": ("head_crop", "on: run the networks on the head's bounding box only, air outside it stays air "
                                 "(docs/speed.md); off: the whole volume"),
    "--remove-noise": ("remove_noise", "RemoveNoise reading: x0 estimate (default) or the literal eq. 11 posterior mean"),
    "--seed": ("seed", "random seed (default 0)"),
    "--samples": ("samples", "N runs of the sampler with seeds seed..seed+N-1: the output is their mean, and beside it a "
                             "per-voxel standard deviation map per contrast (default 1; docs/uncertainty.md)"),
}
# Options that place the diffusion chain's levels: given explicitly, they replace a preset's explicit chain.
CHAIN_PLACEMENT = ("level_stride", "level_spacing")
EXPLICIT_FILES = {"t1": "--t1", "t2": "--t2", "flair": "--flair", "output_dir": "--output-dir"}
FOLDERS = {"input": "--input", "output": "--output"}


def budget_seconds(text: str) -> float:
    """Argument type of ``--time-budget``: a finite number of seconds, at least 0 (0: no budget)."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds (0: no budget), got {text!r}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds, at least 0 (0: no budget), got {text!r}")
    return seconds


def program_name() -> str:
    """What the user typed: ``process.py``, ``ulf-enhance`` or ``python -m model``."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "process.py"
    return f"python -m {__package__.split('.')[0]}" if name == "__main__.py" else name or "process.py"


def build_parser() -> argparse.ArgumentParser:
    """All options; names fixed so organisers' scripts can rely on them."""
    p = argparse.ArgumentParser(
        prog=program_name(),
        description="Bridged denoising diffusion: 64 mT T1w/T2w/FLAIR in, pseudo-3 T out.",
        epilog="With no input options: Grand Challenge mode, /input -> /output. Every option can also be set by the "
               "environment variable in brackets (the command line wins); see docs/container.md.",
    )
    io = p.add_argument_group("inputs and outputs")
    io.add_argument("-i", "--input", type=Path, help="input folder (Grand Challenge or ULF-EnC layout; default /input)")
    io.add_argument("-o", "--output", type=Path, help="output folder (default /output)")
    io.add_argument("--t1", type=Path, help="low-field T1w file (with --t2, --flair, --output-dir)")
    io.add_argument("--t2", type=Path, help="low-field T2w file")
    io.add_argument("--flair", type=Path, help="low-field FLAIR file")
    io.add_argument("--output-dir", type=Path, help="folder for the enhanced files (names kept)")
    add_weights(io, default=None, help="weights folder with manifest.json "
                f"(default: {MODEL_TARBALL_WEIGHTS} if it has one, else {DEFAULT_WEIGHTS})")
    s = p.add_argument_group("sampler (a preset, then any of these override it)")
    s.add_argument("--preset", default=AUTO, choices=[AUTO, *sorted(PRESETS)],
                   help="named bundle of settings (default: auto, the best configuration calibrated for the weights, "
                        "from their manifest; paper: Algorithm 1 as published, for weights trained over its levels)")
    s.add_argument(FORCE_FLAG, action="store_true",
                   help="run settings that evaluate a network outside the timesteps it was trained on (refused otherwise)")
    s.add_argument("--replay", type=Path, metavar="RECORD",
                   help=f"run exactly the settings of a run record (<case>{RECORD_SUFFIX}, written beside earlier outputs): "
                        "no preset, no planning; the same device and precision give byte-identical outputs")
    for flag, (name, help) in SAMPLER_FLAGS.items():
        setting_argument(s, flag, name, help)
    add_device(s)
    t = p.add_argument_group("time")
    t.add_argument("--time-budget", type=budget_seconds, default=0.0, metavar="SECONDS",
                   help="seconds the whole run may take, from the start of the command: each case's sampling is planned "
                        "to its share, from the measured throughput (docs/speed.md, 'Time budget'); 0: no budget")
    t.add_argument("--budget-scope", choices=("run", "case"), default="run",
                   help="what --time-budget limits: the whole run (default; shared out among its cases) or each case "
                        "(the image: a Grand Challenge job is one case, and a local rerun of a cohort plans each alike)")
    add_batch_arguments(p)
    o = p.add_argument_group("output")
    o.add_argument("--quiet", action="store_true", help="only warnings and errors, no progress bar")
    o.add_argument("--no-progress", action="store_true", help="no progress bar (the log is unchanged)")
    o.add_argument("--verbose", action="store_true", help="debug logging")
    o.add_argument("--version", action="store_true", help="print the version, the code revision and the weights' checksums")
    return p


def explicit_options(args: argparse.Namespace) -> dict:
    """The sampler options given on the command line or in the environment."""
    return {name: getattr(args, name) for name, _ in SAMPLER_FLAGS.values() if getattr(args, name) is not None}


def settings_from(args: argparse.Namespace) -> SamplerSettings:
    """``--replay``'s recorded settings; else the preset (``auto``: the weights' best calibrated configuration,
    :func:`model.weights.calibration.auto_settings`) with the explicitly given options applied."""
    if args.replay is not None:
        ignored = sorted(explicit_options(args))
        if ignored:
            raise UsageError(f"--replay runs the recorded settings exactly; drop {', '.join(ignored)} "
                             "(or run without --replay)")
        return replayed_settings(read_record(args.replay), args.replay)
    if args.preset != AUTO:
        base = preset(args.preset)
    elif args.mode == Mode.IDENTITY.value:  # the input as output: no weights to consult
        base = SamplerSettings()
    else:
        base = auto_settings(weights_dir(args))[1]
    explicit = explicit_options(args)
    chain = base.algorithm.chain_levels
    placing = [flag for flag, (name, _) in SAMPLER_FLAGS.items() if name in CHAIN_PLACEMENT and name in explicit]
    if chain and placing and Mode(explicit.get("mode", base.algorithm.mode.value)).uses_diffusion:
        # The command line wins over the preset: strided (or quadratically spaced) levels replace its chain.
        base = base.updated(chain_levels=())
        placed = base.updated(**explicit).algorithm
        levels = placed.visited_levels()
        log.warning("%s replaces the chain %s of --preset %s: the diffusion visits %d level(s) from K = %d (%s%s)",
                    " and ".join(f"{flag} {getattr(args, SAMPLER_FLAGS[flag][0])}" for flag in placing),
                    ", ".join(map(str, chain)), args.preset, len(levels), placed.bridge_timestep,
                    ", ".join(map(str, levels[:6])), ", ..." if len(levels) > 6 else "")
    elif chain and "bridge_timestep" in explicit and explicit["bridge_timestep"] < max(chain):
        k, option = explicit["bridge_timestep"], option_label(args, "bridge_timestep", {"bridge_timestep": "--bridge-timestep"})
        raise UsageError(f"{option} {k}: --preset {args.preset} visits the chain {', '.join(map(str, chain))} "
                         f"after the bridge, which needs K >= {max(chain)}; give --bridge-timestep {max(chain)} or more, "
                         f"or --level-stride S to visit every S-th level from K = {k} instead of the chain "
                         "(or --preset paper: every level)")
    return base.updated(**explicit)


def asked_for(args: argparse.Namespace) -> str:
    """What the user asked for, in their words (for messages)."""
    if args.replay is not None:
        return f"--replay {args.replay}"
    explicit = explicit_options(args)
    given = " ".join(f"{flag} {explicit[name]}" for flag, (name, _) in SAMPLER_FLAGS.items() if name in explicit)
    return f"--preset {args.preset}" + (f" with {given}" if given else "")


def option_label(args: argparse.Namespace, name: str, flags: dict[str, str]) -> str:
    """``--t1``, or ``ULF_T1`` when the value came from the environment (for messages)."""
    return from_environment(args).get(name) or flags[name]


def settle_layout_options(args: argparse.Namespace) -> None:
    """Explicit files or folders: the command line wins over the environment. Folders from the environment
    (``ULF_INPUT``, ``ULF_OUTPUT``) give way to explicit files on the command line, and explicit files from
    the environment to folders on the command line (logged); both from one source are refused, naming them."""
    variables = from_environment(args)
    given = {name: getattr(args, name) is not None for name in (*EXPLICIT_FILES, *FOLDERS)}
    command_line = lambda names: [n for n in names if given[n] and n not in variables]  # noqa: E731
    environment = lambda names: [n for n in names if given[n] and n in variables]  # noqa: E731
    for mine, theirs in ((EXPLICIT_FILES, FOLDERS), (FOLDERS, EXPLICIT_FILES)):
        if command_line(mine) and environment(theirs) and not command_line(theirs):
            log.info("%s ignored: the command line gives %s (the command line wins over the environment)",
                     ", ".join(variables[n] for n in environment(theirs)), ", ".join(mine[n] for n in command_line(mine)))
            for name in environment(theirs):
                setattr(args, name, None)
    files = [n for n in EXPLICIT_FILES if getattr(args, n) is not None]
    folders = [n for n in FOLDERS if getattr(args, n) is not None]
    if files and folders:
        raise InputError(f"give either the explicit files (--t1/--t2/--flair/--output-dir) or the folders "
                         f"(--input/--output), not both: got {', '.join(option_label(args, n, EXPLICIT_FILES) for n in files)} "
                         f"and {', '.join(option_label(args, n, FOLDERS) for n in folders)}")


def cases_from(args: argparse.Namespace) -> list[Case]:
    """Explicit files, or the layout found in ``--input``."""
    files = (args.t1, args.t2, args.flair)
    if any(files) or args.output_dir:
        if not all(files) or args.output_dir is None:
            given = [option_label(args, n, EXPLICIT_FILES) for n in EXPLICIT_FILES if getattr(args, n) is not None]
            raise InputError(f"explicit files need all of --t1, --t2, --flair and --output-dir; got only {', '.join(given)}")
        return [explicit_case(args.t1, args.t2, args.flair, args.output_dir)]
    return discover_cases(args.input or Path("/input"), args.output or Path("/output"))


def input_folder(args: argparse.Namespace) -> Path | None:
    """The input folder of a folder layout (None for explicit files)."""
    return None if args.t1 is not None else (args.input or Path("/input"))


def weights_dir(args: argparse.Namespace) -> Path:
    """``--weights``, else a model tarball's ``/opt/ml/model`` (:func:`model_tarball_weights`), else the packaged
    ``weights/``. Decided once per run (the decision is logged)."""
    if args.weights is not None:
        return args.weights
    if getattr(args, "found_weights", None) is None:
        args.found_weights = model_tarball_weights(MODEL_TARBALL_WEIGHTS) or DEFAULT_WEIGHTS
    return args.found_weights


def model_tarball_weights(folder: Path) -> Path | None:
    """The weights of a model tarball extracted to ``folder``: ``folder`` itself when it holds a manifest,
    else the one sub-folder (one or two levels down: a tarball packed with its folder) that does, with a
    warning; None when ``folder`` holds no manifest at all (with a warning when it holds files, which would
    otherwise be ignored in silence). Two candidates are refused (exit 3)."""
    try:
        if (folder / MANIFEST_NAME).is_file():
            return folder
        if not folder.is_dir() or not any(folder.iterdir()):
            return None
        found = sorted(p.parent for pattern in (f"*/{MANIFEST_NAME}", f"*/*/{MANIFEST_NAME}") for p in folder.glob(pattern)
                       if p.is_file())
    except OSError as error:
        log.warning("cannot look into the model tarball folder %s (%s): using the built-in weights %s", folder,
                    error.strerror or error, DEFAULT_WEIGHTS)
        return None
    if len(found) > 1:
        raise WeightsError(f"the model tarball in {folder} holds {len(found)} weights folders "
                           f"({', '.join(str(p) for p in found[:4])}); expected one {MANIFEST_NAME} at its top "
                           "(repack it, or choose one with --weights / ULF_WEIGHTS)")
    if not found:
        log.warning("the model tarball folder %s holds files but no %s (at its top or one or two folders down): "
                    "using the built-in weights %s", folder, MANIFEST_NAME, DEFAULT_WEIGHTS)
        return None
    log.warning("the model tarball's %s is in %s, not at the top of %s (packed with its folder?): using it",
                MANIFEST_NAME, found[0], folder)
    return found[0]
