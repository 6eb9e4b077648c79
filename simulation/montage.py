"""A PNG montage of one subject: 3 contrasts x (64 mT, 3 T) rows, axial/coronal/sagittal columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from simulation.parameters import CONTRASTS


def orthogonal_slices(volume: np.ndarray, centre: tuple[int, int, int]) -> list[np.ndarray]:
    """Axial, coronal and sagittal slices through ``centre`` of an (x, y, z) volume, ready for ``imshow``.

    For the template's orientation (x index towards the patient's right, y towards anterior, z
    upwards): axial and coronal views show the patient's left on the image left (neurological
    convention), anterior at the top of axial views, superior at the top of the others; sagittal
    views have anterior on the right.
    """
    x, y, z = centre
    axial = np.flipud(volume[:, :, z].T)
    coronal = np.flipud(volume[:, y, :].T)
    sagittal = np.flipud(volume[x, :, :].T)
    return [axial, coronal, sagittal]


def _window(image: np.ndarray, upper: float) -> np.ndarray:
    """Display window [0, upper] (upper: the 99.5th percentile inside the head, as a scanner console would)."""
    return np.clip(image / max(upper, 1e-6), 0.0, 1.0)


def save_montage(subject, path: Path, title: str = "") -> Path:
    """Write the montage of ``subject`` (a SimulatedSubject) to ``path`` (PNG) and return the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mask = subject.mask > 0
    head = subject.labels > 0 if getattr(subject, "labels", None) is not None else mask
    centre = tuple(int(round(np.mean(axis))) for axis in np.nonzero(mask))
    rows = [(f"{c} {field}", volumes[i]) for i, c in enumerate(CONTRASTS)
            for field, volumes in (("64 mT", subject.low), ("3 T", subject.high))]
    figure, axes = plt.subplots(len(rows), 3, figsize=(7.5, 2.4 * len(rows)), facecolor="black")
    for row, (label, volume) in zip(axes, rows):
        upper = float(np.percentile(volume[head], 99.5))
        for column, (axis, image) in enumerate(zip(row, orthogonal_slices(volume, centre))):
            axis.imshow(_window(image, upper), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            axis.set_axis_off()
            if column == 0:
                axis.text(2, 12, label, color="yellow", fontsize=10)
    if title:
        figure.suptitle(title, color="white")
    figure.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.97 if title else 0.99, wspace=0.02, hspace=0.02)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80, facecolor="black")
    plt.close(figure)
    return path
