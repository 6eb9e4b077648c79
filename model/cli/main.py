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

from .. import __version__
from ..config.settings import SamplerSettings
from ..errors import EnhancementError, UsageError, WeightsError
from ..execution.budget import TimeBudget, candidates, process_started
from ..execution.device import select_device
from ..method.sampler import Mode
from ..pipeline.enhance_case import enhance_case
from ..pipeline.enhancer import Enhancer
from ..pipeline.output_paths import plan_outputs
from ..pipeline.qc import QcReport, check_qc_location, write_index
from ..pipeline.run_record import check_replay_weights, code_version, read_record
from ..volumes.layouts import Case
from ..weights.calibration import check_trained_levels
from ..weights.manifest import load_schedule, read_manifest, untrained_networks
from . import sharding
from .arguments import (AUTO, asked_for, build_parser, cases_from, explicit_options, input_folder, settings_from,
                        settle_layout_options, weights_dir)
from .cohorts import CaseResult, cohort_cases, log_summary, results_of, set_threads
from .environment import with_environment
from .options import check_options

log = logging.getLogger(__name__.split(".")[0])  # the package's root logger: model (or its installed name)

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
    shard = sharding.current_shard()  # under torchrun: this process's share of the subjects (model.cli.sharding)
    settle_layout_options(args)
    every_case = cases_from(args)
    if args.qc:
        check_qc_location(args.qc, every_case, input_folder(args))
    cases, skipped = cohort_cases(every_case, args.subjects, args.skip_existing, shard)
    if shard is not None:
        results = sharding.run_shard(
            shard, lambda: skipped + (enhance_cases(args, settings, cases, budget, shard, alone=False) if cases else []), cases,
            finish=lambda gathered: finish_run(args, settings, gathered))
        if not shard.is_leader:  # the leader reports the run (its summary, its exit status); see model.cli.sharding
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


WHAT_RUNGS_DECIDE = {"sampler", "mode", "bridge_timestep", "refinements", "level_stride", "level_spacing", "overlap",
                     "remove_noise", "samples"}  # the settings a calibrated configuration sets or relies on


def enhance_cases(args: argparse.Namespace, settings: SamplerSettings, cases: list[Case], budget: TimeBudget | None,
                  shard: sharding.Shard | None = None, alone: bool | None = None) -> list[CaseResult]:
    """Enhance ``cases`` (at least one); a summary line per case. ``alone``: as :func:`enhance_all`."""
    alone = len(cases) == 1 if alone is None else alone
    # --preset auto with nothing the calibration decides changed (precision, device, threads and the like may be):
    # under a time budget the calibrated ladder decides alone
    weights_decide = args.preset == AUTO and args.replay is None and not set(explicit_options(args)) & WHAT_RUNGS_DECIDE
    # several samples write uncertainty maps: asked for, or chosen by a time budget from the calibrated ladder
    refused = plan_outputs(cases, with_uncertainty=settings.algorithm.samples > 1 or (budget is not None and weights_decide))
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
    enhancer = Enhancer(settings, weights, device, weights_decide=weights_decide)
    untrained = untrained_networks(weights, enhancer.network_names) if enhancer.network_names else []
    if untrained:
        log.warning("the %s network(s) in %s are NOT trained (random initialisation): outputs are not enhanced",
                    " and ".join(untrained), weights)
    seconds: dict[str, float] = {}
    failures = enhance_all(cases, enhancer, refused, args.quiet or args.no_progress, budget, qc=qc, seconds=seconds, alone=alone)
    if budget is not None:
        used = budget.seconds - budget.remaining()
        log.log(logging.INFO if used <= budget.seconds else logging.WARNING,
                "time budget: the run took %.0f s of %.0f s (%.0f%%)", used, budget.seconds, 100 * used / budget.seconds)
    return results_of(cases, failures, seconds)


def finish_run(args: argparse.Namespace, settings: SamplerSettings, results: list[CaseResult]) -> None:
    """The summary table of a multi-subject run (model.cli.cohorts) and the QC index over every case (model.pipeline.qc)."""
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


def version_text(weights: Path) -> str:
    """``--version``: the package version, the code revision, and the weights with their networks' checksums."""
    lines = [f"ulf-enhance {__version__}", f"revision: {code_version()}", f"weights: {weights}"]
    try:
        manifest = read_manifest(weights)
    except WeightsError as error:
        return "\n".join(lines + [f"  (not readable: {error})"])
    lines += [f"  {name}: sha256 {entry.get('sha256')}" for name, entry in sorted(manifest.get("networks", {}).items())]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, run, and turn known failures into one line and an exit code."""
    started = process_started()
    args = with_environment(build_parser()).parse_args(argv)
    args.started = started
    configure_logging(args.quiet, args.verbose)
    signal.signal(signal.SIGTERM, raise_on_termination)
    try:
        if args.version:
            print(version_text(weights_dir(args)))
            return 0
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
