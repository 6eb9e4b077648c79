"""Whole-volume network evaluation through overlapping windows with Gaussian blending.

The semantics are MONAI's ``sliding_window_inference`` (same window grid, same padding of axes
shorter than the window, same Gaussian importance map, same normalisation by the summed weights),
so a network evaluated here gives MONAI's result to float precision. What differs is the cost:
the window grid, the padding, the blending weights and their normaliser depend only on the volume
shape, so they are computed once (:func:`plan_windows`) and reused for the 1200 evaluations of
Algorithm 1; windows go through the network several at a time; blending accumulates in float32
whatever dtype the network returns (SPEC 7: MONAI's buffers take the input dtype, which is wrong
under autocast); and nothing in the loop waits on the host.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from monai.data.utils import dense_patch_slices
from monai.utils import BlendMode
from monai.data.utils import compute_importance_map

WindowFn = Callable[[torch.Tensor], torch.Tensor]
GAUSSIAN_SIGMA_SCALE = 0.125  # MONAI's default for BlendMode.GAUSSIAN


@dataclass(frozen=True)
class WindowPlan:
    """Everything about the window grid of one volume shape that does not depend on the values."""

    image_shape: tuple[int, ...]  # spatial shape of the volume (x, y, z)
    window: tuple[int, ...]  # window shape
    pad: tuple[tuple[int, int], ...]  # (before, after) zero padding per axis, for axes < window
    slices: tuple[tuple[slice, ...], ...]  # spatial slices of every window in the padded volume
    weight: torch.Tensor  # (1, 1, *window) Gaussian importance map, float32
    inverse_coverage: torch.Tensor  # (1, 1, *padded_shape): 1 / sum of weights, float32

    @property
    def num_windows(self) -> int:
        """Windows per whole-volume evaluation."""
        return len(self.slices)

    @property
    def padded_shape(self) -> tuple[int, ...]:
        """Spatial shape after padding axes shorter than the window."""
        return tuple(max(s, w) for s, w in zip(self.image_shape, self.window))


def scan_interval(image_shape: Sequence[int], window: Sequence[int], overlap: float) -> tuple[int, ...]:
    """Step between window starts per axis: ``int(window * (1 - overlap))``, at least 1 (MONAI's rule)."""
    return tuple(
        w if w == s else max(int(w * (1 - overlap)), 1) for s, w in zip(image_shape, window)
    )


def plan_windows(
    image_shape: Sequence[int],
    window: Sequence[int],
    overlap: float,
    device: torch.device | str = "cpu",
) -> WindowPlan:
    """Compute the window grid, padding, blending weights and normaliser of one volume shape."""
    image_shape, window = tuple(int(s) for s in image_shape), tuple(int(w) for w in window)
    if len(image_shape) != len(window):
        raise ValueError(f"volume shape {image_shape} and window {window} differ in dimensionality")
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    pad = tuple(((w - s) // 2, (w - s) - (w - s) // 2) if s < w else (0, 0) for s, w in zip(image_shape, window))
    padded = tuple(max(s, w) for s, w in zip(image_shape, window))
    slices = tuple(
        tuple(s) for s in dense_patch_slices(padded, window, scan_interval(padded, window, overlap), return_slice=True)
    )
    weight = compute_importance_map(
        window, mode=BlendMode.GAUSSIAN, sigma_scale=GAUSSIAN_SIGMA_SCALE, device=device, dtype=torch.float32
    )[None, None]
    coverage = torch.zeros((1, 1, *padded), device=device, dtype=torch.float32)
    for s in slices:
        coverage[(slice(None), slice(None), *s)] += weight
    return WindowPlan(image_shape, window, pad, slices, weight, 1.0 / coverage)


def pad_volume(x: torch.Tensor, plan: WindowPlan) -> torch.Tensor:
    """Zero-pad the spatial axes of ``x`` (B, C, *spatial) that are shorter than the window."""
    if not any(before or after for before, after in plan.pad):
        return x
    flat = [n for before_after in reversed(plan.pad) for n in before_after]  # F.pad wants last axis first
    return F.pad(x, flat, mode="constant", value=0.0)


def crop_volume(x: torch.Tensor, plan: WindowPlan) -> torch.Tensor:
    """Undo :func:`pad_volume`."""
    index = tuple(slice(before, before + size) for (before, _), size in zip(plan.pad, plan.image_shape))
    return x[(slice(None), slice(None), *index)]


def evaluate_in_windows(fn: WindowFn, x: torch.Tensor, plan: WindowPlan, windows_per_batch: int = 4) -> torch.Tensor:
    """Evaluate ``fn`` over the whole volume ``x`` (1, C, *spatial) window by window and blend.

    ``fn`` maps a batch of windows (N, C, *window) to (N, C_out, *window). The result is
    ``sum_w weight * fn(window) / sum_w weight`` per voxel, in float32, cropped to ``x``'s shape.
    """
    if x.shape[0] != 1:
        raise ValueError("evaluate_in_windows takes one volume at a time (batch size 1)")
    if tuple(x.shape[2:]) != plan.image_shape:
        raise ValueError(f"volume shape {tuple(x.shape[2:])} does not match the plan's {plan.image_shape}")
    padded = pad_volume(x, plan)
    output: torch.Tensor | None = None
    for start in range(0, plan.num_windows, windows_per_batch):
        batch_slices = plan.slices[start : start + windows_per_batch]
        batch = torch.cat([padded[(slice(None), slice(None), *s)] for s in batch_slices])
        result = fn(batch)
        if output is None:
            output = torch.zeros((1, result.shape[1], *plan.padded_shape), device=x.device, dtype=torch.float32)
        weighted = result.float() * plan.weight
        for i, s in enumerate(batch_slices):
            output[(slice(None), slice(None), *s)] += weighted[i : i + 1]
    assert output is not None
    return crop_volume(output * plan.inverse_coverage, plan)
