"""The challenge's metric, exactly as the organisers' final evaluation defines it (docs/data-and-metric.md).

Per subject and contrast, with the brain mask M (the subject's T1 mask > 0.5):

1. prediction and reference are each min-max normalised to [0, 1] over the whole volume, then
   multiplied by M;
2. SSIM: scikit-image ``structural_similarity`` of the 3D masked volumes (``data_range=1``, default
   7-voxel window, ``full=True``); the SSIM map is averaged over M;
3. PSNR: the per-voxel map ``10 log10(1 / ((p - r)^2 + 1e-8))`` averaged over M (not the usual PSNR);
4. MAE: mean |p - r| over M;
5. NMSE: mean over M of ``(p - r)^2 / mean(r[M]^2)``, clipped at 1 (the volume's value is clipped);
6. (over a data set) each metric is averaged over all subjects x 3 contrasts;
7. final score = 0.7 SSIM + 0.1 PSNR/32 + 0.1 (1 - MAE) + 0.1 (1 - NMSE).

The earlier ranking metric is reported too, labelled: ``ssim_unmasked`` is scikit-image's mean
SSIM of the whole (unmasked) min-max normalised volumes, ``psnr_standard`` the usual
10 log10(1 / MSE) over the whole normalised volumes (MSE floored at 1e-10, so at most 100 dB).

The paper's Table 1 PSNR fits neither of the above: a per-voxel PSNR is always at least
-20 log10(MAE + 1e-4), 22.8 dB for the Table's MAE of 0.072, yet it prints 17.544 dB. To compare with it,
``psnr_masked_standard`` is the standard PSNR over the mask, 10 log10(1 / mean_M((p - r)^2)), on the
same normalised, masked volumes as the challenge's metric (MSE floored the same way).
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

SSIM_WINDOW = 7  # scikit-image's default
VOXEL_PSNR_EPSILON = 1e-8
STANDARD_MSE_FLOOR = 1e-10
WEIGHTS = {"ssim": 0.7, "psnr": 0.1, "mae": 0.1, "nmse": 0.1}
PSNR_SCALE = 32.0
METRIC_KEYS = ("ssim", "psnr", "mae", "nmse", "score", "psnr_masked_standard", "ssim_unmasked", "psnr_standard")
# What a missing or unreadable prediction scores: the worst value of each metric (score 0).
FAILURE_VALUES = {"ssim": 0.0, "psnr": 0.0, "mae": 1.0, "nmse": 1.0, "score": 0.0, "psnr_masked_standard": 0.0,
                  "ssim_unmasked": 0.0, "psnr_standard": 0.0}


def minmax(volume: np.ndarray) -> np.ndarray:
    """``volume`` mapped linearly to [0, 1] over the whole volume (float64); a constant volume maps to 0."""
    volume = np.asarray(volume, dtype=np.float64)
    low, high = float(volume.min()), float(volume.max())
    if high <= low:
        return np.zeros_like(volume)
    return (volume - low) / (high - low)


def standard_psnr(mean_squared_error: float) -> float:
    """The usual PSNR of volumes in [0, 1], 10 log10(1 / MSE), the MSE floored at 1e-10 (at most 100 dB)."""
    return float(10.0 * np.log10(1.0 / max(mean_squared_error, STANDARD_MSE_FLOOR)))


def final_score(ssim: float, psnr: float, mae: float, nmse: float) -> float:
    """The challenge's final score (step 7 above): 0.7 SSIM + 0.1 PSNR/32 + 0.1 (1 - MAE) + 0.1 (1 - NMSE)."""
    return (WEIGHTS["ssim"] * ssim + WEIGHTS["psnr"] * psnr / PSNR_SCALE
            + WEIGHTS["mae"] * (1.0 - mae) + WEIGHTS["nmse"] * (1.0 - nmse))


def _bounding_box(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
    """The bounding box of ``mask`` grown by ``margin`` voxels per side, clipped to the volume."""
    box = []
    for axis in range(mask.ndim):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        box.append(slice(max(hits[0] - margin, 0), min(hits[-1] + margin + 1, mask.shape[axis])))
    return tuple(box)


def masked_ssim(prediction: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> float:
    """Mean over M of scikit-image's full SSIM map of the masked volumes (step 2 above).

    Computed on the bounding box of M grown by the window's half-width plus one: every voxel of M
    sees the same 7-voxel neighbourhood (and the same reflected border, where the box touches the
    volume's edge) as in the whole volume, so the mean is the same, at a fraction of the cost.
    """
    box = _bounding_box(mask, SSIM_WINDOW // 2 + 1)
    _, ssim_map = structural_similarity(prediction[box], reference[box], win_size=SSIM_WINDOW, data_range=1.0,
                                        full=True)
    return float(ssim_map[mask[box]].mean())


def challenge_metrics(prediction: np.ndarray, reference: np.ndarray, mask: np.ndarray, *,
                      unmasked: bool = True) -> dict[str, float]:
    """The challenge's metrics of one volume (steps 1-5 and 7 above) plus the earlier unmasked SSIM and standard PSNR.

    ``mask`` is the brain mask (values > 0.5 count); ``prediction``, ``reference`` and ``mask`` must
    have the same shape. Returns ssim, psnr, mae, nmse, score, psnr_masked_standard (the paper's Table 1
    PSNR: standard PSNR over M) and, unless ``unmasked=False`` (which
    saves the whole-volume SSIM, the slowest part), ssim_unmasked and psnr_standard.
    """
    prediction, reference, mask = np.asarray(prediction), np.asarray(reference), np.asarray(mask) > 0.5
    if prediction.shape != reference.shape or mask.shape != reference.shape:
        raise ValueError(f"shapes differ: prediction {prediction.shape}, reference {reference.shape}, "
                         f"mask {mask.shape}")
    if not mask.any():
        raise ValueError("the brain mask is empty")
    p, r = minmax(prediction), minmax(reference)
    earlier = {}
    if unmasked:
        earlier["ssim_unmasked"] = float(structural_similarity(p, r, win_size=SSIM_WINDOW, data_range=1.0))
        earlier["psnr_standard"] = standard_psnr(float(np.mean((p - r) ** 2)))
    p *= mask
    r *= mask
    ssim = masked_ssim(p, r, mask)
    error = p[mask] - r[mask]
    psnr = float(np.mean(10.0 * np.log10(1.0 / (error**2 + VOXEL_PSNR_EPSILON))))
    mae = float(np.mean(np.abs(error)))
    reference_power = float(np.mean(r[mask] ** 2))
    squared_error = float(np.mean(error**2))
    if reference_power > 0:
        nmse = min(squared_error / reference_power, 1.0)
    else:  # an all-zero reference inside M: perfect only if the prediction is zero there too
        nmse = 0.0 if squared_error == 0 else 1.0
    return {"ssim": ssim, "psnr": psnr, "mae": mae, "nmse": nmse, "score": final_score(ssim, psnr, mae, nmse),
            "psnr_masked_standard": standard_psnr(squared_error), **earlier}
