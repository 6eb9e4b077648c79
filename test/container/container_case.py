#!/usr/bin/env python3
"""Helper of the container test (``run_container_test.sh``): makes the test case, checks outputs.

Not a pytest module (the container test builds images and runs for minutes; ``make
container-test`` runs it). Two subcommands:

``prepare WORK``  one small subject in both layouts:
    ``WORK/ulf_in/<ID>/64mT/<ID>_{T1,T2,FLAIR}.nii.gz`` (ULF-EnC) and
    ``WORK/gc_in/images/<slug>/<uuid>.mha`` plus ``WORK/gc_in/inputs.json`` (Grand Challenge).
    The subject comes from the project's simulator (``python -m simulation``, or its
    ``generate_subject``) when there is one, else from a small synthetic head made here, and is
    cropped to ``--size`` voxels so that CPU runs stay short. Its geometry is kept (origin moved
    with the crop, the simulator's direction and spacing kept).

``check WORK --layout gc|ulf --outputs DIR --reference DIR``  three outputs per case, geometry
    identical to the inputs, finite values, written by a non-root user, and equal (within
    tolerance) to the reference outputs made by ``process.py`` outside the container.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import SimpleITK as sitk

CONTRASTS = ("T1", "T2", "FLAIR")
SUBJECT = "POCEMR901"
DEFAULT_INPUT_SLUGS = {c: f"low-field-{c.lower()}-brain-mri" for c in CONTRASTS}
DEFAULT_OUTPUT_SLUGS = {c: f"enhanced-{c.lower()}-brain-mri" for c in CONTRASTS}


def input_slugs() -> dict[str, str]:
    return {c: os.environ.get(f"ULF_SOCKET_{c}", DEFAULT_INPUT_SLUGS[c]) for c in CONTRASTS}


def output_folders() -> dict[str, str]:
    """Each output interface's relative_path: ULF_OUTPUT_PATH_<C>, else images/<output slug>."""
    slugs = {c: os.environ.get(f"ULF_OUTPUT_SOCKET_{c}", DEFAULT_OUTPUT_SLUGS[c]) for c in CONTRASTS}
    return {c: os.environ.get(f"ULF_OUTPUT_PATH_{c}", f"images/{slugs[c]}") for c in CONTRASTS}


# ----------------------------------------------------------------------------- prepare
def simulate(root: Path, repo: Path, seed: int) -> tuple[Path, str]:
    """A ULF-EnC subject from the project's simulator, or None when there is none."""
    if (repo / "simulation" / "__main__.py").is_file():
        subprocess.run([sys.executable, "-m", "simulation", "--out", str(root), "--subjects", "1", "--seed", str(seed)],
                       cwd=repo, check=True)
        subjects = sorted(p.parent.name for p in root.glob("*/64mT"))
        if not subjects:
            raise SystemExit(f"python -m simulation wrote no <ID>/64mT folder under {root}")
        return root, subjects[0]
    sys.path.insert(0, str(repo))
    from simulation import generate_subject, write_subject  # noqa: PLC0415

    write_subject(root, SUBJECT, generate_subject(seed))
    return root, SUBJECT


def synthetic(root: Path, seed: int, size: tuple[int, int, int]) -> tuple[Path, str]:
    """A small head-like subject (no simulator): smooth blobs, noise, an oblique geometry."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in size], indexing="ij"))
    radius = np.sqrt(((grid * np.array([1.0, 1.1, 0.9])[:, None, None, None]) ** 2).sum(0))
    cos, sin = np.cos(0.2), np.sin(0.2)
    for i, contrast in enumerate(CONTRASTS):
        values = 300 * (radius < 0.85) * (1 + 0.3 * np.cos((i + 2) * 3 * grid[0]) * np.sin(2 * grid[1]))
        values = np.abs(values + 10 * rng.standard_normal(size)).astype(np.float32)
        image = sitk.GetImageFromArray(np.ascontiguousarray(values.transpose(2, 1, 0)))
        image.SetSpacing((1.0, 1.0, 1.0))
        image.SetOrigin((-70.5, 85.25, -20.0))
        image.SetDirection((cos, -sin, 0.0, sin, cos, 0.0, 0.0, 0.0, 1.0))
        path = root / SUBJECT / "64mT" / f"{SUBJECT}_{contrast}.nii.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(image, str(path))
    return root, SUBJECT


def crop(image: sitk.Image, size: tuple[int, int, int]) -> sitk.Image:
    """The central ``size`` region (geometry kept: the origin moves with the crop)."""
    full = image.GetSize()
    size = tuple(min(s, f) for s, f in zip(size, full))
    start = tuple((f - s) // 2 for s, f in zip(size, full))
    return sitk.RegionOfInterest(image, size, start)


def prepare(args: argparse.Namespace) -> None:
    work = Path(args.work)
    repo = Path(args.repo)
    raw = work / "raw"
    size = tuple(args.size)
    if args.source == "synthetic" or (args.source == "auto" and not (repo / "simulation" / "__init__.py").is_file()):
        root, subject = synthetic(raw, args.seed, size)
        source = "synthetic"
    else:
        root, subject = simulate(raw, repo, args.seed)
        source = "simulation"
    ulf = work / "ulf_in" / subject / "64mT"
    ulf.mkdir(parents=True, exist_ok=True)
    gc = work / "gc_in"
    entries = []
    for contrast, slug in input_slugs().items():
        image = crop(sitk.ReadImage(str(root / subject / "64mT" / f"{subject}_{contrast}.nii.gz")), size)
        sitk.WriteImage(image, str(ulf / f"{subject}_{contrast}.nii.gz"))
        name = f"{uuid.UUID(int=(args.seed << 8) + len(entries))}.mha"
        (gc / "images" / slug).mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(image, str(gc / "images" / slug / name), useCompression=True)
        entries.append({
            "pk": len(entries) + 1,
            "file": None,
            "image": {"pk": name[:-4], "name": name},
            "value": None,
            "interface": {
                "kind": "Image", "super_kind": "Image", "slug": slug,
                "title": f"Low-field {contrast} brain MRI", "relative_path": f"images/{slug}",
            },
        })
    (gc / "inputs.json").write_text(json.dumps(entries, indent=2) + "\n")
    first = sitk.ReadImage(str(ulf / f"{subject}_T1.nii.gz"))
    print(json.dumps({"source": source, "subject": subject, "size": first.GetSize(),
                      "spacing": first.GetSpacing(), "origin": first.GetOrigin()}))


# ----------------------------------------------------------------------------- check
class Checks:
    def __init__(self, label: str):
        self.label = label
        self.failures: list[str] = []
        self.passed = 0

    def ok(self, condition: bool, message: str) -> bool:
        if condition:
            self.passed += 1
        else:
            self.failures.append(message)
            print(f"  FAIL [{self.label}] {message}")
        return condition


def gc_files(root: Path, folders: dict[str, str]) -> dict[str, list[Path]]:
    return {c: sorted(p for p in (root / folders[c]).glob("*") if p.is_file() and not p.name.startswith("."))
            for c in CONTRASTS}


def ulf_files(root: Path, subject: str, folder: str) -> dict[str, list[Path]]:
    return {c: [p] if (p := root / subject / folder / f"{subject}_{c}.nii.gz").is_file() else [] for c in CONTRASTS}


def same_geometry(a: sitk.Image, b: sitk.Image) -> list[str]:
    problems = []
    if a.GetSize() != b.GetSize():
        problems.append(f"size {b.GetSize()} != input {a.GetSize()}")
    for what, x, y in (("spacing", a.GetSpacing(), b.GetSpacing()), ("origin", a.GetOrigin(), b.GetOrigin()),
                       ("direction", a.GetDirection(), b.GetDirection())):
        if not np.allclose(x, y, rtol=0, atol=1e-5):
            problems.append(f"{what} {tuple(round(v, 6) for v in y)} != input {tuple(round(v, 6) for v in x)}")
    return problems


def check(args: argparse.Namespace) -> int:
    work = Path(args.work)
    outputs, reference = Path(args.outputs), Path(args.reference)
    checks = Checks(args.layout)
    if args.layout == "gc":
        inputs = {c: files[0] for c, files in gc_files(work / "gc_in", {c: f"images/{s}" for c, s in input_slugs().items()}).items()}
        found = gc_files(outputs, output_folders())
        expected = gc_files(reference, output_folders())
    else:
        subject = next(p.parent.name for p in (work / "ulf_in").glob("*/64mT"))
        inputs = {c: files[0] for c, files in ulf_files(work / "ulf_in", subject, "64mT").items()}
        found = ulf_files(outputs, subject, "Enhanced")
        expected = ulf_files(reference, subject, "Enhanced")
    checks.ok(sum(len(v) for v in found.values()) == 3,
              f"expected 3 outputs, found {sum(len(v) for v in found.values())}: {found}")
    for contrast in CONTRASTS:
        if not checks.ok(len(found[contrast]) == 1, f"{contrast}: expected one output file, found {found[contrast]}"):
            continue
        path = found[contrast][0]
        image_in = sitk.ReadImage(str(inputs[contrast]))
        image_out = sitk.ReadImage(str(path))
        problems = same_geometry(image_in, image_out)
        checks.ok(not problems, f"{contrast}: geometry differs from the input: {'; '.join(problems)}")
        values = sitk.GetArrayFromImage(image_out).astype(np.float64)
        checks.ok(bool(np.isfinite(values).all()), f"{contrast}: {int((~np.isfinite(values)).sum())} non-finite values")
        uid = path.stat().st_uid
        checks.ok(uid != 0, f"{contrast}: {path.name} is owned by uid 0: the process ran as root")
        if not checks.ok(len(expected[contrast]) == 1, f"{contrast}: no reference output from process.py outside the container"):
            continue
        ref = sitk.GetArrayFromImage(sitk.ReadImage(str(expected[contrast][0]))).astype(np.float64)
        if not checks.ok(ref.shape == values.shape, f"{contrast}: shape {values.shape} != reference {ref.shape}"):
            continue
        scale = max(float(np.nanmax(np.abs(ref))), 1e-12)
        diff = np.abs(values - ref)
        max_rel = float(np.nanmax(diff)) / scale
        checks.ok(max_rel <= args.rtol,
                  f"{contrast}: differs from process.py outside the container: max |diff| / max |ref| = {max_rel:.3g} "
                  f"> {args.rtol:g} (mean |diff| {float(np.nanmean(diff)):.3g}, ref max {scale:.4g})")
        print(f"  {args.layout} {contrast}: {path.name} size {image_out.GetSize()} {image_out.GetPixelIDTypeAsString()}, "
              f"uid {uid}, range [{float(values.min()):.4g}, {float(values.max()):.4g}], "
              f"max rel. diff vs host {max_rel:.2e}")
    print(f"  {args.layout}: {checks.passed} checks passed, {len(checks.failures)} failed")
    Path(args.result).write_text(json.dumps({"passed": checks.passed, "failed": len(checks.failures),
                                              "failures": checks.failures}) + "\n") if args.result else None
    return 1 if checks.failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="make the test case in both layouts")
    p.add_argument("work")
    p.add_argument("--repo", default=str(Path(__file__).resolve().parents[2]))
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--size", type=int, nargs=3, default=(140, 132, 36), metavar=("X", "Y", "Z"))
    p.add_argument("--source", choices=("auto", "simulation", "synthetic"), default="auto")
    c = sub.add_parser("check", help="check one layout's outputs")
    c.add_argument("work")
    c.add_argument("--layout", choices=("gc", "ulf"), required=True)
    c.add_argument("--outputs", required=True)
    c.add_argument("--reference", required=True)
    c.add_argument("--rtol", type=float, default=1e-3, help="max |diff| relative to max |reference| (default 1e-3)")
    c.add_argument("--result", help="write the counts here as JSON")
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args)
        return 0
    return check(args)


if __name__ == "__main__":
    raise SystemExit(main())
