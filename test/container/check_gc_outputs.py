#!/usr/bin/env python3
"""Check a Grand Challenge job's outputs against its inputs (used by ``test/run-container.sh``).

    python check_gc_outputs.py INPUT_DIR OUTPUT_DIR

Runs inside the image under test (it needs only SimpleITK and numpy), so the host needs nothing but
Docker. For each contrast: exactly one image in the output interface's folder (``ULF_OUTPUT_PATH_<C>``,
else ``images/<ULF_OUTPUT_SOCKET_<C> or the default slug>``), on exactly the input's grid, float32,
finite, and not a copy of the input. Prints one line per contrast; exit status 1 on any failure.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

CONTRASTS = ("T1", "T2", "FLAIR")


def input_file(input_dir: Path, contrast: str) -> Path:
    """The input image of ``contrast``, from inputs.json (slug ``low-field-<c>-brain-mri``)."""
    slug = os.environ.get(f"ULF_SOCKET_{contrast}", f"low-field-{contrast.lower()}-brain-mri")
    entries = json.loads((input_dir / "inputs.json").read_text())
    relative = next(e["interface"]["relative_path"] for e in entries if e["interface"]["slug"] == slug)
    return next(p for p in sorted((input_dir / relative).iterdir()) if p.suffix == ".mha")


def output_folder(output_dir: Path, contrast: str) -> Path:
    slug = os.environ.get(f"ULF_OUTPUT_SOCKET_{contrast}", f"enhanced-{contrast.lower()}-brain-mri")
    return output_dir / os.environ.get(f"ULF_OUTPUT_PATH_{contrast}", f"images/{slug}")


def check(input_dir: Path, output_dir: Path, contrast: str) -> list[str]:
    source = sitk.ReadImage(str(input_file(input_dir, contrast)))
    folder = output_folder(output_dir, contrast)
    found = sorted(p for p in folder.glob("*") if p.is_file()) if folder.is_dir() else []
    if len(found) != 1:
        return [f"{contrast}: expected one file in {folder}, found {[p.name for p in found]}"]
    result = sitk.ReadImage(str(found[0]))
    problems = []
    if result.GetSize() != source.GetSize():
        problems.append(f"size {result.GetSize()} != input {source.GetSize()}")
    for what in ("Spacing", "Origin", "Direction"):
        if not np.allclose(getattr(result, f"Get{what}")(), getattr(source, f"Get{what}")(), rtol=0, atol=1e-6):
            problems.append(f"{what.lower()} differs from the input")
    if result.GetPixelID() != sitk.sitkFloat32:
        problems.append(f"pixel type {result.GetPixelIDTypeAsString()}, expected 32-bit float")
    values = sitk.GetArrayFromImage(result).astype(np.float64)
    if not np.isfinite(values).all():
        problems.append(f"{int((~np.isfinite(values)).sum())} non-finite values")
    elif values.shape == sitk.GetArrayFromImage(source).shape and np.array_equal(values, sitk.GetArrayFromImage(source)):
        problems.append("identical to the input: nothing was enhanced")
    print(f"{contrast}: {found[0].relative_to(output_dir)} {result.GetSize()} "
          f"range [{values.min():.4g}, {values.max():.4g}] {'ok' if not problems else 'FAIL'}")
    return [f"{contrast}: {p}" for p in problems]


def main() -> int:
    input_dir, output_dir = Path(sys.argv[1]), Path(sys.argv[2])
    problems = [p for contrast in CONTRASTS for p in check(input_dir, output_dir, contrast)]
    for problem in problems:
        print(f"FAIL {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
