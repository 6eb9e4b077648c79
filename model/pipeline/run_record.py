"""The record of what produced an output set, and replaying it (``--replay RECORD``).

Every case's outputs get a record beside them (ULF-EnC and explicit files: ``<case>.enhancement.json`` in
the outputs' folder, written in the same atomic step as the volumes; Grand Challenge: only the log, as the
platform keeps only its configured outputs). It holds the settings actually run (after a time budget's
choice, with the chain as far as it went), the levels visited and the windows they cost, the budget's choice
with its estimate, the seed, device and precision,
the networks' checksums and the code version. Replaying a record runs exactly those settings with no
planning; on the same device and precision the outputs are byte-identical.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError, WeightsError
from ..volumes.layouts import CONTRASTS, Case, case_file_stem
from ..config.settings import SamplerSettings
from ..weights.manifest import read_manifest, sha256_of

if TYPE_CHECKING:
    from .enhancer import Enhancement

RECORD_FORMAT = 2  # 2: levels, windows and the budget's choice (1, which named it 'plan', replays too)
REPLAYABLE_FORMATS = (1, 2)
RECORD_SUFFIX = ".enhancement.json"
CODE_VERSION_VARIABLE = "ULF_CODE_VERSION"  # set by the image's build (build.sh: the git commit)


def record_path(case: Case) -> Path | None:
    """Where a case's record goes: beside its outputs (``<case_id>.enhancement.json``); None in the Grand
    Challenge layout (the platform accepts only the configured outputs in /output)."""
    if case.layout == "grand-challenge":
        return None
    return case.outputs[CONTRASTS[0]].parent / f"{case_file_stem(case.case_id)}{RECORD_SUFFIX}"


def code_version() -> str:
    """``$ULF_CODE_VERSION`` (the image's commit), else ``git describe`` of the repository checkout this package
    runs from, else "unknown" (an installed package: its folder is not the checkout's ``model/``)."""
    if os.environ.get(CODE_VERSION_VARIABLE):
        return os.environ[CODE_VERSION_VARIABLE]
    checkout = Path(__file__).resolve().parents[2]
    if not (checkout / ".git").exists():
        return "unknown"
    try:
        result = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=40"], capture_output=True,
                                text=True, timeout=10, cwd=checkout)
        return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def networks_sha256(weights_dir: Path, names: tuple[str, ...]) -> dict[str, str]:
    """The manifest's sha256 of the networks a run loaded (verified against the files when they were loaded)."""
    networks = read_manifest(weights_dir)["networks"]
    return {name: networks[name]["sha256"] for name in names}


def build_record(case: Case, enhancement: "Enhancement", device: str, precision: str,
                 weights_dir: Path | None, networks: tuple[str, ...]) -> dict[str, Any]:
    """The record of one case's run (JSON-ready): the settings and plan that ran, the time budget's choice."""
    settings, choice, plan = enhancement.settings, enhancement.budget, enhancement.plan
    return {
        "format": RECORD_FORMAT,
        "case": case.case_id,
        "layout": case.layout,
        "inputs": {c: {"path": str(case.inputs[c]), "sha256": sha256_of(case.inputs[c])} for c in CONTRASTS},
        "outputs": {c: str(case.outputs[c]) for c in CONTRASTS},
        "uncertainty": {c: str(path) for c, path in case.uncertainty.items()} if enhancement.spread is not None else {},
        "samples": plan.samples,
        "settings": settings.to_dict(),
        "levels": list(plan.levels),
        "windows": {"unet": plan.unet_windows, "bridge": plan.bridge_windows},
        # head_crop: the (start, stop) per axis of the box the networks ran on, of the 1 mm processing grid
        "head_box": None if enhancement.box is None else [list(axis) for axis in enhancement.box],
        "budget": None if choice is None else {"label": choice.label, "estimate_seconds": round(choice.estimate, 1),
                                               "allowance_seconds": round(choice.allowance, 1), "fits": choice.fits},
        "seed": settings.algorithm.seed,
        "device": device,
        "precision": precision,
        "weights": {"folder": str(weights_dir) if weights_dir is not None else None,
                    "networks_sha256": networks_sha256(weights_dir, networks) if networks else {}},
        "code_version": code_version(),
        "python": platform.python_version(),
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def record_bytes(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, indent=2) + "\n").encode()


def read_record(path: Path) -> dict[str, Any]:
    """A record written by :func:`build_record`, checked; UsageError (exit 2) naming what is wrong."""
    try:
        record = json.loads(Path(path).read_text())
    except OSError as error:
        raise UsageError(f"--replay {path}: cannot read it ({error.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UsageError(f"--replay {path}: not a JSON run record ({error})") from None
    if not isinstance(record, dict) or record.get("format") not in REPLAYABLE_FORMATS or not isinstance(record.get("settings"), dict):
        raise UsageError(f"--replay {path}: expected a run record (format {RECORD_FORMAT}, with 'settings'), "
                         f"as written beside the outputs as <case>{RECORD_SUFFIX}")
    return record


def replayed_settings(record: dict[str, Any], path: Path) -> SamplerSettings:
    """The settings a record ran, exactly (no preset, no planning)."""
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in record["settings"].items()}
    try:
        return SamplerSettings().updated(**values)
    except (TypeError, ValueError) as error:
        raise UsageError(f"--replay {path}: its settings are not valid here ({error})") from None


def check_replay_weights(record: dict[str, Any], weights_dir: Path, path: Path) -> None:
    """The weights in hand must be those the record ran (by checksum); WeightsError (exit 3) otherwise."""
    recorded = (record.get("weights") or {}).get("networks_sha256") or {}
    networks = read_manifest(weights_dir)["networks"]
    for name, sha in recorded.items():
        have = (networks.get(name) or {}).get("sha256")
        if have != sha:
            raise WeightsError(f"--replay {path}: the record ran the {name} network sha256 {sha[:12]}..., the weights in "
                               f"{weights_dir} have {str(have)[:12]}...; pass --weights with the folder it ran")
