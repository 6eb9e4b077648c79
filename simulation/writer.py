"""Writing a simulated subject in the ULF-EnC layout, atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from model.volumes.layouts import HIGH_FIELD, LOW_FIELD, SUFFIX, mask_path, volume_path
from simulation.geometry import to_image
from simulation.parameters import CONTRASTS


def write_image_atomic(image: sitk.Image, path: Path) -> None:
    """Write ``image`` to ``path`` through a temporary file in the same folder (same extension), then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name[: -len(SUFFIX)]}.", suffix=SUFFIX, dir=path.parent)
    os.close(handle)
    try:
        sitk.WriteImage(image, temporary, True)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_subject(root: Path, subject_id: str, subject) -> None:
    """Write ``subject`` under ``root``: 3T and 64mT T1/T2/FLAIR (float32) and the brain mask (uint8)."""
    root = Path(root)
    grid = subject.grid
    for folder, volumes in ((HIGH_FIELD, subject.high), (LOW_FIELD, subject.low)):
        for contrast, volume in zip(CONTRASTS, volumes):
            write_image_atomic(to_image(np.asarray(volume, dtype=np.float32), grid),
                               volume_path(root, subject_id, folder, contrast))
    write_image_atomic(to_image(np.asarray(subject.mask, dtype=np.uint8), grid), mask_path(root, subject_id))
