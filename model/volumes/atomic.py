"""Putting a case's outputs in place all or none: hidden temporary files, one signal-safe commit.

Outputs are first written to hidden temporaries beside their targets, with short names that this
program alone uses (``.ulf-partial-<pid>-<hash><suffix>``, whatever the length of the target's
name), then renamed onto the targets in one step during which SIGTERM and SIGINT are deferred: a
signal that arrives then takes effect once every rename is done. A rename that fails rolls the
earlier ones back. Temporaries that a killed earlier run left behind are recognised by their name
and removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import signal
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

from ..errors import OutputError

log = logging.getLogger(__name__)

PARTIAL_PREFIX = ".ulf-partial-"
DEFERRED_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_SUFFIX = r"(\.nii\.gz|\.nii|\.mha|\.mhd|\.nrrd|\.nhdr|\.tif|\.tiff)"
# Our temporaries: ".ulf-partial-<pid>-<12 hex digits><suffix>".
PARTIAL_NAMES = (re.compile(re.escape(PARTIAL_PREFIX) + r"(\d+)-[0-9a-f]{12}" + _SUFFIX + "$"),)


def partial_path(target: Path, suffix: str) -> Path:
    """The hidden temporary of ``target``; ``suffix`` (the format's) decides SimpleITK's writer."""
    digest = hashlib.sha256(os.fsencode(target.name)).hexdigest()[:12]
    return target.with_name(f"{PARTIAL_PREFIX}{os.getpid()}-{digest}{suffix}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def remove_stale_partials(folder: Path) -> list[Path]:
    """Remove the temporaries of runs that are no longer alive (or of an earlier run under our pid) in ``folder``.

    Call before this process writes into ``folder``. Other files are never touched.
    """
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = next((m for pattern in PARTIAL_NAMES if (m := pattern.match(entry.name))), None)
        if match is None or not entry.is_file() or entry.is_symlink():
            continue
        pid = int(match.group(1))
        if pid != os.getpid() and _alive(pid):
            continue  # another run is writing there now
        try:
            entry.unlink()
            removed.append(entry)
            log.info("removed %s, a temporary file left by an interrupted earlier run", entry)
        except OSError as error:
            log.warning("cannot remove the stale temporary file %s: %s", entry, error.strerror)
    return removed


@contextlib.contextmanager
def deferred_signals(signums=DEFERRED_SIGNALS) -> Iterator[None]:
    """Hold SIGTERM and SIGINT until the block is done, then deliver the first one that came."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {signum: signal.getsignal(signum) for signum in signums}
    for signum in signums:
        signal.signal(signum, lambda number, _frame: received.append(number))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if received:
            signal.raise_signal(received[0])


def commit(partials: Mapping[Path, Path]) -> None:
    """Rename each temporary (value) onto its target (key), all or none, with signals deferred."""
    done: list[Path] = []
    with deferred_signals():
        try:
            for target, partial in partials.items():
                os.replace(partial, target)
                done.append(target)
        except OSError as error:
            for placed in done:
                with contextlib.suppress(OSError):
                    placed.unlink()
            raise OutputError(f"cannot put the output {target} in place: {error.strerror or error}; "
                              "none of this case's outputs were kept") from None


def discard(paths) -> None:
    """Remove temporaries on the way out; a failure here never hides the error that got us here."""
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError as error:
            log.warning("cannot remove the temporary file %s: %s", path, error.strerror)
