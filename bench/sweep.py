"""Configurations x held-out subjects, resumable: the runner that the quality curve
(:mod:`bench.quality`) and the ablation table (:mod:`bench.ablation`) share.

Every finished run is appended to a JSON-lines file at once (``{"kind", "label", "subject", ...}``);
runs already there are skipped, so an interrupted sweep resumes where it stopped. Configurations go
cheap to dear, every subject before the next configuration.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bench.case import BenchCase, contrast_scores, mean_scores
from model.enhancer import Enhancer

log = logging.getLogger(__name__)

Run = Callable[[str, Any, int], "dict[str, Any] | None"]  # (label, configuration, subject) -> record, None: skipped


class RunLog:
    """Finished runs, one JSON line each, keyed by (kind, label, subject)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records = [json.loads(line) for line in self.path.read_text().splitlines()] if self.path.is_file() else []

    def find(self, label: str, subject: int, kind: str = "run") -> dict | None:
        return next((r for r in self.records if (r["kind"], r["label"], r["subject"]) == (kind, label, subject)), None)

    def add(self, record: dict) -> None:
        self.records.append(record)
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")

    def runs(self, label: str | None = None) -> list[dict]:
        """The finished runs (of one configuration)."""
        return [r for r in self.records if r["kind"] == "run" and (label is None or r["label"] == label)]


def sweep(configurations: dict[str, Any], subjects: Iterable[int], runs: RunLog, run: Run,
          after_each: Callable[[], None] | None = None) -> None:
    """``run`` every configuration on every subject that ``runs`` does not hold yet, recording each."""
    subjects = list(subjects)
    for label, configuration in configurations.items():
        for subject in subjects:
            if runs.find(label, subject) is not None:
                continue
            record = run(label, configuration, subject)
            if record is None:
                continue
            runs.add({"kind": "run", "label": label, "subject": subject, **record})
            log.info("%s, subject %d: score %.4f in %.0f s", label, subject, record["metrics"]["score"], record["seconds"])
            if after_each is not None:
                after_each()


def enhance_and_score(enhancer: Enhancer, case: BenchCase) -> dict[str, Any]:
    """One run's record: settings, seconds, what it evaluated, and its scores (per contrast and mean)."""
    started = time.perf_counter()
    enhanced = enhancer.enhance(case.network_input)
    seconds = time.perf_counter() - started
    counts, rows = enhancer.counts, contrast_scores(case, enhanced)
    return {"settings": enhancer.settings.to_dict(), "seconds": seconds, "evaluations": counts.evaluations,
            "unet_windows": counts.windows, "bridge_windows": counts.bridge_windows,
            "rows": rows, "metrics": mean_scores(rows)}
