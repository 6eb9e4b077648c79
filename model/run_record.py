"""The record of what produced an output set, and replaying it (``--replay RECORD``).

Every case's outputs get a record beside them (ULF-EnC and explicit files: ``<case>.enhancement.json`` in
the outputs' folder, written in the same atomic step as the volumes; Grand Challenge: only the log, as the
platform keeps only its configured outputs). It holds the settings actually run (after a time budget's
plan, with the chain as far as it went), the plan's label and estimate, the seed, device and precision,
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

from model.errors import UsageError, WeightsError
from model.layouts import CONTRASTS, Case, case_file_stem
from model.settings import SamplerSettings
from model.weights import read_manifest, sha256_of

if TYPE_CHECKING:
    from model.budget import Plan

RECORD_FORMAT = 1
RECORD_SUFFIX = ".enhancement.json"
CODE_VERSION_VARIABLE = "ULF_CODE_VERSION"  # set by the image's build (build.sh: the git commit)


def record_path(case: Case) -> Path | None:
    """Where a case's record goes: beside its outputs (``<case_id>.enhancement.json``); None in the Grand
    Challenge layout (the platform accepts only the configured outputs in /output)."""
    if case.layout == "grand-challenge":
        return None
    return case.outputs[CONTRASTS[0]].parent / f"{case_file_stem(case.case_id)}{RECORD_SUFFIX}"


def code_version() -> str:
    """``$ULF_CODE_VERSION`` (the image's commit), else ``git describe`` of this checkout, else "unknown"."""
    if os.environ.get(CODE_VERSION_VARIABLE):
        return os.environ[CODE_VERSION_VARIABLE]
    try:
        result = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=40"], capture_output=True,
                                text=True, timeout=10, cwd=Path(__file__).resolve().parent)
        return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def networks_sha256(weights_dir: Path, names: tuple[str, ...]) -> dict[str, str]:
    """The manifest's sha256 of the networks a run loaded (verified against the files when they were loaded)."""
    networks = read_manifest(weights_dir)["networks"]
    return {name: networks[name]["sha256"] for name in names}


def build_record(case: Case, settings: SamplerSettings, plan: Plan | None, device: str, precision: str,
                 weights_dir: Path | None, networks: tuple[str, ...]) -> dict[str, Any]:
    """The record of one case's run (JSON-ready)."""
    return {
        "format": RECORD_FORMAT,
        "case": case.case_id,
        "layout": case.layout,
        "inputs": {c: {"path": str(case.inputs[c]), "sha256": sha256_of(case.inputs[c])} for c in CONTRASTS},
        "outputs": {c: str(case.outputs[c]) for c in CONTRASTS},
        "settings": settings.to_dict(),
        "plan": None if plan is None else {"label": plan.label, "estimate_seconds": round(plan.estimate, 1),
                                            "allowance_seconds": round(plan.allowance, 1), "fits": plan.fits},
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
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT or not isinstance(record.get("settings"), dict):
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
