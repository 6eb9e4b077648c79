"""Shared pieces of the training tests: a tiny paired data set in the ULF-EnC layout, a tiny run configuration,
and a one-thread fixture."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from training.cli import apply_overrides
from training.config import RunConfig

CONTRASTS = ("T1", "T2", "FLAIR")


@pytest.fixture(autouse=True)
def single_thread():
    """One intra-op thread (import this fixture into a test module to apply it there): on a shared
    2-core machine, small 3D convolutions run several times faster than with two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

PATCH = [64, 32, 32]  # Swin UNETR: multiples of 32 and one axis of 64 or more
SHAPE = (70, 40, 36)


def write_tiny_dataset(root: Path, subjects: int = 3, shape: tuple[int, int, int] = SHAPE) -> Path:
    """``root/TINY00i/{3T,64mT}/TINY00i_{T1,T2,FLAIR}.nii.gz``: an ellipsoid 'head' with structure; the
    low field is a blurred, noisier, lower-contrast copy. 1 mm isotropic, so nothing is resampled."""
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    radius = np.sqrt((grid**2).sum(0))
    for index in range(subjects):
        rng = np.random.default_rng(index)
        subject = f"TINY{index:03d}"
        for c, contrast in enumerate(CONTRASTS):
            texture = np.cos((c + 2 + index) * 3 * grid[0]) * np.sin((c + 3) * 2 * grid[1] + index)
            high = 100.0 * (radius < 0.85) * (1.0 + 0.4 * texture) + 2.0 * rng.standard_normal(shape)
            smooth = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(sitk.GetImageFromArray(high), 1.5))
            low = 0.7 * smooth + 20.0 + 8.0 * rng.standard_normal(shape)
            for field, values in (("3T", high), ("64mT", low)):
                path = root / subject / field / f"{subject}_{contrast}.nii.gz"
                path.parent.mkdir(parents=True, exist_ok=True)
                image = sitk.GetImageFromArray(np.abs(values).astype(np.float32).transpose(2, 1, 0))
                sitk.WriteImage(image, str(path))
    return root


def tiny_config_dict(root: Path, cache: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """A tiny run over :func:`write_tiny_dataset`'s data: 4 steps of 2 patches, tiny networks, CPU."""
    data = {
        "seed": 3,
        "data": {"kind": "ulf-enc", "root": str(root), "cache": str(cache), "patch": PATCH,
                 "validation_subjects": ["TINY002"], "workers": 0},
        "train": {"steps": 4, "batch_size": 2, "log_every": 1, "validate_every": 2, "checkpoint_every": 2,
                  "validation_patches": 2, "precision": "float32", "device": "cpu", "progress": False},
        "diffusion": {"network": {"model_channels": 8, "channel_mult": [1, 2, 2, 2], "num_blocks": 1, "channels_per_head": 8}},
        "bridge": {"network": {"feature_size": 12, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 1, 1], "window_size": 4}},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return data


def tiny_config(root: Path, cache: Path, *overrides: str, **sections: dict[str, Any]) -> RunConfig:
    """:func:`tiny_config_dict` as a :class:`RunConfig`, with ``--set``-style overrides."""
    return RunConfig.from_dict(apply_overrides(tiny_config_dict(root, cache, **sections), list(overrides)))
