"""Configurations x held-out subjects, resumable: the runner that the quality curve
(:mod:`bench.quality`) and the ablation table (:mod:`bench.ablation`) share.

Every finished run is appended to a JSON-lines file at once (``{"kind", "label", "subject", "key", ...}``);
a run already there is skipped, so an interrupted sweep resumes where it stopped. Configurations go
cheap to dear, every subject before the next configuration.

A run is reused only when its ``key`` (:func:`run_key`: the weights' checksums, the configuration's
settings, the device, the held-out set's simulator parameters, the crop and what was scored) equals the
one asked for, so a table never mixes weights, settings or sets; a logged run with another key is run
again, and a log line says what differed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.case import BenchCase, contrast_scores, mean_scores, raw_input_scores
from model.pipeline.enhancer import Enhancer
from model.method.sampler import Mode
from model.config.settings import SamplerSettings
from model.weights.manifest import read_manifest, sha256_of

log = logging.getLogger(__name__)

Run = Callable[[str, Any, int], "dict[str, Any] | None"]  # (label, configuration, subject) -> record, None: skipped
Key = Callable[[str, Any], "dict[str, Any]"]  # (label, configuration) -> the key its runs are logged and found under

RAW_INPUT, OUTPUT = "raw input", "output"  # what a run scored: the raw input (identity) or the enhancer's output


def weights_checksums(directory: Path) -> dict[str, str]:
    """The sha256 of every network file in ``directory``'s manifest (hashed from the files, so a file
    swapped under an unchanged manifest counts too)."""
    manifest = read_manifest(directory)
    return {name: sha256_of(Path(directory) / entry["file"]) for name, entry in sorted(manifest["networks"].items())}


def scored(settings: SamplerSettings, clipped_identity: bool = False) -> str:
    """What a run of ``settings`` scores: the raw input for the identity (unless ``clipped_identity``: the
    normalised, clipped input written back), otherwise the enhancer's output."""
    return RAW_INPUT if settings.algorithm.mode is Mode.IDENTITY and not clipped_identity else OUTPUT


def run_key(weights: Path | Mapping[str, Any], settings: SamplerSettings | Mapping[str, Any], *,
            crop: Sequence[int] | None, variation: str, shape_scale: float = 1.0, source: str = "low",
            device: str = "cpu", scoring: str = OUTPUT) -> dict[str, Any]:
    """What a logged run must match to be reused (the subject and the label are matched besides):
    ``weights`` (a folder, or its :func:`weights_checksums`), the configuration's ``settings``, the device
    type (``precision=auto`` differs between them), the held-out set (``variation``, ``shape_scale``), the
    ``crop``, which field was the input (``source``) and what was scored (:func:`scored`)."""
    checksums = weights_checksums(Path(weights)) if isinstance(weights, (str, Path)) else dict(weights)
    return {"weights": checksums,
            "settings": settings.to_dict() if isinstance(settings, SamplerSettings) else dict(settings),
            "device": str(device), "variation": variation, "shape_scale": float(shape_scale),
            "crop": None if crop is None else [int(n) for n in crop], "source": source, "scored": scoring}


def key_differences(logged: Mapping[str, Any] | None, wanted: Mapping[str, Any]) -> list[str]:
    """What differs between a logged run's key and the one asked for, in words."""
    if not logged:
        return ["no key (logged before runs were keyed)"]
    differences = []
    for field in sorted(set(logged) | set(wanted)):
        old, new = logged.get(field), wanted.get(field)
        if old == new:
            continue
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            names = sorted(k for k in {**old, **new} if old.get(k) != new.get(k))
            differences.append(f"{field} ({', '.join(names)})")
        else:
            differences.append(f"{field} ({old!r} -> {new!r})")
    return differences


class RunLog:
    """Finished runs, one JSON line each, found by (kind, label, subject) and, when asked, their key."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records = [json.loads(line) for line in self.path.read_text().splitlines()] if self.path.is_file() else []

    def _logged(self, label: str, subject: int, kind: str) -> list[dict]:
        return [r for r in self.records if (r["kind"], r["label"], r["subject"]) == (kind, label, subject)]

    def find(self, label: str, subject: int, kind: str = "run", key: Mapping[str, Any] | None = None) -> dict | None:
        """The latest logged run of ``label`` on ``subject`` whose key equals ``key`` (any key when None)."""
        return next((r for r in reversed(self._logged(label, subject, kind)) if key is None or r.get("key") == key),
                    None)

    def rerun_reason(self, label: str, subject: int, key: Mapping[str, Any], kind: str = "run") -> str | None:
        """Why no logged run can be reused for ``key`` although one of ``label`` on ``subject`` is logged
        (None when none is logged, or one matches)."""
        logged = self._logged(label, subject, kind)
        if not logged or self.find(label, subject, kind, key) is not None:
            return None
        return "the logged run differs in " + "; ".join(key_differences(logged[-1].get("key"), key))

    def add(self, record: dict) -> None:
        self.records.append(record)
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")

    def runs(self, label: str | None = None) -> list[dict]:
        """Every logged run (of one configuration), whatever its key."""
        return [r for r in self.records if r["kind"] == "run" and (label is None or r["label"] == label)]

    def current(self, label: str, subjects: Iterable[int], key: Mapping[str, Any], kind: str = "run") -> list[dict]:
        """The runs of ``label`` that a table of ``subjects`` under ``key`` may use: one per subject that has one."""
        return [r for r in (self.find(label, s, kind, key) for s in subjects) if r is not None]


def sweep(configurations: dict[str, Any], subjects: Iterable[int], runs: RunLog, run: Run,
          after_each: Callable[[], None] | None = None, *, key: Key) -> None:
    """``run`` every configuration on every subject that ``runs`` does not hold under the configuration's
    ``key`` yet, recording each with its key."""
    subjects = list(subjects)
    for label, configuration in configurations.items():
        wanted = key(label, configuration)
        for subject in subjects:
            if runs.find(label, subject, key=wanted) is not None:
                continue
            reason = runs.rerun_reason(label, subject, wanted)
            if reason is not None:
                log.info("%s, subject %d: run again: %s", label, subject, reason)
            record = run(label, configuration, subject)
            if record is None:
                continue
            runs.add({"kind": "run", "label": label, "subject": subject, "key": wanted, **record})
            log.info("%s, subject %d: score %.4f in %.0f s", label, subject, record["metrics"]["score"], record["seconds"])
            if after_each is not None:
                after_each()


def enhance_and_score(enhancer: Enhancer, case: BenchCase, *, clipped_identity: bool = False) -> dict[str, Any]:
    """One run's record: settings, seconds, what it evaluated, what it scored and its scores (per contrast
    and mean). The identity mode scores the case's raw input (:func:`bench.case.raw_input_scores`), unless
    ``clipped_identity``: then, like every other mode, the output written back on the input's scale (for the
    identity, the input after the product's percentile clipping)."""
    started = time.perf_counter()
    enhancement = enhancer.enhance(case.network_input)
    enhanced = enhancement.volume
    seconds = time.perf_counter() - started
    scoring = scored(enhancer.settings, clipped_identity)
    counts = enhancement.counts
    rows = raw_input_scores(case) if scoring == RAW_INPUT else contrast_scores(case, enhanced)
    return {"settings": enhancer.settings.to_dict(), "seconds": seconds, "evaluations": counts.evaluations,
            "unet_windows": counts.windows, "bridge_windows": counts.bridge_windows, "scored": scoring,
            "rows": rows, "metrics": mean_scores(rows)}
