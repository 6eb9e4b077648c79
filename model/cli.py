"""Command line of the enhancement (``process.py`` and ``python -m model``).

With no arguments it behaves as a Grand Challenge algorithm: ``/input`` in, ``/output`` out.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from pathlib import Path

from tqdm import tqdm

from model.case import enhance_case
from model.enhancer import Enhancer, select_device
from model.errors import EnhancementError, InputError, UsageError
from model.layouts import Case, discover_cases, explicit_case
from model.operators import RemoveNoiseVariant
from model.option_checks import check_options
from model.output_paths import plan_outputs
from model.sampler import Mode
from model.settings import LEVEL_SPACINGS, PRECISIONS, PRESETS, SamplerSettings, preset
from model.weights import MANIFEST_NAME, untrained_networks

log = logging.getLogger("model")

PACKAGED_WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
MODEL_TARBALL_WEIGHTS = Path("/opt/ml/model")  # where Grand Challenge extracts a model tarball


def build_parser() -> argparse.ArgumentParser:
    """All options; names fixed so organisers' scripts can rely on them."""
    p = argparse.ArgumentParser(
        prog="process.py",
        description="Bridged denoising diffusion: 64 mT T1w/T2w/FLAIR in, pseudo-3 T out.",
        epilog="With no input options: Grand Challenge mode, /input -> /output.",
    )
    io = p.add_argument_group("inputs and outputs")
    io.add_argument("--input", type=Path, help="input folder (Grand Challenge or ULF-EnC layout; default /input)")
    io.add_argument("--output", type=Path, help="output folder (default /output)")
    io.add_argument("--t1", type=Path, help="low-field T1w file (with --t2, --flair, --output-dir)")
    io.add_argument("--t2", type=Path, help="low-field T2w file")
    io.add_argument("--flair", type=Path, help="low-field FLAIR file")
    io.add_argument("--output-dir", type=Path, help="folder for the enhanced files (names kept)")
    io.add_argument("--weights", type=Path, help="weights folder with manifest.json "
                    f"(default: {MODEL_TARBALL_WEIGHTS} if it has one, else {PACKAGED_WEIGHTS})")
    s = p.add_argument_group("sampler (a preset, then any of these override it)")
    s.add_argument("--preset", default="paper", choices=sorted(PRESETS), help="named bundle of settings (default: paper)")
    s.add_argument("--mode", choices=[m.value for m in Mode], help="ablation mode (default: full)")
    s.add_argument("--bridge-timestep", type=int, help="K, the bridging level (paper: 400)")
    s.add_argument("--refine", type=int, help="J, refinements per level (paper: 3)")
    s.add_argument("--level-stride", type=int, help="visit every n-th level of K..1 (paper: 1)")
    s.add_argument("--level-spacing", choices=LEVEL_SPACINGS,
                   help="place the strided levels evenly (default) or quadratically, dense near t = 0")
    s.add_argument("--overlap", type=float, help="sliding-window overlap in [0, 1) (paper: 0.7)")
    s.add_argument("--window", type=int, nargs=3, metavar=("X", "Y", "Z"), help="window size (paper: 128 128 32)")
    s.add_argument("--windows-per-batch", type=int, help="windows per network call (default 4)")
    s.add_argument("--precision", choices=PRECISIONS, help="float32, or bfloat16 autocast on CUDA")
    s.add_argument("--remove-noise", choices=[v.value for v in RemoveNoiseVariant],
                   help="RemoveNoise reading: x0 estimate (default) or the literal eq. 11 posterior mean")
    s.add_argument("--seed", type=int, help="random seed (default 0)")
    s.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="compute device (default auto)")
    o = p.add_argument_group("output")
    o.add_argument("--quiet", action="store_true", help="only warnings and errors, no progress bar")
    o.add_argument("--verbose", action="store_true", help="debug logging")
    return p


def settings_from(args: argparse.Namespace) -> SamplerSettings:
    """The preset with the explicitly given options applied."""
    return preset(args.preset).updated(
        mode=args.mode, bridge_timestep=args.bridge_timestep, refinements=args.refine,
        level_stride=args.level_stride, level_spacing=args.level_spacing, overlap=args.overlap, window=args.window,
        windows_per_batch=args.windows_per_batch, precision=args.precision,
        remove_noise=args.remove_noise, seed=args.seed,
    )


def cases_from(args: argparse.Namespace) -> list[Case]:
    """Explicit files, or the layout found in ``--input``."""
    files = (args.t1, args.t2, args.flair)
    if any(files) or args.output_dir:
        if not all(files) or args.output_dir is None:
            raise InputError("explicit files need all of --t1, --t2, --flair and --output-dir")
        if args.input or args.output:
            raise InputError("give either --t1/--t2/--flair/--output-dir or --input/--output, not both")
        return [explicit_case(args.t1, args.t2, args.flair, args.output_dir)]
    return discover_cases(args.input or Path("/input"), args.output or Path("/output"))


def weights_dir(args: argparse.Namespace) -> Path:
    """``--weights``, else a model tarball's ``/opt/ml/model``, else the packaged ``weights/``."""
    if args.weights is not None:
        return args.weights
    if (MODEL_TARBALL_WEIGHTS / MANIFEST_NAME).is_file():
        return MODEL_TARBALL_WEIGHTS
    return PACKAGED_WEIGHTS


def raise_on_termination(signum, _frame):
    """Turn SIGTERM into KeyboardInterrupt so partial outputs are cleaned up on the way out."""
    raise KeyboardInterrupt(f"signal {signum}")


def failure_line(error: Exception) -> str:
    """One line for any error: our own as they are, others with their type (a bug or an environment problem)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return text if isinstance(error, EnhancementError) else f"{type(error).__name__}: {text or 'no message'}"


def enhance_all(cases: list[Case], enhancer: Enhancer, refused: dict[str, EnhancementError], quiet: bool) -> dict[str, str]:
    """Every case in turn, each isolated: whatever fails in one is logged and the next goes on."""
    failures = {case_id: failure_line(error) for case_id, error in refused.items()}
    levels = len(enhancer.settings.levels) if enhancer.settings.mode.uses_diffusion else 0
    for number, case in enumerate(cases, start=1):
        if case.case_id in refused:
            log.error("case %d/%d: %s refused: %s", number, len(cases), case.case_id, failures[case.case_id])
            continue
        started = time.perf_counter()
        log.info("case %d/%d: %s", number, len(cases), case.case_id)
        with tqdm(total=levels, desc=f"{case.case_id} levels", unit="level", disable=quiet or levels == 0,
                  mininterval=1.0 if sys.stderr.isatty() else 30.0) as bar:
            try:
                enhance_case(case, enhancer, on_level=lambda done, total: bar.update(1))
            except Exception as error:  # noqa: BLE001 - one subject must never stop the others
                log.debug("%s failed", case.case_id, exc_info=True)
                if len(cases) == 1:
                    if isinstance(error, EnhancementError):
                        raise
                    raise EnhancementError(f"{case.case_id} failed: {failure_line(error)} "
                                           "(run with --verbose for the details)") from None
                failures[case.case_id] = failure_line(error)
                log.error("%s failed: %s", case.case_id, failures[case.case_id])
                continue
        log.info("case %s done in %.1f s", case.case_id, time.perf_counter() - started)
    return failures


def run(args: argparse.Namespace) -> int:
    """Process every case; returns the exit status."""
    try:
        settings = settings_from(args)
    except ValueError as error:  # invalid option values (settings validation)
        raise UsageError(str(error)) from None
    check_options(settings)
    cases = cases_from(args)
    refused = plan_outputs(cases)
    if len(cases) == 1 and refused:
        raise next(iter(refused.values()))
    device = select_device(args.device)
    weights = weights_dir(args)
    log.info("%d case(s), layout %s, device %s, weights %s", len(cases), cases[0].layout, device, weights)
    log.info("settings: %s", json.dumps(settings.to_dict()))
    enhancer = Enhancer(settings, weights, device)
    untrained = untrained_networks(weights, enhancer.network_names) if enhancer.network_names else []
    if untrained:
        log.warning("the %s network(s) in %s are NOT trained (random initialisation): outputs are not enhanced",
                    " and ".join(untrained), weights)
    failures = enhance_all(cases, enhancer, refused, args.quiet)
    if len(cases) > 1:  # the summary: a warning when something failed, so that --quiet shows it too
        level = logging.WARNING if failures else logging.INFO
        log.log(level, "%d of %d cases enhanced", len(cases) - len(failures), len(cases))
        for case in cases:
            status = f"FAILED {failures[case.case_id]}" if case.case_id in failures else "enhanced"
            log.log(level, "  %s: %s", case.case_id, status)
    return 1 if failures else 0


def configure_logging(quiet: bool, verbose: bool) -> None:
    """One line per phase with timings; ``--quiet`` warnings only, ``--verbose`` debug."""
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, run, and turn known failures into one line and an exit code."""
    args = build_parser().parse_args(argv)
    configure_logging(args.quiet, args.verbose)
    signal.signal(signal.SIGTERM, raise_on_termination)
    try:
        return run(args)
    except EnhancementError as error:
        log.error("%s", error)
        return error.exit_code
    except KeyboardInterrupt:
        log.error("interrupted: outputs are complete or absent, nothing partial was left behind")
        return 130
    except Exception as error:  # noqa: BLE001 - never a traceback: one line, and the details with --verbose
        log.debug("unexpected error", exc_info=True)
        log.error("failed: %s (run with --verbose for the details)", failure_line(error))
        return 1
