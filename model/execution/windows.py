"""Whole-volume network evaluation through overlapping windows with Gaussian blending.

The semantics are MONAI's ``sliding_window_inference`` (same window grid, same padding of axes
shorter than the window, same Gaussian importance map, same normalisation by the summed weights),
so a network evaluated here gives MONAI's result to float precision. What differs is the cost:
the window grid, the padding, the blending weights and their normaliser depend only on the volume
shape, so they are computed once (:func:`plan_windows`) and reused for the 1200 evaluations of
Algorithm 1; windows go through the network several at a time; blending accumulates in float32
whatever dtype the network returns (docs/container.md: MONAI's buffers take the input dtype, which is wrong
under autocast); and nothing in the loop waits on the host.

Two speed levers live here too. :class:`WindowBuffers` keeps the window batch and the blending
accumulator of one volume across evaluations, and fills the last batch up to the full batch size
(the extra windows are computed and dropped), so every network call sees the same shapes: oneDNN
takes its fast convolution path for batches of more than one window, and compiled or graph-captured
networks are not re-traced. A ``shift`` rolls the (padded) volume before windowing and rolls the
blended result back, i.e. it moves the window grid by ``shift`` voxels on a torus: with a different
random shift per evaluation (:func:`random_shift`), the seams of a low-overlap grid do not line up
from one evaluation to the next, at no extra windows and with the same plan.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
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
    overlap: float = 0.0  # the overlap the grid was made for

    @property
    def num_windows(self) -> int:
        """Windows per whole-volume evaluation."""
        return len(self.slices)

    @property
    def padded_shape(self) -> tuple[int, ...]:
        """Spatial shape after padding axes shorter than the window."""
        return tuple(max(s, w) for s, w in zip(self.image_shape, self.window))

    @property
    def interval(self) -> tuple[int, ...]:
        """Step between window starts per axis (of the padded volume)."""
        return scan_interval(self.padded_shape, self.window, self.overlap)


def scan_interval(image_shape: Sequence[int], window: Sequence[int], overlap: float) -> tuple[int, ...]:
    """Step between window starts per axis: ``int(window * (1 - overlap))``, at least 1 (MONAI's rule)."""
    return tuple(
        w if w == s else max(int(w * (1 - overlap)), 1) for s, w in zip(image_shape, window)
    )


def window_count(image_shape: Sequence[int], window: Sequence[int], overlap: float) -> int:
    """How many windows :func:`plan_windows` places on a volume (without making the plan's weights)."""
    padded = tuple(max(int(s), int(w)) for s, w in zip(image_shape, window))
    return len(dense_patch_slices(padded, tuple(int(w) for w in window), scan_interval(padded, window, overlap)))


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
    return WindowPlan(image_shape, window, pad, slices, weight, 1.0 / coverage, float(overlap))


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


@dataclass
class WindowBuffers:
    """Scratch tensors reused by every evaluation of one volume (allocated on first use).

    ``batch``: (windows per batch, C, *window) windows gathered for one network call;
    ``output``: (1, C_out, *padded shape) float32 blending accumulator.
    """

    batch: torch.Tensor | None = None
    output: torch.Tensor | None = None

    def batch_for(self, shape: tuple[int, ...], like: torch.Tensor, channels_last: bool) -> torch.Tensor:
        """The window batch buffer of ``shape`` (reallocated, zeroed, when the shape or layout changes)."""
        layout = torch.channels_last_3d if channels_last else torch.contiguous_format
        if (self.batch is None or tuple(self.batch.shape) != shape or self.batch.device != like.device
                or self.batch.dtype != like.dtype or not self.batch.is_contiguous(memory_format=layout)):
            self.batch = torch.zeros(shape, device=like.device, dtype=like.dtype).contiguous(memory_format=layout)
        return self.batch

    def output_for(self, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        """The float32 accumulator of ``shape``, zeroed."""
        if self.output is None or tuple(self.output.shape) != shape or self.output.device != device:
            self.output = torch.zeros(shape, device=device, dtype=torch.float32)
        else:
            self.output.zero_()
        return self.output


def random_shift(plan: WindowPlan, seed: int, index: int) -> tuple[int, ...]:
    """A grid shift for evaluation ``index`` of a run seeded with ``seed``: per axis uniform in [0, step).

    Drawn on the host from its own stream (``numpy.random.default_rng([seed, index])``), so it costs
    no device synchronisation and leaves the sampler's noise draws unchanged. Axes covered by a single
    window are not shifted (a roll would only move the wrap-around into that window).
    """
    rng = np.random.default_rng([int(seed), int(index)])
    return tuple(
        int(rng.integers(0, step)) if size > w else 0
        for step, size, w in zip(plan.interval, plan.padded_shape, plan.window)
    )


def evaluate_in_windows(
    fn: WindowFn,
    x: torch.Tensor,
    plan: WindowPlan,
    windows_per_batch: int = 4,
    *,
    shift: Sequence[int] | None = None,
    buffers: WindowBuffers | None = None,
    channels_last: bool = False,
) -> torch.Tensor:
    """Evaluate ``fn`` over the whole volume ``x`` (1, C, *spatial) window by window and blend.

    ``fn`` maps a batch of windows (N, C, *window) to (N, C_out, *window). The result is
    ``sum_w weight * fn(window) / sum_w weight`` per voxel, in float32, cropped to ``x``'s shape.

    ``shift``: roll the padded volume by this many voxels per axis first and the result back after
    (the window grid moved on a torus; ``None`` or zeros: MONAI's grid). ``buffers``: reuse these
    scratch tensors, and fill the last batch up to ``windows_per_batch`` windows so that every call
    of ``fn`` gets the same shape. ``channels_last``: gather windows in channels-last-3D layout.
    Nothing here waits on the device: the window grid is plain Python.
    """
    if x.shape[0] != 1:
        raise ValueError("evaluate_in_windows takes one volume at a time (batch size 1)")
    if tuple(x.shape[2:]) != plan.image_shape:
        raise ValueError(f"volume shape {tuple(x.shape[2:])} does not match the plan's {plan.image_shape}")
    spatial_dims = tuple(range(2, x.ndim))
    shift = tuple(int(s) for s in shift) if shift is not None and any(shift) else None
    padded = pad_volume(x, plan)
    if shift is not None:
        padded = torch.roll(padded, shifts=shift, dims=spatial_dims)
    output: torch.Tensor | None = None
    for start in range(0, plan.num_windows, windows_per_batch):
        batch_slices = plan.slices[start : start + windows_per_batch]
        batch = _gather(padded, batch_slices, plan, windows_per_batch, buffers, channels_last)
        result = fn(batch)
        if output is None:
            shape = (1, result.shape[1], *plan.padded_shape)
            output = buffers.output_for(shape, x.device) if buffers is not None else torch.zeros(
                shape, device=x.device, dtype=torch.float32)
        weighted = result.float() * plan.weight
        for i, s in enumerate(batch_slices):
            output[(slice(None), slice(None), *s)] += weighted[i : i + 1]
    assert output is not None
    blended = output * plan.inverse_coverage
    if shift is not None:
        blended = torch.roll(blended, shifts=tuple(-s for s in shift), dims=spatial_dims)
    return crop_volume(blended, plan)


def first_batch(x: torch.Tensor, plan: WindowPlan, windows_per_batch: int, channels_last: bool = False) -> torch.Tensor:
    """The first batch of ``x``'s windows, as one network call of :func:`evaluate_in_windows` sees it
    (for measuring a network's throughput)."""
    size = min(windows_per_batch, plan.num_windows)
    return _gather(pad_volume(x, plan), plan.slices[:size], plan, size, None, channels_last)


def _gather(padded: torch.Tensor, batch_slices, plan: WindowPlan, windows_per_batch: int,
            buffers: WindowBuffers | None, channels_last: bool) -> torch.Tensor:
    """The windows of ``batch_slices`` as one (N, C, *window) batch."""
    windows = [padded[(slice(None), slice(None), *s)] for s in batch_slices]
    if buffers is None:
        batch = torch.cat(windows)
        return batch.contiguous(memory_format=torch.channels_last_3d) if channels_last else batch
    size = min(windows_per_batch, plan.num_windows)  # a full batch, or every window when there are fewer
    batch = buffers.batch_for((size, padded.shape[1], *plan.window), padded, channels_last)
    for i, window in enumerate(windows):
        batch[i : i + 1].copy_(window)
    return batch  # rows past len(windows) keep earlier windows: computed, then dropped
