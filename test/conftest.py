"""Shared fixtures: tiny randomly initialised networks in a test manifest, and small cases on disk."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model.networks.bridge import Bridge, BridgeConfig  # noqa: E402
from model.volumes.layouts import CONTRASTS  # noqa: E402
from model.networks.unet import MPUNet3D  # noqa: E402
from model.networks.unet_config import tiny_config  # noqa: E402
from model.weights.manifest import save_networks  # noqa: E402

TEST_WINDOW = (64, 32, 32)  # Swin UNETR needs multiples of 32 and a bottleneck of more than one voxel
TINY_BRIDGE = BridgeConfig(feature_size=12, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1), window_size=4, window=TEST_WINDOW)
# A geometry that catches axis swaps: odd size, odd spacing, offset origin, oblique direction.
ODD_SIZE = (37, 29, 13)
ODD_SPACING = (1.0, 1.0, 1.0)
ODD_ORIGIN = (-12.5, 40.25, 7.0)
_c, _s = np.cos(0.3), np.sin(0.3)
OBLIQUE_DIRECTION = (_c, -_s, 0.0, _s, _c, 0.0, 0.0, 0.0, 1.0)


def tiny_networks(seed: int = 0) -> dict[str, torch.nn.Module]:
    """A tiny epsilon-network and bridge, randomly initialised, with non-zero outputs.

    Both networks output exactly zero at initialisation (by design), which would make every
    test of the sampler trivial; their output layers are perturbed so they do something.
    """
    torch.manual_seed(seed)
    unet = MPUNet3D(tiny_config(window=TEST_WINDOW, channel_mult=(1, 2, 2)))
    bridge = Bridge(TINY_BRIDGE)
    with torch.no_grad():
        unet.out_gain.fill_(0.3)
        for block in unet.modules():
            if hasattr(block, "emb_gain"):
                block.emb_gain.fill_(0.5)  # make the output depend on t
        torch.nn.init.normal_(bridge.phi.out.conv.conv.weight, std=0.05)
    return {"diffusion": unet.eval(), "bridge": bridge.eval()}


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """A weights folder with a manifest of tiny untrained networks."""
    directory = tmp_path_factory.mktemp("weights")
    save_networks(directory, tiny_networks(), trained=False, provenance={"source": "test fixture, random init"})
    return directory


def make_image(values: np.ndarray, spacing=ODD_SPACING, origin=ODD_ORIGIN, direction=OBLIQUE_DIRECTION) -> sitk.Image:
    """A SimpleITK image from an (x, y, z) array with the given geometry."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(values.transpose(2, 1, 0)))
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    return image


def head_like(size=ODD_SIZE, seed: int = 0, dtype=np.float32) -> dict[str, np.ndarray]:
    """Three smooth blob volumes with noise (x, y, z), one per contrast: enough structure for the pipeline."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in size], indexing="ij"))
    radius = np.sqrt((grid**2).sum(0))
    volumes = {}
    for i, contrast in enumerate(CONTRASTS):
        values = 100 * (radius < 0.8) * (1 + 0.3 * np.cos((i + 2) * grid[0])) + 5 * rng.standard_normal(size)
        volumes[contrast] = np.abs(values).astype(dtype)
    return volumes


def write_case(paths: dict[str, Path], dtype=np.float32, **geometry) -> dict[str, Path]:
    """Write a head-like case, one file per contrast at the given paths; returns ``paths``."""
    for contrast, values in head_like(dtype=dtype).items():
        paths[contrast].parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(make_image(values, **geometry), str(paths[contrast]))
    return paths


def grand_challenge_paths(root: Path) -> dict[str, Path]:
    """``root/images/<default slug>/<uuid>.mha`` per contrast."""
    from model.volumes.layouts import DEFAULT_INPUT_SLUGS

    return {c: root / "images" / DEFAULT_INPUT_SLUGS[c] / f"0c9e{i}-uuid.mha" for i, c in enumerate(CONTRASTS)}


def ulf_enc_paths(root: Path, subject: str) -> dict[str, Path]:
    """``root/<ID>/64mT/<ID>_<contrast>.nii.gz`` per contrast."""
    return {c: root / subject / "64mT" / f"{subject}_{c}.nii.gz" for c in CONTRASTS}


def run_process(*args, weights=None, mode="identity") -> int:
    """``process.py`` in this process: identity mode needs no networks (I/O paths only), else the smoke preset."""
    extra = ["--mode", mode, "--weights", str(weights or "/nonexistent-weights")] if mode == "identity" else \
        ["--mode", mode, "--weights", str(weights), "--preset", "smoke", "--window", *map(str, TEST_WINDOW)]
    from model.cli.main import main

    return main([*map(str, args), *extra, "--quiet"])


def files_under(folder: Path, records: bool = False) -> list[str]:
    """Every file below ``folder`` (hidden ones included), relative, sorted; the run records written beside the
    outputs (``*.enhancement.json``, test_run_record.py) only with ``records``."""
    from model.pipeline.run_record import RECORD_SUFFIX

    if not Path(folder).exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*")
                  if p.is_file() and (records or not p.name.endswith(RECORD_SUFFIX)))


@pytest.fixture(scope="session")
def evaluation_submissions(tmp_path_factory) -> tuple[Path, list[str]]:
    """A simulated ground truth (two subjects, quarter resolution) and submissions of it, local and Grand
    Challenge style, one with a duplicated volume (test/container/evaluation_case.py)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent / "container"))
    from evaluation_case import prepare  # noqa: PLC0415

    work = tmp_path_factory.mktemp("evaluation")
    return work, prepare(work)
