"""What a weights folder was measured to do, and which levels its networks were trained on.

Scores of a configuration belong to the weights they were measured with, so they live in the weights'
manifest (its ``"calibration"`` block, written by ``python -m bench.calibrate``), never in code. This
module reads them into the configurations the planner may choose (:class:`Rung`, best first), picks the
``auto`` preset (the best calibrated configuration), and checks settings against the timesteps each
network was trained on (:func:`levels_outside_training`).

Weights without a calibration (or with one measured on other weights: the checksums are compared) get
:data:`UNCALIBRATED_LADDER`: the conservative ``cpu`` configuration, then the bridge alone as the minimum
work; the log says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import UsageError, WeightsError
from ..config.settings import SamplerSettings
from ..networks import NETWORK_NAMES
from .manifest import read_manifest, trained_timesteps

log = logging.getLogger(__name__)

CALIBRATION_KEY = "calibration"
CALIBRATION_FORMAT = 1
# What a rung may set: the algorithm's mode, K, chain and J, and the engine's overlap (and "samples", 1 when absent).
RUNG_FIELDS = ("mode", "bridge_timestep", "chain_levels", "refinements", "overlap")
FORCE_FLAG = "--allow-untrained-levels"


@dataclass(frozen=True)
class Rung:
    """One configuration the planner may choose, with the score measured for it on these weights."""

    label: str
    changes: dict[str, Any]  # RUNG_FIELDS
    score: float | None = None  # mean final score over the held-out sets; None: not measured

    def settings(self, base: SamplerSettings, planned: bool = False) -> SamplerSettings:
        """``base`` with this rung's algorithm and overlap (every level of its chain, no early grid); the
        engine's other choices (window, batching, precision) kept. ``planned``: no compilation either (its
        time cannot be planned)."""
        changes = dict(self.changes)
        overlap = changes.pop("overlap")
        if changes["mode"] not in ("full", "diffusion"):
            changes["chain_levels"] = ()
        algorithm = replace(base.algorithm, level_stride=1, level_spacing="uniform",
                            **{k: tuple(v) if k == "chain_levels" else v for k, v in changes.items()})
        engine = replace(base.engine, overlap=overlap, early_overlap=None, early_levels_fraction=0.0,
                         **({"compile": "off"} if planned else {}))
        return SamplerSettings(algorithm, engine)


def rung(label: str, mode: str = "full", chain: tuple[int, ...] = (25, 10, 1), overlap: float = 0.25,
         refinements: int = 1, bridge_timestep: int = 100, samples: int = 1) -> Rung:
    """A configuration to calibrate or fall back to (no score yet); the chain only where the mode diffuses."""
    return Rung(label, {"mode": mode, "bridge_timestep": bridge_timestep,
                        "chain_levels": list(chain) if mode in ("full", "diffusion") else [],
                        "refinements": refinements, "overlap": overlap, "samples": samples})


# Weights without a (valid) calibration: the `cpu` preset's configuration, then the minimum work.
UNCALIBRATED_LADDER: tuple[Rung, ...] = (
    rung("uncalibrated default: chain 25,10,1, J 1, overlap 0.25"),
    rung("uncalibrated minimum: bridge, overlap 0.25", mode="bridge"),
)


@dataclass(frozen=True)
class Calibration:
    """The configurations measured on a weights folder, best first (or the uncalibrated default)."""

    rungs: tuple[Rung, ...]
    measured: bool  # False: UNCALIBRATED_LADDER
    source: str  # for logs: where it came from and when it was measured

    @property
    def best(self) -> Rung:
        """The best single-sample configuration: what ``--preset auto`` runs (several samples cost several runs;
        the time-budget planner may choose them when they fit)."""
        return next((r for r in self.rungs if r.changes.get("samples", 1) == 1), self.rungs[0])


def network_checksums(manifest: dict[str, Any]) -> dict[str, str]:
    """sha256 of each network listed in a manifest."""
    return {name: entry.get("sha256") for name, entry in manifest["networks"].items()
            if isinstance(entry, dict) and name in NETWORK_NAMES}


def parse_calibration(block: Any, checksums: dict[str, str], where: str) -> tuple[Rung, ...]:
    """The rungs of a manifest's calibration block, best first; WeightsError when it is malformed or was
    measured on other networks."""
    if not isinstance(block, dict) or block.get("format") != CALIBRATION_FORMAT:
        raise WeightsError(f"{where}: the calibration block is not an object with format {CALIBRATION_FORMAT}")
    if block.get("networks_sha256") != checksums:
        raise WeightsError(f"{where}: the calibration was measured on other networks (sha256 "
                           f"{block.get('networks_sha256')} against {checksums})")
    rungs = []
    for item in block.get("configurations") or []:
        try:
            changes = {key: item["settings"][key] for key in RUNG_FIELDS}
            changes["samples"] = int(item["settings"].get("samples", 1))
            rungs.append(Rung(str(item["label"]), changes, float(item["score"])))
        except (KeyError, TypeError, ValueError) as error:
            raise WeightsError(f"{where}: malformed calibrated configuration {item!r} ({error})") from None
    if not rungs:
        raise WeightsError(f"{where}: the calibration lists no configuration")
    return tuple(sorted(rungs, key=lambda rung: -rung.score))


def load_calibration(weights_dir: Path | None) -> Calibration:
    """The calibration recorded in ``weights_dir``'s manifest, or the uncalibrated default (logged)."""
    if weights_dir is None:
        return Calibration(UNCALIBRATED_LADDER, False, "no weights folder")
    manifest = read_manifest(weights_dir)
    where = f"{Path(weights_dir) / 'manifest.json'}"
    block = manifest.get(CALIBRATION_KEY)
    if block is None:
        log.info("%s records no calibration: using the conservative default (%s)", where, UNCALIBRATED_LADDER[0].label)
        return Calibration(UNCALIBRATED_LADDER, False, f"{where}: no calibration")
    try:
        rungs = parse_calibration(block, network_checksums(manifest), where)
    except WeightsError as error:
        log.warning("%s; its scores are ignored and the conservative default is used (%s). Recalibrate: "
                    "python -m bench.calibrate --weights %s", error, UNCALIBRATED_LADDER[0].label, weights_dir)
        return Calibration(UNCALIBRATED_LADDER, False, f"{where}: calibration ignored")
    return Calibration(rungs, True, f"{where}: calibrated {block.get('measured', '(date not recorded)')}")


def levels_used(settings: SamplerSettings) -> dict[str, tuple[int, ...]]:
    """The timesteps each network is evaluated at: the bridge at K, the diffusion network at its levels."""
    a = settings.algorithm
    return {"bridge": (a.bridge_timestep,) if a.mode.uses_bridge else (),
            "diffusion": tuple(a.visited_levels())}


def _levels_text(levels: tuple[int, ...]) -> str:
    distinct = sorted(set(levels), reverse=True)
    return ", ".join(map(str, distinct[:6])) + (", ..." if len(distinct) > 6 else "")


TrainedRanges = dict[str, "tuple[int, int] | None"]  # network -> the timesteps it was trained on (None: not recorded)


def trained_ranges(weights_dir: Path | None) -> TrainedRanges:
    """Each network's trained timesteps, from the manifest (read once for a whole check)."""
    return {} if weights_dir is None else {name: trained_timesteps(weights_dir, name) for name in NETWORK_NAMES}


def levels_outside_training(settings: SamplerSettings, weights_dir: Path | None,
                            ranges: TrainedRanges | None = None) -> list[str]:
    """One phrase per network these settings evaluate outside the timesteps it was trained on (per the
    manifest, or ``ranges`` already read from it; a network that records none is not checked)."""
    ranges = trained_ranges(weights_dir) if ranges is None else ranges
    outside = []
    for name, levels in levels_used(settings).items():
        trained = ranges.get(name) if levels else None
        if trained and not all(trained[0] <= t <= trained[1] for t in levels):
            outside.append(f"the {name} network at t = {_levels_text(levels)} (trained on t = {trained[0]}..{trained[1]})")
    return outside


def check_trained_levels(settings: SamplerSettings, weights_dir: Path | None, allow: bool, asked: str) -> None:
    """Refuse (exit 2) settings that evaluate a network outside its trained timesteps, unless ``allow``
    (then warn). ``asked`` names what the user asked for, for the message (e.g. "--preset paper")."""
    outside = levels_outside_training(settings, weights_dir)
    if not outside:
        return
    what = f"{asked} needs {' and '.join(outside)}"
    if not allow:
        raise UsageError(f"{what}, in the weights {weights_dir}: use --preset auto (the weights' calibrated default) "
                         f"or force it with {FORCE_FLAG}")
    log.warning("%s, in the weights %s: forced with %s; expect a worse result", what, weights_dir, FORCE_FLAG)


def ladder_for(requested: SamplerSettings, calibration: Calibration, weights_dir: Path | None) -> list[tuple[str, SamplerSettings]]:
    """The calibration's rungs as settings on ``requested`` (planned: no compilation), best first, without
    those that leave the networks' trained timesteps."""
    options = [(rung.label, rung.settings(requested, planned=True)) for rung in calibration.rungs]
    ranges = trained_ranges(weights_dir)
    return [(label, settings) for label, settings in options if not levels_outside_training(settings, weights_dir, ranges)]


def auto_settings(weights_dir: Path | None, base: SamplerSettings | None = None) -> tuple[str, SamplerSettings]:
    """The ``auto`` preset of a weights folder: its best calibrated configuration (label, settings) on
    ``base`` (default: the engine's defaults)."""
    calibration = load_calibration(weights_dir)
    best = calibration.best
    log.info("preset auto: %s (%s%s)", best.label, calibration.source,
             f", mean held-out score {best.score:.4f}" if best.score is not None else "")
    return best.label, best.settings(base or SamplerSettings())
