"""The challenge metric (docs/data-and-metric.md) against values computed independently on small arrays."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from skimage.metrics import structural_similarity

from evaluation.metrics import challenge_metrics, final_score, masked_ssim, minmax

SHAPE = (18, 20, 16)


def brute_force_ssim_map(x: np.ndarray, y: np.ndarray, window: int = 7, data_range: float = 1.0) -> np.ndarray:
    """SSIM (Wang et al. 2004) at every voxel by explicit 7x7x7 windows, scikit-image's conventions:
    uniform window, sample (N-1) covariances, K1 = 0.01, K2 = 0.03, borders mirrored ('symmetric')."""
    pad = window // 2
    xs = sliding_window_view(np.pad(x, pad, mode="symmetric"), (window,) * 3)
    ys = sliding_window_view(np.pad(y, pad, mode="symmetric"), (window,) * 3)
    axes = (-3, -2, -1)
    n = window**3
    mx, my = xs.mean(axis=axes), ys.mean(axis=axes)
    vx = (xs**2).mean(axis=axes) - mx**2
    vy = (ys**2).mean(axis=axes) - my**2
    cxy = (xs * ys).mean(axis=axes) - mx * my
    vx, vy, cxy = (v * n / (n - 1) for v in (vx, vy, cxy))
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    return ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))


def anchored_reference(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A reference in [0, 1] whose minimum 0 and maximum 1 sit outside the brain mask, and the mask (a box)."""
    reference = 0.2 + 0.6 * rng.random(SHAPE)
    reference[0, 0, 0], reference[-1, -1, -1] = 0.0, 1.0
    mask = np.zeros(SHAPE, dtype=bool)
    mask[4:14, 5:15, 3:13] = True
    return reference, mask


def test_identical_volumes_score_perfectly_whatever_their_scale():
    """Min-max normalisation removes gain and offset: 3r + 7 against r is a perfect prediction."""
    reference, mask = anchored_reference(np.random.default_rng(0))
    metrics = challenge_metrics(3.0 * reference + 7.0, reference, mask)
    assert metrics["ssim"] == pytest.approx(1.0, abs=1e-9)
    assert metrics["psnr"] == pytest.approx(80.0)  # 10 log10(1 / 1e-8)
    assert metrics["mae"] == pytest.approx(0.0, abs=1e-12)
    assert metrics["nmse"] == pytest.approx(0.0, abs=1e-12)
    assert metrics["score"] == pytest.approx(0.7 + 0.1 * 80 / 32 + 0.1 + 0.1)
    assert metrics["ssim_unmasked"] == pytest.approx(1.0, abs=1e-9)
    assert metrics["psnr_standard"] == pytest.approx(100.0)  # MSE floored at 1e-10
    assert metrics["psnr_masked_standard"] == pytest.approx(100.0)


def test_constant_offset_inside_the_mask():
    """Prediction = reference + c inside M (min and max untouched): MAE c, PSNR -10 log10(c^2 + 1e-8),
    NMSE c^2 / mean(r^2), SSIM from the brute-force windows of the masked volumes."""
    offset = 0.1
    reference, mask = anchored_reference(np.random.default_rng(1))
    prediction = reference.copy()
    prediction[mask] += offset
    metrics = challenge_metrics(prediction, reference, mask)
    assert metrics["mae"] == pytest.approx(offset)
    assert metrics["psnr"] == pytest.approx(-10 * np.log10(offset**2 + 1e-8))
    assert metrics["nmse"] == pytest.approx(offset**2 / np.mean(reference[mask] ** 2))
    expected_ssim = brute_force_ssim_map(prediction * mask, reference * mask)[mask].mean()
    assert metrics["ssim"] == pytest.approx(expected_ssim, abs=1e-9)
    assert metrics["score"] == pytest.approx(0.7 * expected_ssim + 0.1 * metrics["psnr"] / 32 + 0.1 * (1 - offset)
                                             + 0.1 * (1 - metrics["nmse"]))
    masked_only = challenge_metrics(prediction, reference, mask, unmasked=False)
    assert metrics["psnr_masked_standard"] == pytest.approx(-10 * np.log10(offset**2))  # standard PSNR over M
    assert masked_only == {key: metrics[key] for key in ("ssim", "psnr", "mae", "nmse", "score", "psnr_masked_standard")}


def test_masked_ssim_of_two_constants_is_the_luminance_term():
    """Everywhere-constant volumes a and b (M = everything): SSIM = (2ab + C1) / (a^2 + b^2 + C1)."""
    a, b, c1 = 0.4, 0.5, 0.01**2
    mask = np.ones(SHAPE, dtype=bool)
    value = masked_ssim(np.full(SHAPE, a), np.full(SHAPE, b), mask)
    assert value == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1))


def test_mask_excludes_a_corrupted_region():
    """Garbage outside M (within the volume's range) changes nothing masked, but the unmasked metrics see it."""
    rng = np.random.default_rng(2)
    reference, mask = anchored_reference(rng)
    prediction = reference.copy()
    prediction[14:, :, :] = rng.random(prediction[14:, :, :].shape)  # outside M, values inside [0, 1]
    prediction[-1, -1, -1] = 1.0
    metrics = challenge_metrics(prediction, reference, mask)
    assert metrics["ssim"] == pytest.approx(1.0, abs=1e-9)
    assert metrics["psnr"] == pytest.approx(80.0)
    assert metrics["mae"] == pytest.approx(0.0, abs=1e-12)
    assert metrics["nmse"] == pytest.approx(0.0, abs=1e-12)
    assert metrics["ssim_unmasked"] < 0.95
    assert metrics["psnr_standard"] == pytest.approx(10 * np.log10(1 / np.mean((prediction - reference) ** 2)))


def test_a_spike_outside_the_mask_rescales_the_prediction():
    """A prediction maximum of 2 outside M halves everything after min-max: p = r/2 inside M."""
    reference, mask = anchored_reference(np.random.default_rng(3))
    prediction = reference.copy()
    prediction[0, -1, 0] = 2.0  # outside M
    metrics = challenge_metrics(prediction, reference, mask)
    r = reference[mask]
    assert metrics["mae"] == pytest.approx(np.mean(r) / 2)
    assert metrics["nmse"] == pytest.approx(0.25)
    assert metrics["psnr"] == pytest.approx(np.mean(-10 * np.log10((r / 2) ** 2 + 1e-8)))


def test_nmse_is_clipped_at_one():
    """A prediction far brighter than a dim reference: mean squared error / reference power >> 1 -> 1."""
    reference, mask = anchored_reference(np.random.default_rng(4))
    reference[mask] = 0.05
    prediction = reference.copy()
    prediction[mask] = 0.9
    metrics = challenge_metrics(prediction, reference, mask)
    assert metrics["nmse"] == 1.0
    assert metrics["mae"] == pytest.approx(0.85)


def test_final_score_weights():
    """0.7 SSIM + 0.1 PSNR/32 + 0.1 (1 - MAE) + 0.1 (1 - NMSE), by hand."""
    assert final_score(0.5, 16.0, 0.1, 0.2) == pytest.approx(0.35 + 0.05 + 0.09 + 0.08)
    assert final_score(1.0, 32.0, 0.0, 0.0) == pytest.approx(1.0)


def test_cropped_masked_ssim_equals_the_whole_volume_map():
    """The bounding-box shortcut gives scikit-image's whole-volume SSIM map averaged over M, incl. at borders."""
    rng = np.random.default_rng(5)
    p, r = rng.random(SHAPE), rng.random(SHAPE)
    mask = rng.random(SHAPE) > 0.5
    mask[:, :, :5] = False
    mask[:3] = False  # the mask touches the far x border, not the near one
    p, r = p * mask, r * mask
    _, full_map = structural_similarity(p, r, data_range=1.0, full=True)
    assert masked_ssim(p, r, mask) == pytest.approx(full_map[mask].mean(), abs=1e-12)


def test_minmax_and_bad_inputs():
    """Constant volumes normalise to zero; mismatched shapes and empty masks are refused."""
    assert np.all(minmax(np.full((3, 3, 3), 5.0)) == 0)
    assert minmax(np.array([2.0, 4.0, 3.0])).tolist() == [0.0, 1.0, 0.5]
    with pytest.raises(ValueError, match="shapes differ"):
        challenge_metrics(np.zeros((8, 8, 8)), np.zeros((8, 8, 9)), np.ones((8, 8, 9)))
    with pytest.raises(ValueError, match="empty"):
        challenge_metrics(np.random.rand(8, 8, 8), np.random.rand(8, 8, 8), np.zeros((8, 8, 8)))


def test_psnr_masked_standard_is_the_standard_psnr_over_the_mask_and_below_the_per_voxel_one():
    """10 log10(1 / mean_M((p - r)^2)) on the normalised volumes; by Jensen's inequality never above the
    per-voxel PSNR map's mean (docs/method.md: why the paper's Table 1 PSNR fits this one)."""
    rng = np.random.default_rng(7)
    reference, mask = anchored_reference(rng)
    prediction = np.clip(reference + 0.05 * rng.standard_normal(SHAPE), 0.01, 0.99)
    prediction[0, 0, 0], prediction[-1, -1, -1] = 0.0, 1.0
    metrics = challenge_metrics(prediction, reference, mask)
    p, r = minmax(prediction), minmax(reference)
    expected = 10 * np.log10(1 / np.mean((p[mask] - r[mask]) ** 2))
    assert metrics["psnr_masked_standard"] == pytest.approx(expected)
    assert metrics["psnr_masked_standard"] < metrics["psnr"]
