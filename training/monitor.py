"""What a run reports while it trains (first process only): a progress bar, ``metrics.jsonl``, and
TensorBoard scalars and image panels under ``RUN_DIR/tensorboard`` (when the tensorboard package
is installed: ``pip install -r training/requirements.txt``; without it the run says so once and
goes on).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

METRICS = "metrics.jsonl"


def panel(rows: list[torch.Tensor]) -> np.ndarray:
    """An image grid (1, H, W) in [0, 1]: one row per (3, X, Y, Z) volume, its three contrasts side by side,
    each the middle z slice (x across, y down) mapped from [-1, 1] (values beyond are clipped)."""
    lines = []
    for volume in rows:
        middle = volume[:, :, :, volume.shape[-1] // 2].detach().float().cpu().numpy()
        lines.append(np.concatenate(list(middle), axis=0))  # contrasts stacked along x
    image = np.concatenate(lines, axis=1).T  # (rows * Y, 3 * X)
    return np.clip((image + 1.0) / 2.0, 0.0, 1.0)[None].astype(np.float32)


class Monitor:
    """Progress, scalars and images of one run; every method is a no-op on processes other than the first."""

    def __init__(self, run_dir: Path, active: bool, start_step: int, total_steps: int, progress: bool):
        self.active = active
        self.writer = None
        self.bar = None
        self.metrics = None
        if not active:
            return
        path = Path(run_dir) / METRICS
        if path.is_file():  # a resumed run repeats the steps after its checkpoint: drop their old lines
            kept = [line for line in path.read_text().splitlines(keepends=True) if json.loads(line)["step"] <= start_step]
            path.write_text("".join(kept))
        self.metrics = open(path, "a", encoding="utf-8")
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(Path(run_dir) / "tensorboard"), purge_step=start_step + 1)
        except ImportError:
            log.warning("tensorboard is not installed: scalars go to %s only, no image panels "
                        "(pip install -r training/requirements.txt)", Path(run_dir) / METRICS)
        if progress:
            from tqdm import tqdm

            self.bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True)

    def advance(self, step: int, loss: float | None = None) -> None:
        """One step done (``step`` is the number of steps done)."""
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            if loss is not None:
                self.bar.set_postfix(loss=f"{loss:.4g}", refresh=False)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if not self.active:
            return
        self.metrics.write(json.dumps({"step": step, "time": time.time(), **values}) + "\n")
        self.metrics.flush()
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(name, value, step)

    def image(self, step: int, name: str, rows: list[torch.Tensor]) -> None:
        if self.writer is not None:
            self.writer.add_image(name, panel(rows), step)

    def message(self, text: str) -> None:
        if not self.active:
            return
        if self.bar is not None:
            self.bar.write(text)
        else:
            log.info("%s", text)

    def close(self) -> None:
        for resource in (self.bar, self.writer, self.metrics):
            if resource is not None:
                resource.close()
