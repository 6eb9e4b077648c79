"""Checks of an input file made from its header, before any voxel is read.

* the file can be opened (a permission problem is named as such, not as corruption);
* a MetaImage or NRRD header that keeps its voxels in another file names a file inside the header's
  own folder (``ElementDataFile = /etc/passwd`` would otherwise be read as an image);
* size, spacing and voxel type come from SimpleITK's ``ReadImageInformation``, so the memory a
  case needs is known before a voxel is read or resampled;
* the spacing is finite and positive, and the volume spans at least one voxel of the 1 mm
  processing grid along each axis (else resampling would leave a constant).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import SimpleITK as sitk

from ..errors import InputError
from .nifti import check_nifti_header

PROCESSING_SPACING_MM = 1.0
MIN_EXTENT_MM = 1.0  # less than one voxel of the 1 mm grid along an axis: resampling leaves a constant
HEADER_BYTES = 1 << 16  # MetaImage and NRRD headers are text lines well within this
# Header fields that name where the voxels are: MetaImage's ElementDataFile, NRRD's "data file".
DATA_FILE_FIELDS = {
    ".mha": re.compile(rb"^\s*ElementDataFile\s*=\s*(.*?)\s*$", re.IGNORECASE),
    ".mhd": re.compile(rb"^\s*ElementDataFile\s*=\s*(.*?)\s*$", re.IGNORECASE),
    ".nrrd": re.compile(rb"^\s*data\s?file\s*:\s*(.*?)\s*$", re.IGNORECASE),
    ".nhdr": re.compile(rb"^\s*data\s?file\s*:\s*(.*?)\s*$", re.IGNORECASE),
}


@dataclass(frozen=True)
class HeaderInfo:
    """What a file's header says: grid and voxel type."""

    size: tuple[int, ...]
    spacing: tuple[float, ...]
    dimension: int
    components: int
    bytes_per_voxel: int

    @property
    def processing_shape(self) -> tuple[int, ...]:
        """The (x, y, z) size on the 1 mm processing grid (the same rounding as the resampling)."""
        return tuple(max(1, int(round(n * s / PROCESSING_SPACING_MM))) for n, s in zip(self.size, self.spacing))


def check_readable(path: Path, name: str) -> None:
    """Open the file once; permission problems and the like are named as what they are."""
    try:
        with open(path, "rb"):
            pass
    except PermissionError:
        raise InputError(f"{name}: cannot read {path}: permission denied (expected a file readable by this user)") from None
    except OSError as error:
        raise InputError(f"{name}: cannot open {path}: {error.strerror or error}") from None


def check_data_file(path: Path, suffix: str, name: str) -> None:
    """Refuse a header whose voxel file lies outside its own folder, or the LIST / pattern forms."""
    field = DATA_FILE_FIELDS.get(suffix)
    if field is None:
        return
    with open(path, "rb") as handle:
        head = handle.read(HEADER_BYTES)
    for line in head.split(b"\n"):
        match = field.match(line)
        if match is None:
            continue
        value = match.group(1).decode("utf-8", "replace")
        if suffix in (".mha", ".mhd") and value.upper() == "LOCAL":
            return
        if value.upper().startswith("LIST") or len(value.split()) > 1:
            raise InputError(f"{name}: {path} names its voxel files as a list or pattern ('{value}'); "
                             "expected the voxels in the file itself or in one file beside the header")
        target = Path(value)
        folder = path.parent.resolve()
        if target.is_absolute() or folder not in (folder / target).resolve().parents:
            raise InputError(f"{name}: {path} takes its voxels from '{value}', outside the header's folder {folder}; "
                             "expected a data file beside the header")
        if (folder / target).is_file():
            check_readable(folder / target, name)
        return
    # no data-file field in the header text: the voxels follow the header (MetaImage requires the field)


def read_header(path: Path, suffix: str, name: str) -> HeaderInfo:
    """Header-level checks and the header's grid; nothing else of the file is read."""
    check_readable(path, name)
    if suffix in (".nii", ".nii.gz"):
        check_nifti_header(path, name)
    check_data_file(path, suffix, name)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else "unknown reason"
        raise InputError(f"{name}: cannot read {path} (truncated, corrupt or not that format): {reason}") from None
    pixel = sitk.Image([1] * max(2, reader.GetDimension()), reader.GetPixelID(), reader.GetNumberOfComponents())
    info = HeaderInfo(tuple(reader.GetSize()), tuple(reader.GetSpacing()), reader.GetDimension(),
                      reader.GetNumberOfComponents(), pixel.GetSizeOfPixelComponent() * reader.GetNumberOfComponents())
    check_header(info, path, name)
    return info


def check_header(info: HeaderInfo, path: Path, name: str) -> None:
    """A 3D scalar volume whose spacing gives a usable 1 mm processing grid."""
    if info.dimension != 3:
        raise InputError(f"{name}: {path} is a {info.dimension}D image; expected a 3D volume")
    if info.components != 1:
        raise InputError(f"{name}: {path} has {info.components} components per voxel; expected a scalar volume")
    if not all(math.isfinite(s) and s > 0 for s in info.spacing):
        raise InputError(f"{name}: {path} has the spacing {info.spacing}; expected finite positive millimetres")
    extent = [n * s for n, s in zip(info.size, info.spacing)]
    if min(extent) < MIN_EXTENT_MM:
        raise InputError(
            f"{name}: {path} has the spacing {tuple(round(s, 6) for s in info.spacing)} mm, so it spans only "
            f"{' x '.join(f'{e:.3g}' for e in extent)} mm, less than one voxel of the "
            f"{PROCESSING_SPACING_MM:g} mm processing grid along an axis; expected the spacing in millimetres of a head scan"
        )

