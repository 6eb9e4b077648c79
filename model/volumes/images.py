"""Reading, checking, resampling and writing volumes with SimpleITK.

The only place where SimpleITK's (z, y, x) numpy view is turned into this project's (x, y, z)
axis order and back (docs/method.md): :func:`image_to_array` and :func:`array_to_image`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .atomic import commit, discard, partial_path
from ..errors import InputError, OutputError, ResultError
from .file_checks import PROCESSING_SPACING_MM, HeaderInfo, read_header
from .nifti import check_nifti

READABLE_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr", ".tif", ".tiff")


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


def check_file(path: Path, name: str) -> tuple[str, HeaderInfo]:
    """Everything that can be checked before reading voxels: existence, format, header; returns suffix and header."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{name}: file not found: {path}")
    suffix = compound_suffix(path)
    if suffix not in READABLE_SUFFIXES:
        raise InputError(f"{name}: {path} has the extension '{suffix}'; expected one of {', '.join(READABLE_SUFFIXES)}")
    return suffix, read_header(path, suffix, name)


def read_volume(path: Path, name: str) -> sitk.Image:
    """Read one contrast and check it is a finite 3D scalar volume; ``name`` labels messages."""
    path = Path(path)
    suffix, _ = check_file(path, name)
    if suffix in (".nii", ".nii.gz"):
        check_nifti(path, name)
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


def check_float32_range(array: np.ndarray, name: str, path: Path) -> None:
    """Refuse finite values that became infinite in the cast to float32 (beyond about 3.4e38)."""
    if not np.all(np.isfinite(array)):
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        raise InputError(f"{name}: {path} has {bad} voxels beyond the float32 range (|value| > "
                         f"{np.finfo(np.float32).max:.3g}); expected intensities that fit float32")


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
    """Voxels as a float32 (x, y, z) array (SimpleITK index order); values beyond float32 become infinite
    (:func:`check_float32_range` refuses them)."""
    with np.errstate(over="ignore"):
        return sitk.GetArrayFromImage(image).astype(np.float32).transpose(2, 1, 0)


def array_to_image(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """A float32 image with ``array`` (x, y, z) as voxels and exactly ``reference``'s geometry."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(array, dtype=np.float32).transpose(2, 1, 0)))
    image.CopyInformation(reference)
    return image


def needs_resampling(image: sitk.Image, tol: GridTolerance = GridTolerance()) -> bool:
    """Whether the spacing differs from 1 mm isotropic (the grid the networks were trained on)."""
    return spacing_needs_resampling(image.GetSpacing(), tol)


def spacing_needs_resampling(spacing, tol: GridTolerance = GridTolerance()) -> bool:
    """:func:`needs_resampling` from a spacing alone (a header's)."""
    return not np.allclose(spacing, PROCESSING_SPACING_MM, rtol=0, atol=tol.isotropic_mm)


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


def write_volumes(images: Mapping[Path, sitk.Image], files: Mapping[Path, bytes] | None = None) -> None:
    """Write several images all or none, never one with a non-finite voxel; ``files`` (path -> bytes, e.g.
    the run record) are written in the same step.

    Each is written to a hidden temporary beside its target first; then all are renamed in one
    signal-safe step (:mod:`model.volumes.atomic`). A failure or interruption before that leaves no output
    file, and the temporaries are removed on the way out.
    """
    for path, image in images.items():
        values = sitk.GetArrayViewFromImage(image)
        if not np.all(np.isfinite(values)):
            bad = int(values.size - np.count_nonzero(np.isfinite(values)))
            raise ResultError(f"the result for {path} has {bad} NaN or infinite voxels; nothing of this case was written")
    partials = {}
    try:
        for path, image in images.items():
            path = Path(path)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise OutputError(f"cannot create the output folder {path.parent}: {error.strerror}") from None
            partials[path] = partial_path(path, compound_suffix(path))
            try:
                sitk.WriteImage(image, str(partials[path]), useCompression=True)
            except RuntimeError as error:
                raise OutputError(f"cannot write {path}: {str(error).strip().splitlines()[-1]}") from None
        for path, content in (files or {}).items():
            path = Path(path)
            partials[path] = partial_path(path, compound_suffix(path))
            try:
                partials[path].write_bytes(content)
            except OSError as error:
                raise OutputError(f"cannot write {path}: {error.strerror}") from None
        commit(partials)
    finally:
        discard(partials.values())


def write_volume(image: sitk.Image, path: Path) -> None:
    """Write one image atomically (see :func:`write_volumes`)."""
    write_volumes({Path(path): image})
