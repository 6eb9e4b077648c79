"""Reading, grid checks, resampling and atomic writing."""

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import OBLIQUE_DIRECTION, ODD_ORIGIN, make_image
from model.errors import InputError
from model.volumes.images import (
    array_to_image,
    check_same_grid,
    image_to_array,
    needs_resampling,
    read_volume,
    resample_onto,
    resample_to_spacing,
    write_volume,
)


def test_array_axes_are_x_y_z():
    image = sitk.Image(5, 4, 3, sitk.sitkFloat32)
    image.SetPixel(4, 1, 2, 7.0)  # SimpleITK index (x, y, z)
    array = image_to_array(image)
    assert array.shape == (5, 4, 3) and array[4, 1, 2] == 7.0


def test_array_to_image_keeps_geometry_exactly():
    reference = make_image(np.zeros((6, 5, 4), np.int16), spacing=(0.9, 1.1, 3.0))
    image = array_to_image(np.ones((6, 5, 4)), reference)
    assert image.GetPixelID() == sitk.sitkFloat32
    for getter in ("GetSize", "GetSpacing", "GetOrigin", "GetDirection"):
        assert getattr(image, getter)() == getattr(reference, getter)()


@pytest.mark.parametrize("suffix", [".nii.gz", ".mha", ".nrrd"])
def test_round_trip_through_formats(tmp_path, suffix):
    values = np.random.default_rng(0).random((7, 6, 5)).astype(np.float32)
    path = tmp_path / f"v{suffix}"
    write_volume(make_image(values), path)
    image = read_volume(path, "T1")
    np.testing.assert_array_equal(image_to_array(image), values)
    assert np.allclose(image.GetOrigin(), ODD_ORIGIN, atol=1e-4)
    assert np.allclose(image.GetDirection(), OBLIQUE_DIRECTION, atol=1e-6)
    assert not list(tmp_path.glob(".*partial*"))


def test_mismatched_grids_are_refused_naming_the_difference():
    a = make_image(np.zeros((6, 5, 4), np.float32))
    b = make_image(np.zeros((6, 5, 4), np.float32), origin=(0.0, 0.0, 0.0))
    c = make_image(np.zeros((6, 5, 4), np.float32), spacing=(1.0, 1.0, 2.0))
    check_same_grid({"T1": a, "T2": a})
    with pytest.raises(InputError, match=r"T2 differs from T1 in origin .* FLAIR differs from T1 in spacing"):
        check_same_grid({"T1": a, "T2": b, "FLAIR": c})
    with pytest.raises(InputError, match="size"):
        check_same_grid({"T1": a, "T2": make_image(np.zeros((6, 5, 5), np.float32))})


def test_small_grid_differences_within_tolerance_pass():
    a = make_image(np.zeros((6, 5, 4), np.float32))
    b = make_image(np.zeros((6, 5, 4), np.float32), origin=tuple(o + 1e-4 for o in ODD_ORIGIN))
    check_same_grid({"T1": a, "T2": b})


def test_resampling_to_1mm_and_back_keeps_the_grid_and_values():
    values = np.tile(np.linspace(0, 1, 20, dtype=np.float32)[:, None, None], (1, 10, 6))  # a ramp along x
    image = make_image(values, spacing=(0.5, 1.0, 2.5))
    assert needs_resampling(image)
    working = resample_to_spacing(image)
    assert working.GetSpacing() == (1.0, 1.0, 1.0) and working.GetSize() == (10, 10, 15)
    assert working.GetOrigin() == image.GetOrigin() and working.GetDirection() == image.GetDirection()
    back = resample_onto(working, image)
    assert back.GetSize() == image.GetSize() and back.GetSpacing() == image.GetSpacing()
    inner = image_to_array(back)[2:-2, 2:-2, 2:-2]
    assert np.allclose(inner, values[2:-2, 2:-2, 2:-2], atol=0.03)  # a linear ramp survives linear resampling


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: sitk.Image(8, 8, sitk.sitkFloat32), "2D image"),
        (lambda: sitk.Image([4, 4, 4, 2], sitk.sitkFloat32), "4D image"),
        (lambda: sitk.Image([4, 4, 4], sitk.sitkVectorFloat32, 3), "3 components per voxel"),
    ],
)
def test_wrong_dimensionality_is_refused(tmp_path, make, message):
    path = tmp_path / "bad.mha"
    sitk.WriteImage(make(), str(path))
    with pytest.raises(InputError, match=f"T1: .*bad.mha is a {message}|{message}"):
        read_volume(path, "T1")


def test_nan_and_unreadable_files_are_refused(tmp_path):
    values = np.ones((5, 5, 5), np.float32)
    values[1, 2, 3] = np.nan
    sitk.WriteImage(make_image(values), str(tmp_path / "nan.mha"))
    with pytest.raises(InputError, match="1 NaN or infinite voxels"):
        read_volume(tmp_path / "nan.mha", "FLAIR")
    (tmp_path / "junk.nii.gz").write_bytes(b"not an image")
    with pytest.raises(InputError, match="cannot read"):
        read_volume(tmp_path / "junk.nii.gz", "T2")
    with pytest.raises(InputError, match="file not found"):
        read_volume(tmp_path / "missing.mha", "T2")
    with pytest.raises(InputError, match="extension '.txt'"):
        (tmp_path / "a.txt").write_text("x")
        read_volume(tmp_path / "a.txt", "T2")


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_truncated_nifti_is_refused_not_zero_filled(tmp_path, suffix):
    path = tmp_path / f"v{suffix}"
    write_volume(make_image(np.random.default_rng(0).random((20, 20, 10)).astype(np.float32) + 1), path)
    read_volume(path, "T1")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.9)])
    with pytest.raises(InputError, match="truncated"):
        read_volume(path, "T1")
