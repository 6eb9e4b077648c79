"""Where things are in the ULF-EnC layout (SPEC 4).

``ROOT/<ID>/3T/<ID>_<C>.nii.gz`` (high field), ``ROOT/<ID>/64mT/<ID>_<C>.nii.gz`` (low field),
``ROOT/Masks/<ID>/<ID>_T1.nii.gz`` (brain masks), predictions ``PRED/<ID>/Enhanced/<ID>_<C>.nii.gz``,
with C one of T1, T2, FLAIR.
"""

from __future__ import annotations

from pathlib import Path

CONTRASTS = ("T1", "T2", "FLAIR")
HIGH_FIELD = "3T"
LOW_FIELD = "64mT"
ENHANCED = "Enhanced"
MASKS = "Masks"
SUFFIX = ".nii.gz"


def volume_path(root: Path, subject_id: str, folder: str, contrast: str) -> Path:
    """``root/<ID>/<folder>/<ID>_<contrast>.nii.gz`` (folder: 3T, 64mT or Enhanced)."""
    return Path(root) / subject_id / folder / f"{subject_id}_{contrast}{SUFFIX}"


def mask_path(root: Path, subject_id: str) -> Path:
    """``root/Masks/<ID>/<ID>_T1.nii.gz``: the brain mask the challenge scores in."""
    return Path(root) / MASKS / subject_id / f"{subject_id}_T1{SUFFIX}"


def reference_subjects(root: Path) -> list[str]:
    """Subject IDs of a reference root: sorted folders (other than Masks) that hold a 3T folder."""
    return sorted(p.name for p in Path(root).iterdir()
                  if p.is_dir() and p.name != MASKS and (p / HIGH_FIELD).is_dir())
