"""Checks of every output path before any computing: never onto an input, never two onto one file,
never where a folder or an unwritable place is in the way.

Paths are compared after resolving ``..`` and symbolic links, and existing files also by device and
inode (hard links). Stale temporaries of killed earlier runs are removed from the output folders here
(:func:`model.volumes.atomic.remove_stale_partials`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ..volumes.atomic import remove_stale_partials
from ..errors import EnhancementError, InputError, OutputError
from ..volumes.layouts import Case
from .run_record import record_path


def resolved(path: Path) -> Path:
    """The absolute path with ``..`` and every symbolic link resolved (as far as the path exists)."""
    return Path(os.path.abspath(path)).resolve()


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except (OSError, ValueError):
        return None
    return status.st_dev, status.st_ino


def _name_limit(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def check_folder_writable(folder: Path) -> None:
    """Probe the folder (or its nearest existing parent) with a file; nothing is left behind."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"output folder {folder} is not writable: {existing} is not a folder")
    probe = existing / f".write-probe-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise OutputError(f"output folder {folder} is not writable: {error.strerror} ({existing})") from None


class OutputPlan:
    """The inputs of all cases, and the outputs claimed so far; checks one case at a time."""

    def __init__(self, cases: Iterable[Case], with_uncertainty: bool = False):
        self.inputs: dict[Path, str] = {}
        self.identities: dict[tuple[int, int], str] = {}
        for case in cases:
            for contrast, path in case.inputs.items():
                label = f"the {case.case_id} {contrast} input {path}"
                self.inputs[resolved(path)] = label
                if (identity := _identity(path)) is not None:
                    self.identities[identity] = label
        self.claimed: dict[Path, str] = {}
        self.with_uncertainty = with_uncertainty  # several samples: the uncertainty maps are outputs too
        self.probed: set[Path] = set()

    def check(self, case: Case) -> None:
        """Refuse ``case`` if an output would overwrite an input or another output, or cannot be written."""
        mine: dict[Path, str] = {}
        targets = dict(case.outputs)
        if self.with_uncertainty:
            targets |= {f"{c} uncertainty": path for c, path in case.uncertainty.items()}
        if (record := record_path(case)) is not None:
            targets["run record"] = record
        for contrast, path in targets.items():
            target, label = resolved(path), f"the {case.case_id} {contrast} output {path}"
            victim = self.inputs.get(target) or self.identities.get(_identity(path))
            if victim:
                raise InputError(f"{label} would overwrite {victim}; expected an output folder apart from the inputs "
                                 "(--output-dir / --output)")
            other = mine.get(target) or self.claimed.get(target)
            if other:
                raise InputError(f"{label} and {other} are one file ({target}); expected a file per output")
            mine[target] = label
        for contrast, path in targets.items():
            self._check_target(Path(path), contrast)
        self.claimed.update(mine)

    def _check_target(self, path: Path, contrast: str) -> None:
        if len(os.fsencode(path.name)) > _name_limit(path.parent if path.parent.is_dir() else Path("/")):
            raise OutputError(f"the {contrast} output name '{path.name[:40]}...' is {len(os.fsencode(path.name))} "
                              "bytes, beyond the file system's limit on a file name; expected a shorter input name")
        if path.is_dir() or (path.exists() and not path.is_file()):
            kind = "a folder" if path.is_dir() else "not a regular file"
            raise OutputError(f"the {contrast} output {path} exists and is {kind}; expected a free file name "
                              "(remove or rename it)")
        if path.parent not in self.probed:
            check_folder_writable(path.parent)
            self.probed.add(path.parent)
            if path.parent.is_dir():
                remove_stale_partials(path.parent)


def plan_outputs(cases: list[Case], with_uncertainty: bool = False) -> dict[str, EnhancementError]:
    """Check every case's outputs (with ``with_uncertainty``, several samples: its uncertainty maps too) before
    computing; returns the refused cases and why."""
    plan, refused = OutputPlan(cases, with_uncertainty), {}
    for case in cases:
        try:
            plan.check(case)
        except EnhancementError as error:
            refused[case.case_id] = error
    return refused
