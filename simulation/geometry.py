"""The image grid and the one place where (x, y, z) numpy arrays meet SimpleITK images.

SimpleITK's numpy view is indexed (z, y, x); the simulator works in SimpleITK's index order
(x, y, z), as the rest of the project does (docs/method.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk


@dataclass(frozen=True)
class Grid:
    """Size (x, y, z), spacing (mm), origin (mm) and 3x3 direction (row-major) of an image grid."""

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]

    @classmethod
    def of(cls, image: sitk.Image) -> "Grid":
        """The grid of a SimpleITK image."""
        return cls(tuple(image.GetSize()), tuple(image.GetSpacing()), tuple(image.GetOrigin()),
                   tuple(image.GetDirection()))

    def reference(self) -> sitk.Image:
        """An empty image on this grid (for resampling)."""
        image = sitk.Image(list(self.size), sitk.sitkUInt8)
        self.stamp(image)
        return image

    def stamp(self, image: sitk.Image) -> sitk.Image:
        """Give ``image`` this grid's spacing, origin and direction; returns it."""
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image

    def centre(self) -> tuple[float, float, float]:
        """Physical position (mm) of the centre of the grid."""
        index = [(n - 1) / 2.0 for n in self.size]
        return self.reference().TransformContinuousIndexToPhysicalPoint(index)

    def axis_coordinates(self) -> list[np.ndarray]:
        """Per axis, voxel positions in mm relative to the grid centre, along that axis."""
        return [(np.arange(n) - (n - 1) / 2.0) * s for n, s in zip(self.size, self.spacing)]

    def resized(self, spacing: tuple[float, float, float]) -> "Grid":
        """A grid with the given spacing covering the same extent, centred on the same point."""
        size = tuple(max(1, int(round(n * s / t))) for n, s, t in zip(self.size, self.spacing, spacing))
        direction = np.asarray(self.direction).reshape(3, 3)
        centre = np.asarray(self.centre())
        half = np.array([(n - 1) / 2.0 * t for n, t in zip(size, spacing)])
        origin = centre - direction @ half
        return Grid(size, tuple(float(t) for t in spacing), tuple(float(o) for o in origin), self.direction)


def to_image(array: np.ndarray, grid: Grid) -> sitk.Image:
    """A SimpleITK image from an (x, y, z) array, or an (x, y, z, c) array as a vector image."""
    vector = array.ndim == 4
    view = array.transpose(2, 1, 0, 3) if vector else array.transpose(2, 1, 0)
    image = sitk.GetImageFromArray(np.ascontiguousarray(view), isVector=vector)
    return grid.stamp(image)


def to_array(image: sitk.Image) -> np.ndarray:
    """The (x, y, z) array (or (x, y, z, c) for vector images) of a SimpleITK image, C-contiguous."""
    view = sitk.GetArrayFromImage(image)
    view = view.transpose(2, 1, 0, 3) if view.ndim == 4 else view.transpose(2, 1, 0)
    return np.ascontiguousarray(view)


def checked_subject_arguments(seed, shape_scale) -> tuple[int, float]:
    """A subject's seed (a non-negative integer) and grid scale (in [0.1, 1]) as a simulator takes them."""
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not 0.1 <= shape_scale <= 1.0:
        raise ValueError(f"shape_scale must be in [0.1, 1], got {shape_scale!r}")
    return int(seed), float(shape_scale)
