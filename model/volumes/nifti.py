"""What SimpleITK does not check in a NIfTI file, read from the file's own bytes.

* A truncated file is read silently with zeros for the missing voxels: the data size is compared
  with what the header implies.
* NaN voxels of a float NIfTI come out of SimpleITK 2.5 (ITK 5.4) as zeros, so the finiteness check
  after reading cannot see them: the float voxels are scanned here, in one streaming pass.
* A non-finite or negative ``vox_offset`` is refused by name instead of raising deep inside.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

CHUNK = 1 << 22
# NIfTI datatype code -> bytes per voxel (nifti1.h); float codes also give the numpy type to scan.
DATATYPE_BYTES = {2: 1, 4: 2, 8: 4, 16: 4, 32: 8, 64: 8, 128: 3, 256: 1, 512: 2, 768: 4, 1024: 8, 1280: 8,
                  1536: 16, 1792: 16, 2048: 32, 2304: 4}
FLOAT_TYPES = {16: "f4", 64: "f8", 32: "f4", 1792: "f8"}  # complex types scanned as their float parts


@dataclass(frozen=True)
class NiftiLayout:
    """Where the voxels are: byte offset, byte count, and the float type to scan (None: integers)."""

    offset: int
    nbytes: int
    float_type: np.dtype | None


def nifti_layout(header: bytes, name: str, path: Path) -> NiftiLayout | None:
    """The voxel layout of a NIfTI-1 or NIfTI-2 header; ``None`` when ``header`` is not NIfTI."""
    for order in "<>":
        if len(header) >= 348 and struct.unpack(order + "i", header[:4])[0] == 348:  # NIfTI-1
            dims = struct.unpack(order + "8h", header[40:56])
            datatype, bitpix = struct.unpack(order + "hh", header[70:74])
            offset = struct.unpack(order + "f", header[108:112])[0]
            minimum = 352
            break
        if len(header) >= 540 and struct.unpack(order + "i", header[:4])[0] == 540:  # NIfTI-2
            dims = struct.unpack(order + "8q", header[16:80])
            datatype, bitpix = struct.unpack(order + "hh", header[12:16])
            offset = struct.unpack(order + "q", header[168:176])[0]
            minimum = 544
            break
    else:
        return None
    if not math.isfinite(offset) or offset < 0:
        raise InputError(f"{name}: {path} has the NIfTI header field vox_offset = {offset}; "
                         f"expected a finite byte offset of at least {minimum}")
    voxels = 1
    for extent in dims[1 : 1 + max(0, min(int(dims[0]), 7))]:
        voxels *= max(int(extent), 1)
    per_voxel = DATATYPE_BYTES.get(datatype, max(int(bitpix), 0) // 8)
    float_type = np.dtype(order + FLOAT_TYPES[datatype]) if datatype in FLOAT_TYPES else None
    return NiftiLayout(max(int(offset), minimum), voxels * per_voxel, float_type)


class _NonFiniteCounter:
    """Counts NaN and infinite values of one float type in a byte stream fed in pieces."""

    def __init__(self, layout: NiftiLayout):
        self.layout, self.position, self.pending, self.count = layout, 0, b"", 0

    def feed(self, chunk: bytes) -> None:
        start, end = self.layout.offset, self.layout.offset + self.layout.nbytes
        lo, hi = max(start, self.position), min(end, self.position + len(chunk))
        self.position += len(chunk)
        if lo >= hi:
            return
        data = self.pending + chunk[lo - (self.position - len(chunk)) : hi - (self.position - len(chunk))]
        usable = len(data) - len(data) % self.layout.float_type.itemsize
        values = np.frombuffer(data[:usable], dtype=self.layout.float_type)
        self.count += int(values.size - np.count_nonzero(np.isfinite(values)))
        self.pending = data[usable:]


def _opener(path: Path):
    return gzip.open if path.name.lower().endswith(".gz") else open


def check_nifti_header(path: Path, name: str) -> None:
    """The header-level part of :func:`check_nifti` (a broken ``vox_offset``), reading only the header."""
    try:
        with _opener(path)(path, "rb") as handle:
            nifti_layout(handle.read(540), name, path)
    except (EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise InputError(f"{name}: cannot read {path}: the compressed data is truncated or corrupt ({error})") from None
    except OSError as error:
        raise InputError(f"{name}: cannot read {path}: {error.strerror or error}") from None


def check_nifti(path: Path, name: str) -> None:
    """Refuse a truncated NIfTI, one with a broken ``vox_offset``, and float voxels that are NaN or infinite."""
    size, layout, counter = 0, None, None
    try:
        with _opener(path)(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(CHUNK), b""):
                if size == 0:
                    layout = nifti_layout(chunk[:540], name, path)
                    if layout is not None and layout.float_type is not None:
                        counter = _NonFiniteCounter(layout)
                size += len(chunk)
                if counter is not None:
                    counter.feed(chunk)
    except (EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise InputError(f"{name}: cannot read {path}: the compressed data is truncated or corrupt ({error})") from None
    except OSError as error:
        raise InputError(f"{name}: cannot read {path}: {error.strerror or error}") from None
    if layout is None:
        return
    if size < layout.offset + layout.nbytes:
        raise InputError(f"{name}: {path} is truncated: {size} bytes of NIfTI data, "
                         f"the header implies {layout.offset + layout.nbytes}")
    if counter is not None and counter.count:
        raise InputError(f"{name}: {path} has {counter.count} NaN or infinite voxels; expected finite intensities")
