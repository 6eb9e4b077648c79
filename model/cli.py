"""Command line of the enhancement (``process.py`` and ``python -m model``).

With no arguments it behaves as a Grand Challenge algorithm: ``/input`` in, ``/output`` out.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import sys
import time
from pathlib import Path

from tqdm import tqdm

from model.budget import TimeBudget, candidates, process_started
from model.calibration import FORCE_FLAG, auto_settings, check_trained_levels
from model import sharding
from model.batch import CaseResult, add_batch_arguments, cohort_cases, log_summary, results_of, set_threads
from model.case import enhance_case
from model.engine import select_device
from model.enhancer import Enhancer
from model.environment import from_environment, with_environment
from model.errors import EnhancementError, InputError, UsageError, WeightsError
from model.layouts import Case, discover_cases, explicit_case
from model.option_checks import check_options
from model.options import DEFAULT_WEIGHTS, add_device, add_weights, setting_argument
from model.output_paths import plan_outputs
from model.run_record import RECORD_SUFFIX, check_replay_weights, read_record, replayed_settings
from model.sampler import Mode
from model.qc import QcReport, check_qc_location, write_index
from model.settings import PRESETS, SamplerSettings, preset
from model.weights import MANIFEST_NAME, load_schedule, untrained_networks

log = logging.getLogger("model")

AUTO = "auto"  # the preset chosen from the weights' calibration (model.calibration)
MODEL_TARBALL_WEIGHTS = Path("/opt/ml/model")  # where Grand Challenge extracts a model tarball
SAMPLER_FLAGS = {  # flag -> (setting, help); each typed by its settings field (model.options)
    "--mode": ("mode", "ablation mode (default: full)"),
    "--bridge-timestep": ("bridge_timestep", "K, the bridging level (paper: 400)"),
    "--refine": ("refinements", "J, refinements per level (paper: 3)"),
    "--level-stride": ("level_stride", "visit every n-th level of K..1 (paper: 1)"),
    "--level-spacing": ("level_spacing", "place the strided levels evenly (default) or quadratically, dense near t = 0"),
    "--overlap": ("overlap", "sliding-window overlap in [0, 1) (paper: 0.7)"),
    "--window": ("window", "window size (paper: 128 128 32)"),
    "--windows-per-batch": ("windows_per_batch", "windows per network call (default 0: auto, 1 on the CPU, 4 on a GPU)"),
    "--precision": ("precision", "the networks' arithmetic: auto (float16 on a T4, bfloat16 on sm_80+, float32 on the CPU), "
                                 "float32, bfloat16, float16; blending always float32"),
    "--remove-noise": ("remove_noise", "RemoveNoise reading: x0 estimate (default) or the literal eq. 11 posterior mean"),
    "--seed": ("seed", "random seed (default 0)"),
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


def build_parser() -> argparse.ArgumentParser:
    """All options; names fixed so organisers' scripts can rely on them."""
    p = argparse.ArgumentParser(
        prog="process.py",
        description="Bridged denoising diffusion: 64 mT T1w/T2w/FLAIR in, pseudo-3 T out.",
        epilog="With no input options: Grand Challenge mode, /input -> /output. Every option can also be set by the "
               "environment variable in brackets (the command line wins); see docs/container.md.",
    )
    io = p.add_argument_group("inputs and outputs")
    io.add_argument("--input", type=Path, help="input folder (Grand Challenge or ULF-EnC layout; default /input)")
    io.add_argument("--output", type=Path, help="output folder (default /output)")
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
    o.add_argument("--verbose", action="store_true", help="debug logging")
    return p


def explicit_options(args: argparse.Namespace) -> dict:
    """The sampler options given on the command line or in the environment."""
    return {name: getattr(args, name) for name, _ in SAMPLER_FLAGS.values() if getattr(args, name) is not None}


def settings_from(args: argparse.Namespace) -> SamplerSettings:
    """``--replay``'s recorded settings; else the preset (``auto``: the weights' best calibrated configuration,
    :func:`model.calibration.auto_settings`) with the explicitly given options applied."""
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


def raise_on_termination(signum, _frame):
    """Turn SIGTERM into KeyboardInterrupt so partial outputs are cleaned up on the way out."""
    raise KeyboardInterrupt(f"signal {signum}")


def failure_line(error: Exception) -> str:
    """One line for any error: our own as they are, others with their type (a bug or an environment problem)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return text if isinstance(error, EnhancementError) else f"{type(error).__name__}: {text or 'no message'}"


def advance(bar: tqdm, done: int, total: int) -> None:
    """The progress bar at ``done`` of ``total`` levels (a time budget may have planned fewer than asked)."""
    bar.total = total
    bar.n = done
    bar.refresh()


def enhance_all(cases: list[Case], enhancer: Enhancer, refused: dict[str, EnhancementError], quiet: bool,
                budget: TimeBudget | None = None, qc: QcReport | None = None,
                seconds: dict[str, float] | None = None, alone: bool | None = None) -> dict[str, str]:
    """Every case in turn, each isolated: whatever fails in one is logged and the next goes on.
    ``seconds`` (when given) receives each case's time; ``qc`` writes each case's QC report. ``alone`` (default:
    a single case): the run's only subject, whose failure is the run's error (its exit status) rather than a
    line of the summary."""
    alone = len(cases) == 1 if alone is None else alone
    failures = {case_id: failure_line(error) for case_id, error in refused.items()}
    to_do = [case.case_id for case in cases if case.case_id not in refused]
    a = enhancer.settings.algorithm
    levels = len(a.visited_levels())
    for number, case in enumerate(cases, start=1):
        if case.case_id in refused:
            log.error("case %d/%d: %s refused: %s", number, len(cases), case.case_id, failures[case.case_id])
            continue
        started = time.perf_counter()
        log.info("case %d/%d: %s", number, len(cases), case.case_id)
        with tqdm(total=levels, desc=f"{case.case_id} levels", unit="level", disable=quiet or levels == 0,
                  mininterval=1.0 if sys.stderr.isatty() else 30.0) as bar:
            try:
                enhance_case(case, enhancer, on_level=lambda done, total: advance(bar, done, total), budget=budget,
                             cases_left=len(to_do) - to_do.index(case.case_id),
                             qc=qc.case(case) if qc is not None else None)
            except Exception as error:  # noqa: BLE001 - one subject must never stop the others
                log.debug("%s failed", case.case_id, exc_info=True)
                if alone:
                    if isinstance(error, EnhancementError):
                        raise
                    raise EnhancementError(f"{case.case_id} failed: {failure_line(error)} "
                                           "(run with --verbose for the details)") from None
                failures[case.case_id] = failure_line(error)
                log.error("%s failed: %s", case.case_id, failures[case.case_id])
                continue
            finally:
                if seconds is not None:
                    seconds[case.case_id] = time.perf_counter() - started
        log.info("case %s done in %.1f s", case.case_id, time.perf_counter() - started)
    return failures


def run(args: argparse.Namespace) -> int:
    """Process every case; returns the exit status."""
    try:
        settings = settings_from(args)
    except ValueError as error:  # invalid option values (settings validation)
        raise UsageError(str(error)) from None
    check_options(settings)
    weights = weights_dir(args) if settings.algorithm.mode is not Mode.IDENTITY else None
    if weights is not None:
        try:  # K within the schedule the weights were trained with (a bad manifest: WeightsError, exit 3)
            settings.algorithm.check_against(load_schedule(weights))
        except ValueError as error:
            raise UsageError(str(error)) from None
    check_trained_levels(settings, weights, args.allow_untrained_levels, asked_for(args))
    if args.replay is not None and weights is not None:
        check_replay_weights(read_record(args.replay), weights, args.replay)
    budget = None
    if args.time_budget and args.replay is not None:
        log.info("--replay: the recorded settings run as they are; the time budget (%g s) plans nothing", args.time_budget)
    elif args.time_budget:
        budget = TimeBudget(args.time_budget, started=getattr(args, "started", None), per_case=args.budget_scope == "case")
        candidates(settings, [])  # refuses a mode the planner cannot plan, before any file is read
    set_threads(args.threads)
    shard = sharding.current_shard()  # under torchrun: this process's share of the subjects (model.sharding)
    settle_layout_options(args)
    every_case = cases_from(args)
    if args.qc:
        check_qc_location(args.qc, every_case, input_folder(args))
    cases, skipped = cohort_cases(every_case, args.subjects, args.skip_existing, shard)
    if shard is not None:
        results = sharding.run_shard(
            shard, lambda: skipped + (enhance_cases(args, settings, cases, budget, shard, alone=False) if cases else []), cases,
            finish=lambda gathered: finish_run(args, settings, gathered))
        if not shard.is_leader:  # the leader reports the run (its summary, its exit status); see model.sharding
            return 0
    else:
        # a subject left to do beside skipped ones is a line of the run's summary, not the run's only subject
        results = skipped + (enhance_cases(args, settings, cases, budget, alone=len(cases) == 1 and not skipped)
                             if cases else [])
        finish_run(args, settings, results)
    failed = [r for r in results if r.failed]
    if failed:
        sharding.report_to_launcher(f"{len(failed)} of {len(results)} subjects failed: "
                                    + "; ".join(f"{r.subject} {r.status}" for r in failed[:3])
                                    + ("; ..." if len(failed) > 3 else "") + " (the summary above lists them)")
    return 1 if failed else 0


def enhance_cases(args: argparse.Namespace, settings: SamplerSettings, cases: list[Case], budget: TimeBudget | None,
                  shard: sharding.Shard | None = None, alone: bool | None = None) -> list[CaseResult]:
    """Enhance ``cases`` (at least one); a summary line per case. ``alone``: as :func:`enhance_all`."""
    alone = len(cases) == 1 if alone is None else alone
    refused = plan_outputs(cases)
    if alone and refused:
        raise next(iter(refused.values()))
    if len(refused) == len(cases):  # nothing left to compute: no networks to load
        for number, case in enumerate(cases, start=1):
            log.error("case %d/%d: %s refused: %s", number, len(cases), case.case_id, failure_line(refused[case.case_id]))
        return results_of(cases, {case_id: failure_line(error) for case_id, error in refused.items()}, {})
    device = select_device(shard.device(args.device) if shard is not None else args.device)
    qc = QcReport(args.qc, settings.to_dict(), str(device)) if args.qc else None
    weights = weights_dir(args)
    log.info("%d case(s), layout %s, device %s, weights %s", len(cases), cases[0].layout, device, weights)
    log.info("settings: %s", json.dumps(settings.to_dict()))
    enhancer = Enhancer(settings, weights, device)
    untrained = untrained_networks(weights, enhancer.network_names) if enhancer.network_names else []
    if untrained:
        log.warning("the %s network(s) in %s are NOT trained (random initialisation): outputs are not enhanced",
                    " and ".join(untrained), weights)
    seconds: dict[str, float] = {}
    failures = enhance_all(cases, enhancer, refused, args.quiet, budget, qc=qc, seconds=seconds, alone=alone)
    if budget is not None:
        used = budget.seconds - budget.remaining()
        log.log(logging.INFO if used <= budget.seconds else logging.WARNING,
                "time budget: the run took %.0f s of %.0f s (%.0f%%)", used, budget.seconds, 100 * used / budget.seconds)
    return results_of(cases, failures, seconds)


def finish_run(args: argparse.Namespace, settings: SamplerSettings, results: list[CaseResult]) -> None:
    """The summary table of a multi-subject run (model.batch) and the QC index over every case (model.qc)."""
    if len(results) > 1 or sharding.current_shard() is not None:
        log_summary(results)
    if not results:
        log.warning("nothing to do: no subject left to enhance")
    if args.qc and results:
        log.info("QC index: %s", write_index(args.qc, results, settings.to_dict()))


def configure_logging(quiet: bool, verbose: bool) -> None:
    """One line per phase with timings; ``--quiet`` warnings only, ``--verbose`` debug."""
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, run, and turn known failures into one line and an exit code."""
    started = process_started()
    args = with_environment(build_parser()).parse_args(argv)
    args.started = started
    configure_logging(args.quiet, args.verbose)
    signal.signal(signal.SIGTERM, raise_on_termination)
    try:
        return run(args)
    except EnhancementError as error:
        log.error("%s", error)
        sharding.report_to_launcher(str(error))
        return error.exit_code
    except KeyboardInterrupt:
        log.error("interrupted: outputs are complete or absent, nothing partial was left behind")
        return 130
    except Exception as error:  # noqa: BLE001 - never a traceback: one line, and the details with --verbose
        log.debug("unexpected error", exc_info=True)
        log.error("failed: %s (run with --verbose for the details)", failure_line(error))
        sharding.report_to_launcher(f"failed: {failure_line(error)} (run with --verbose for the details)")
        return 1
