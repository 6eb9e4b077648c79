"""Reading, checking, resampling and writing volumes with SimpleITK.

The only place where SimpleITK's (z, y, x) numpy view is turned into this project's (x, y, z)
axis order and back (SPEC 2): :func:`image_to_array` and :func:`array_to_image`.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from model.errors import InputError, OutputError

READABLE_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr", ".tif", ".tiff")
PROCESSING_SPACING_MM = 1.0


@dataclass(frozen=True)
class GridTolerance:
    """How far two grids may differ and still count as one (spacing relative, origin in mm)."""

    spacing_rel: float = 1e-4
    origin_mm: float = 1e-2
    direction: float = 1e-4
    isotropic_mm: float = 1e-3  # spacing within this of 1 mm is processed without resampling


def compound_suffix(path: Path) -> str:
    """The file's format suffix, ``.nii.gz`` counted as one."""
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _nifti_expected_bytes(header: bytes) -> int | None:
    """Header offset plus voxel data size of a NIfTI-1 or NIfTI-2 file; ``None`` if not NIfTI."""
    for order in "<>":
        if len(header) >= 348 and struct.unpack(order + "i", header[:4])[0] == 348:  # NIfTI-1
            dims = struct.unpack(order + "8h", header[40:56])
            bitpix = struct.unpack(order + "h", header[72:74])[0]
            offset = int(struct.unpack(order + "f", header[108:112])[0])
            break
        if len(header) >= 540 and struct.unpack(order + "i", header[:4])[0] == 540:  # NIfTI-2
            dims = struct.unpack(order + "8q", header[16:80])
            bitpix = struct.unpack(order + "h", header[12:14])[0]
            offset = struct.unpack(order + "q", header[168:176])[0]
            break
    else:
        return None
    voxels = 1
    for extent in dims[1 : 1 + max(0, min(int(dims[0]), 7))]:
        voxels *= max(int(extent), 1)
    return max(offset, 348) + voxels * bitpix // 8


def check_nifti_complete(path: Path, name: str) -> None:
    """Refuse a truncated NIfTI: SimpleITK reads one silently, filling the missing voxels with zeros."""
    opener = gzip.open if compound_suffix(path) == ".nii.gz" else open
    size, header = 0, b""
    try:
        with opener(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 22), b""):
                header = header or chunk[:540]
                size += len(chunk)
    except (EOFError, OSError, zlib.error) as error:
        raise InputError(f"{name}: cannot read {path}: the compressed data is truncated or corrupt ({error})") from None
    expected = _nifti_expected_bytes(header)
    if expected is not None and size < expected:
        raise InputError(f"{name}: {path} is truncated: {size} bytes of NIfTI data, the header implies {expected}")


def read_volume(path: Path, name: str) -> sitk.Image:
    """Read one contrast and check it is a finite 3D scalar volume; ``name`` labels messages."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{name}: file not found: {path}")
    if compound_suffix(path) not in READABLE_SUFFIXES:
        raise InputError(
            f"{name}: {path} has the extension '{compound_suffix(path)}'; expected one of {', '.join(READABLE_SUFFIXES)}"
        )
    if compound_suffix(path) in (".nii", ".nii.gz"):
        check_nifti_complete(path, name)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else "unknown reason"
        raise InputError(f"{name}: cannot read {path} (truncated, corrupt or not that format): {reason}") from None
    if image.GetDimension() != 3:
        raise InputError(f"{name}: {path} is a {image.GetDimension()}D image; expected a 3D volume")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            f"{name}: {path} has {image.GetNumberOfComponentsPerPixel()} components per voxel; expected a scalar volume"
        )
    values = sitk.GetArrayViewFromImage(image)
    if not np.all(np.isfinite(values)):
        bad = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
        raise InputError(f"{name}: {path} has {bad} NaN or infinite voxels; expected finite intensities")
    return image


def describe_grid(image: sitk.Image) -> str:
    """Size, spacing, origin and direction in one line, for messages."""
    fmt = lambda values: "(" + ", ".join(f"{v:.4g}" for v in values) + ")"  # noqa: E731
    return (
        f"size {image.GetSize()}, spacing {fmt(image.GetSpacing())}, origin {fmt(image.GetOrigin())}, "
        f"direction {fmt(image.GetDirection())}"
    )


def grid_differences(a: sitk.Image, b: sitk.Image, tol: GridTolerance = GridTolerance()) -> list[str]:
    """What differs between the grids of ``a`` and ``b`` beyond ``tol`` (empty: same grid)."""
    differences = []
    if a.GetSize() != b.GetSize():
        differences.append(f"size {a.GetSize()} vs {b.GetSize()}")
    if not np.allclose(a.GetSpacing(), b.GetSpacing(), rtol=tol.spacing_rel, atol=0):
        differences.append(f"spacing {a.GetSpacing()} vs {b.GetSpacing()}")
    if not np.allclose(a.GetOrigin(), b.GetOrigin(), rtol=0, atol=tol.origin_mm):
        differences.append(f"origin {a.GetOrigin()} vs {b.GetOrigin()}")
    if not np.allclose(a.GetDirection(), b.GetDirection(), rtol=0, atol=tol.direction):
        differences.append(f"direction {a.GetDirection()} vs {b.GetDirection()}")
    return differences


def check_same_grid(images: Mapping[str, sitk.Image], tol: GridTolerance = GridTolerance()) -> None:
    """Refuse contrasts that do not share one voxel grid, naming what differs."""
    (first_name, first), *others = images.items()
    problems = [
        f"{name} differs from {first_name} in " + "; ".join(diff)
        for name, image in others
        if (diff := grid_differences(first, image, tol))
    ]
    if problems:
        raise InputError(
            "the contrasts must be co-registered on one grid, but " + " and ".join(problems)
            + f" (tolerance: spacing {tol.spacing_rel:g} relative, origin {tol.origin_mm:g} mm, "
            f"direction {tol.direction:g})"
        )


def image_to_array(image: sitk.Image) -> np.ndarray:
    """Voxels as a float32 (x, y, z) array (SimpleITK index order)."""
    return sitk.GetArrayFromImage(image).astype(np.float32).transpose(2, 1, 0)


def array_to_image(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """A float32 image with ``array`` (x, y, z) as voxels and exactly ``reference``'s geometry."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(array, dtype=np.float32).transpose(2, 1, 0)))
    image.CopyInformation(reference)
    return image


def needs_resampling(image: sitk.Image, tol: GridTolerance = GridTolerance()) -> bool:
    """Whether the spacing differs from 1 mm isotropic (the grid the networks were trained on)."""
    return not np.allclose(image.GetSpacing(), PROCESSING_SPACING_MM, rtol=0, atol=tol.isotropic_mm)


def resample_to_spacing(image: sitk.Image, spacing_mm: float = PROCESSING_SPACING_MM) -> sitk.Image:
    """Linear resampling onto a grid with the same origin, direction and extent at ``spacing_mm``."""
    size = [max(1, int(round(n * s / spacing_mm))) for n, s in zip(image.GetSize(), image.GetSpacing())]
    return sitk.Resample(
        sitk.Cast(image, sitk.sitkFloat32), size, sitk.Transform(), sitk.sitkLinear, image.GetOrigin(),
        (spacing_mm,) * 3, image.GetDirection(), 0.0, sitk.sitkFloat32,
    )


def resample_onto(image: sitk.Image, reference: sitk.Image) -> sitk.Image:
    """Linear resampling of ``image`` onto ``reference``'s grid (float32)."""
    return sitk.Resample(sitk.Cast(image, sitk.sitkFloat32), reference, sitk.Transform(), sitk.sitkLinear, 0.0,
                         sitk.sitkFloat32)


def temporary_path(path: Path) -> Path:
    """A hidden sibling of ``path`` that keeps its format suffix (SimpleITK picks the writer by it)."""
    suffix = compound_suffix(path)
    stem = path.name[: len(path.name) - len(suffix)]
    return path.with_name(f".{stem}.partial-{os.getpid()}{suffix}")


def write_volumes(images: Mapping[Path, sitk.Image]) -> None:
    """Write several images all or nothing: each to a temporary sibling first, then rename them all.

    An interruption or failure before the renames leaves no output file; temporary files are
    removed on the way out.
    """
    partials = {}
    try:
        for path, image in images.items():
            path = Path(path)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise OutputError(f"cannot create the output folder {path.parent}: {error.strerror}") from None
            partials[path] = temporary_path(path)
            try:
                sitk.WriteImage(image, str(partials[path]), useCompression=True)
            except RuntimeError as error:
                raise OutputError(f"cannot write {path}: {str(error).strip().splitlines()[-1]}") from None
        for path, partial in partials.items():
            os.replace(partial, path)
    finally:
        for partial in partials.values():
            partial.unlink(missing_ok=True)


def write_volume(image: sitk.Image, path: Path) -> None:
    """Write one image atomically (see :func:`write_volumes`)."""
    write_volumes({Path(path): image})
