"""Habits of batch runs over a cohort: choosing subjects, skipping finished ones, threads, a GPU by
index, and the summary table at the end (the options of the "batches and cohorts" group)."""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import SimpleITK as sitk
import torch

from ..errors import InputError, UsageError
from ..volumes.layouts import CONTRASTS, Case
from ..volumes.images import grid_differences, read_volume

log = logging.getLogger(__name__)

ENHANCED, SKIPPED = "enhanced", "skipped (outputs exist)"


@dataclass(frozen=True)
class CaseResult:
    """One line of the summary: what became of a subject, in how long, and where its outputs are."""

    subject: str
    status: str  # ENHANCED, SKIPPED, or "FAILED <one line>"
    seconds: float
    output_folder: str

    @property
    def failed(self) -> bool:
        return self.status.startswith("FAILED")

    def to_dict(self) -> dict:
        return asdict(self)


def add_batch_arguments(parser: argparse.ArgumentParser) -> None:
    """``--subjects``, ``--skip-existing``, ``--threads`` and ``--qc`` in a group of their own."""
    b = parser.add_argument_group("batches and cohorts")
    b.add_argument("--subjects", nargs="+", metavar="ID", help="only these subjects of a ULF-EnC input (default: all)")
    b.add_argument("--skip-existing", action="store_true",
                   help="leave out subjects whose three outputs already exist (resume a cohort)")
    b.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads for torch (intra-op) and SimpleITK (default: their own defaults)")
    b.add_argument("--qc", type=_qc_folder, metavar="DIR",
                   help="write a QC report per case (PNG and JSON) and an index.html over the run into DIR")


def _qc_folder(text: str) -> Path:
    """Argument type of ``--qc``: a folder name."""
    if not text.strip():
        raise argparse.ArgumentTypeError("--qc needs a folder")
    return Path(text)


def most_threads() -> int:
    """The largest ``--threads`` taken: four per CPU of this machine, at least 64 (far beyond any use; a
    billion threads would end in the OpenMP runtime's 'Out of memory' instead of a message)."""
    return max(64, 4 * (os.cpu_count() or 1))


def set_threads(threads: int | None) -> None:
    """torch's intra-op threads and SimpleITK's global default, when ``--threads`` is given."""
    if threads is None:
        return
    if threads < 1:
        raise UsageError(f"--threads must be at least 1, got {threads}")
    if threads > most_threads():
        raise UsageError(f"--threads {threads} is more than this machine can use ({os.cpu_count()} CPUs); "
                         f"expected 1..{most_threads()}, e.g. {os.cpu_count()}")
    torch.set_num_threads(threads)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    log.info("threads: torch %d, SimpleITK %d", torch.get_num_threads(), sitk.ProcessObject.GetGlobalDefaultNumberOfThreads())


def select_subjects(cases: list[Case], subjects: list[str] | None) -> list[Case]:
    """The cases named by ``--subjects`` (in the input's order); an unknown name is refused, naming it."""
    if not subjects:
        return cases
    found = {case.case_id for case in cases}
    unknown = [s for s in dict.fromkeys(subjects) if s not in found]
    if unknown:
        raise InputError(f"--subjects: {', '.join(unknown)} not found in the input "
                         f"(it has {', '.join(sorted(found)[:10])}{', ...' if len(found) > 10 else ''})")
    return [case for case in cases if case.case_id in set(subjects)]


def input_grid(case: Case):
    """The T1 input's header (a reader after ``ReadImageInformation``: size, spacing, origin, direction), or
    None when it cannot be read (then the outputs are compared with one another only)."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(case.inputs[CONTRASTS[0]]))
    try:
        reader.ReadImageInformation()
    except (RuntimeError, OSError):
        return None
    return reader if reader.GetDimension() == 3 else None


def output_problem(case: Case) -> tuple[str, bool] | None:
    """Why ``case``'s output set is not whole, or None when it is: all three outputs exist, read as finite 3D
    volumes (NIfTI files checked against their header's size, :func:`model.volumes.images.read_volume`) and lie on
    the input's grid. Returns (the reason, whether an output is damaged rather than absent). The run record
    beside them is not part of the set: a set without one is whole."""
    missing = [c for c in CONTRASTS if not os.path.lexists(case.outputs[c])]
    if len(missing) == len(CONTRASTS):
        return "no outputs yet", False
    if missing:
        return f"its {', '.join(missing)} output{'s are' if len(missing) > 1 else ' is'} missing", False
    reference = input_grid(case)
    for contrast in CONTRASTS:
        path = case.outputs[contrast]
        if path.is_dir():
            return f"its {contrast} output {path} is a folder, not a file", True
        if not path.is_file():
            return f"its {contrast} output {path} is not a regular file", True
        if path.stat().st_size == 0:
            return f"its {contrast} output {path} is empty (0 bytes)", True
        try:
            image = read_volume(path, f"the {contrast} output")
        except InputError as error:
            return f"{error}", True
        differences = grid_differences(image, reference) if reference is not None else []
        if differences:
            return f"its {contrast} output {path} is not on the input's grid ({'; '.join(differences)})", True
        if reference is None:  # the input's header unreadable: the outputs must share one grid
            reference = image
    return None


def split_existing(cases: list[Case]) -> tuple[list[Case], list[CaseResult]]:
    """``--skip-existing``: (the cases still to do, a summary line for each one left out). A case is left out
    only when its output set is whole (:func:`output_problem`); one that is not is redone, and the log says why."""
    todo, skipped = [], []
    for case in cases:
        problem = output_problem(case)
        if problem is None:
            log.info("%s: its three outputs exist and read as whole, skipped (--skip-existing)", case.case_id)
            skipped.append(CaseResult(case.case_id, SKIPPED, 0.0, str(output_folder(case))))
            continue
        reason, damaged = problem
        if damaged:
            log.warning("%s: redone (--skip-existing): %s", case.case_id, reason)
        elif reason != "no outputs yet":
            log.info("%s: redone (--skip-existing): %s", case.case_id, reason)
        todo.append(case)
    return todo, skipped


def cohort_cases(cases: list[Case], subjects: list[str] | None, skip_existing: bool,
                 shard=None) -> tuple[list[Case], list[CaseResult]]:
    """The cases this process enhances: ``--subjects``, then its share under torchrun
    (:meth:`model.cli.sharding.Shard.assign`), then ``--skip-existing``; and the summary lines of those skipped."""
    cases = select_subjects(cases, subjects)
    if shard is not None:
        cases = shard.assign(cases)
    return split_existing(cases) if skip_existing else (cases, [])


def output_folder(case: Case) -> str:
    """The folder of a case's outputs (the common parent of the three)."""
    parents = {case.outputs[c].parent for c in CONTRASTS}
    return str(parents.pop()) if len(parents) == 1 else str(case.outputs[CONTRASTS[0]].parent.parent)


def results_of(cases: list[Case], failures: dict[str, str], seconds: dict[str, float]) -> list[CaseResult]:
    """A summary line for every case that was attempted."""
    return [CaseResult(case.case_id, f"FAILED {failures[case.case_id]}" if case.case_id in failures else ENHANCED,
                       seconds.get(case.case_id, 0.0), output_folder(case)) for case in cases]


def summary_table(results: list[CaseResult]) -> str:
    """The end-of-run table: subject, status, seconds, output folder; then the counts."""
    rows = [("subject", "status", "seconds", "output folder")]
    rows += [(r.subject, r.status, f"{r.seconds:.1f}", r.output_folder) for r in sorted(results, key=lambda r: r.subject)]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}  {d}" for a, b, c, d in rows]
    lines.insert(1, "-" * len(lines[0]))
    failed = sum(r.failed for r in results)
    skipped = sum(r.status == SKIPPED for r in results)
    lines.append(f"{len(results) - failed - skipped} of {len(results)} cases enhanced, {skipped} skipped, {failed} failed")
    return "\n".join(lines)


def log_summary(results: list[CaseResult]) -> None:
    """The table, one log line per row: a warning when something failed, so that ``--quiet`` shows it too."""
    level = logging.WARNING if any(r.failed for r in results) else logging.INFO
    for line in summary_table(results).splitlines():
        log.log(level, "%s", line)
