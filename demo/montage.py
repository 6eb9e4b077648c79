"""A Figure-3-like PNG: rows T1/T2/FLAIR x views, columns low field | enhanced (one or more) | high field."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from simulation.montage import orthogonal_slices

CONTRASTS = ("T1", "T2", "FLAIR")
VIEWS = ("axial", "coronal", "sagittal")


def save_comparison(columns: list[tuple[str, np.ndarray]], mask: np.ndarray, path: Path, title: str = "") -> Path:
    """Write the comparison of (label, (3, X, Y, Z) volumes) columns to ``path``, written atomically; each
    panel windowed to its own 99.5th percentile inside the mask, all centred on the mask's centre."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centre = tuple(int(round(np.mean(axis))) for axis in np.nonzero(mask > 0))
    figure, axes = plt.subplots(len(CONTRASTS) * len(VIEWS), len(columns), figsize=(2.4 * len(columns), 2.3 * 9),
                                facecolor="black", squeeze=False)
    for c, contrast in enumerate(CONTRASTS):
        for column, (label, volumes) in enumerate(columns):
            volume = volumes[c]
            upper = max(float(np.percentile(volume[mask > 0], 99.5)), 1e-6)
            for v, image in enumerate(orthogonal_slices(volume, centre)):
                axis = axes[c * len(VIEWS) + v, column]
                axis.imshow(np.clip(image / upper, 0, 1), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
                axis.set_axis_off()
                if v == 0:
                    axis.set_title(f"{contrast} {label}", color="yellow", fontsize=9)
    if title:
        figure.suptitle(title, color="white")
    figure.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.96, wspace=0.02, hspace=0.12)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial.png")
    figure.savefig(partial, dpi=70, facecolor="black")
    plt.close(figure)
    partial.replace(path)
    return path
