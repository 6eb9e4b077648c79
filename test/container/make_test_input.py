#!/usr/bin/env python3
"""Make the committed Grand Challenge test input ``test/input/interf0/`` (the forge templates' layout).

    python test/container/make_test_input.py            # rewrites test/input/interf0 (about a minute)

One subject of the project's simulator (64 mT side; data-set seed 31, outside the training and held-out
seeds), a centred 112 x 112 x 40 voxel slab of the 1 mm head, stored as int16 (as scanners export) in
compressed MetaImage, one file per input interface under ``images/<relative_path>/<uuid>.mha``, with the
platform's ``inputs.json`` describing them. ``test/run-container.sh`` runs the built image on it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[2]
SEED = 31
SIZE = (112, 112, 40)
CONTRASTS = ("T1", "T2", "FLAIR")
INPUT_SLUGS = {c: f"low-field-{c.lower()}-brain-mri" for c in CONTRASTS}  # model/volumes/layouts.py's defaults


def centred_slab(image: sitk.Image, size: tuple[int, int, int]) -> sitk.Image:
    """The central ``size`` voxels (the origin moves with the crop)."""
    start = [(full - s) // 2 for full, s in zip(image.GetSize(), size)]
    return sitk.RegionOfInterest(image, size, start)


def as_int16(image: sitk.Image) -> sitk.Image:
    """Rescaled to 0..4000 and rounded to int16, geometry kept."""
    values = sitk.GetArrayFromImage(image).astype(np.float64)
    scaled = np.round(4000 * (values - values.min()) / max(np.ptp(values), 1e-12)).astype(np.int16)
    out = sitk.GetImageFromArray(scaled)
    out.CopyInformation(image)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "test" / "input" / "interf0")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run([sys.executable, "-m", "simulation", "--out", scratch, "--subjects", "1", "--seed", str(SEED),
                        "--no-progress"], cwd=REPO, check=True)
        subject = next(Path(scratch).glob("*/64mT")).parent
        if args.out.exists():
            shutil.rmtree(args.out)
        entries = []
        for number, contrast in enumerate(CONTRASTS):
            image = as_int16(centred_slab(sitk.ReadImage(str(subject / "64mT" / f"{subject.name}_{contrast}.nii.gz")), SIZE))
            relative = f"images/{INPUT_SLUGS[contrast]}"
            name = f"{uuid.UUID(int=(SEED << 16) + number)}.mha"
            (args.out / relative).mkdir(parents=True)
            sitk.WriteImage(image, str(args.out / relative / name), useCompression=True)
            entries.append({"pk": number + 1, "file": None, "value": None, "image": {"pk": name[:-4], "name": name},
                            "interface": {"kind": "Image", "super_kind": "Image", "slug": INPUT_SLUGS[contrast],
                                          "title": f"Low-field {contrast} brain MRI", "relative_path": relative}})
        (args.out / "inputs.json").write_text(json.dumps(entries, indent=2) + "\n")
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"wrote {args.out} ({total / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
