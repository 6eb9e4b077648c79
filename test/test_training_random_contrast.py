"""Randomised-contrast low-field inputs for the bridge (training/random_contrast.py) and their data path:
labels in the prepared cache, the proportion in the samples, the configuration, and a tiny bridge run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from test_training_helpers import single_thread, tiny_config, write_tiny_dataset  # noqa: F401 (fixture)
from training.augment import augment_low_field
from training.config import DataConfig, RunConfig
from training.data import PreparedSubject, _source_key, open_subjects, prepare_subject, provenance
from training.patches import (STREAM_AUGMENT, STREAM_CONTRAST, STREAM_NOISE, STREAM_PATCH, PatchDataset, TimestepDraw,
                              cut, cut_labels, make_sample, patch_axes, patch_start, rng, torch_generator)
from training.random_contrast import intensity_classes, randomised_low_field, reference_stride

REPO = Path(__file__).resolve().parent.parent
BACKGROUND, CSF, GM, WM = 0, 1, 2, 3  # simulation.LABEL_NAMES order


def _phantom(shape=(40, 44, 24)) -> np.ndarray:
    """A labelled 'head': background outside, a CSF rim, a GM shell and a WM core."""
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    radius = np.sqrt((grid**2).sum(0))
    labels = np.zeros(shape, dtype=np.uint8)
    labels[radius < 0.9] = CSF
    labels[radius < 0.8] = GM
    labels[radius < 0.5] = WM
    return labels


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_synthesis_is_float32_in_range_of_the_patch_shape_and_a_function_of_the_generator():
    labels = torch.from_numpy(_phantom())
    a = randomised_low_field(labels, _generator(1))
    assert a.shape == (3, *labels.shape) and a.dtype == torch.float32
    assert a.min() >= -1.0 and a.max() <= 1.0 and a.min() == -1.0 and a.max() == 1.0  # the percentile map, clipped
    assert torch.equal(a, randomised_low_field(labels, _generator(1)))
    assert not torch.equal(a, randomised_low_field(labels, _generator(2)))
    single = randomised_low_field(labels, _generator(1), contrasts=1)
    assert single.shape == (1, *labels.shape)


def test_tissue_order_is_a_nuisance_white_and_grey_matter_swap_in_every_contrast():
    """Each contrast draws its own tissue means: over 50 draws the WM-vs-GM order flips at least once per contrast."""
    labels = _phantom()
    wm, gm = torch.from_numpy(labels == WM), torch.from_numpy(labels == GM)
    brighter = np.array([[(v[c][wm].mean() > v[c][gm].mean()).item() for c in range(3)]
                         for v in (randomised_low_field(labels, _generator(seed)) for seed in range(50))])
    assert brighter.any(axis=0).all() and (~brighter).any(axis=0).all()
    assert len({tuple(row) for row in brighter}) > 2  # the contrasts are drawn independently


def test_a_patch_is_normalised_with_the_map_of_its_whole_volume():
    """As inference normalises whole volumes, a patch takes the intensity map of its volume (fitted on the strided
    reference), not its own: the same draw gives a white-matter-only patch the white matter's values in the whole
    volume, where a map of its own would stretch it to [-1, 1]."""
    shape = (64, 64, 40)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    radius = np.sqrt((grid**2).sum(0))
    labels = np.choose((radius < 0.9).astype(int) + (radius < 0.8) + (radius < 0.7), [BACKGROUND, CSF, GM, WM])
    labels = labels.astype(np.uint8)
    stride = reference_stride(shape)
    reference = dict(reference=labels[::stride, ::stride, ::stride],
                     reference_axes=[torch.arange(0, s, stride) for s in shape])
    start, patch = (26, 26, 16), (12, 12, 8)
    region = tuple(slice(a, a + p) for a, p in zip(start, patch))
    assert np.all(labels[region] == WM)
    for seed in range(3):
        whole = randomised_low_field(labels, _generator(seed), **reference)
        inner = randomised_low_field(cut_labels(labels, start, patch), _generator(seed), volume_shape=shape,
                                     axes=patch_axes(shape, start, patch), **reference)
        assert inner.shape == (3, *patch)
        difference = (inner.mean(dim=(1, 2, 3)) - whole[(slice(None), *region)].mean(dim=(1, 2, 3))).abs()
        assert difference.max() < 0.05, difference


def test_patch_axes_and_labels_follow_cut_including_its_padding():
    labels = np.arange(5 * 4 * 3, dtype=np.uint8).reshape(5, 4, 3)
    start, patch = patch_start(labels.shape, (4, 6, 3), (2, 2, 1)), (4, 6, 3)
    cut_l = cut_labels(labels, start, patch)
    assert cut_l.shape == patch and cut_l.dtype == np.uint8
    assert np.array_equal(cut_l, cut(labels[None].astype(np.float32), start, patch)[0].clip(0).astype(np.uint8))
    axes = patch_axes(labels.shape, start, patch)
    assert axes[1].tolist() == [-1, 0, 1, 2, 3, 4]  # 4 voxels centred in 6: one padded on each side
    inside = cut_l[:, 1:5]
    assert np.array_equal(inside, labels[np.ix_(axes[0].numpy(), axes[1][1:5].numpy(), axes[2].numpy())])


def _prepared(folder: Path, labels: np.ndarray | None) -> PreparedSubject:
    """A prepared subject on disk: a high field from the labels, a different low field, head indices."""
    folder.mkdir(parents=True)
    base = _phantom() if labels is None else labels
    high = np.stack([base / 3.0 * 2 - 1 + 0.1 * c for c in range(3)]).astype(np.float32)
    low = (0.5 * high[::-1]).astype(np.float32).copy()
    np.save(folder / "high.npy", high)
    np.save(folder / "low.npy", low)
    np.save(folder / "head.npy", np.flatnonzero(base > 0))
    info = {"key": {}, "subject": folder.name, "shape": list(base.shape), "low_field": True}
    if labels is not None:
        np.save(folder / "labels.npy", labels)
        info.update(labels=True, voxel_mm=1.0)
    (folder / "info.json").write_text(json.dumps(info))
    return PreparedSubject(folder)


PATCH, TIMES = (16, 16, 8), TimestepDraw(75, 150)


def _previous_sample(subject, seed, *keys, augment_low):
    """The sample as the data path made it before randomised contrast existed (training/patches.py then)."""
    position = rng(seed, STREAM_PATCH, *keys)
    shape = subject.high.shape[1:]
    if position.random() < 0.9:
        centre = np.unravel_index(int(subject.head[position.integers(len(subject.head))]), shape)
    else:
        centre = [position.integers(s) for s in shape]
    start = patch_start(shape, PATCH, centre)
    generator = torch_generator(seed, STREAM_NOISE, *keys)
    sample = {"high": torch.from_numpy(cut(subject.high, start, PATCH)), "t": TIMES(generator),
              "noise": torch.randn((3, *PATCH), generator=generator),
              "low": torch.from_numpy(cut(subject.low, start, PATCH))}
    if augment_low:
        sample["low"] = augment_low_field(sample["low"], torch_generator(seed, STREAM_AUGMENT, *keys))
    return sample, start


@pytest.mark.parametrize("augment_low", [False, True])
def test_proportion_zero_is_the_previous_data_path_and_one_always_randomises(tmp_path, augment_low):
    subject = _prepared(tmp_path / "S", _phantom())
    for keys in [(step, slot) for step in range(4) for slot in range(2)]:
        before, start = _previous_sample(subject, 9, *keys, augment_low=augment_low)
        zero = make_sample(subject, PATCH, 0.9, TIMES, True, 9, *keys, augment_low=augment_low, random_contrast=0.0)
        assert zero.keys() == before.keys() and all(torch.equal(zero[k], before[k]) for k in before)  # bit for bit
        one = make_sample(subject, PATCH, 0.9, TIMES, True, 9, *keys, augment_low=augment_low, random_contrast=1.0)
        for key in ("high", "t", "noise"):  # the 3 T target, the timestep and the noise never change
            assert torch.equal(one[key], before[key])
        generator = torch_generator(9, STREAM_CONTRAST, *keys)
        torch.rand((), generator=generator)  # the draw that chose randomisation
        shape = subject.high.shape[1:]
        reference, stride = subject.label_reference()
        expected = randomised_low_field(cut_labels(subject.labels, start, PATCH), generator, volume_shape=shape,
                                        axes=patch_axes(shape, start, PATCH), reference=reference,
                                        reference_axes=[torch.arange(0, s, stride) for s in shape])
        assert torch.equal(one["low"], expected) and not torch.equal(one["low"], before["low"])


def test_a_proportion_randomises_about_that_share_deterministically(tmp_path):
    subject = _prepared(tmp_path / "S", _phantom())
    dataset = PatchDataset([subject], PATCH, 0.9, TIMES, True, seed=2, random_contrast=0.5)
    physical = PatchDataset([subject], PATCH, 0.9, TIMES, True, seed=2)
    randomised = [not torch.equal(dataset[(step, 0)]["low"], physical[(step, 0)]["low"]) for step in range(60)]
    assert 15 <= sum(randomised) <= 45  # binomial(60, 0.5): sd 3.9
    assert all(torch.equal(dataset[(s, 0)]["low"], dataset[(s, 0)]["low"]) for s in range(3))
    validation = PatchDataset([subject], PATCH, 0.9, TIMES, False, seed=2, random_contrast=1.0)[(0, 0)]
    assert "low" not in validation  # the diffusion network's samples carry no low field and are untouched


def test_randomised_pairs_need_labels(tmp_path):
    unlabelled = _prepared(tmp_path / "S", None)
    PatchDataset([unlabelled], PATCH, 0.9, TIMES, True, seed=0)  # physical pairs need none
    with pytest.raises(ValueError, match="random_contrast needs tissue labels"):
        PatchDataset([unlabelled], PATCH, 0.9, TIMES, True, seed=0, random_contrast=0.5)


@pytest.mark.parametrize("value", [-0.1, 1.5, True, "half"])
def test_configuration_refuses_a_proportion_outside_zero_one(value):
    with pytest.raises(ValueError, match="data.random_contrast"):
        DataConfig(random_contrast=value)


def test_configuration_writes_the_proportion_only_when_set():
    """Run folders saved before the key existed must resume: at its default it is not written."""
    assert "random_contrast" not in RunConfig().to_dict()["data"]
    config = RunConfig.from_dict({"data": {"random_contrast": 0.5}})
    assert config.data.random_contrast == 0.5 and config.to_dict()["data"]["random_contrast"] == 0.5
    assert RunConfig.from_dict(config.to_dict()) == config


def test_labels_join_the_cache_key_only_when_needed_and_old_entries_are_reprepared(tmp_path):
    plain = DataConfig(kind="simulated", subjects=1, seed=1, shape_scale=0.15, lesions="never")
    labelled = DataConfig(kind="simulated", subjects=1, seed=1, shape_scale=0.15, lesions="never", random_contrast=0.5)
    assert "labels" not in _source_key(plain, "SIM0001")  # caches prepared before stay valid
    assert _source_key(labelled, "SIM0001")["labels"] == {"format": 1, "source": "simulator"}
    folder = prepare_subject(plain, "SIM0001", tmp_path)
    assert not (folder / "labels.npy").exists()
    stamp = (folder / "high.npy").stat().st_mtime_ns
    assert open_subjects(tmp_path, ["SIM0001"], need_low=True)[0].labels is None  # an old entry still loads
    prepare_subject(labelled, "SIM0001", tmp_path)  # labels needed: prepared again, with them
    assert (folder / "high.npy").stat().st_mtime_ns != stamp
    subject = open_subjects(tmp_path, ["SIM0001"], need_low=True)[0]
    assert subject.labels.dtype == np.uint8 and subject.labels.shape == subject.high.shape[1:]
    assert subject.voxel_mm == pytest.approx(1 / 0.15, rel=0.05)
    assert {CSF, GM, WM} <= set(np.unique(subject.labels).tolist())
    stamp = (folder / "high.npy").stat().st_mtime_ns
    prepare_subject(plain, "SIM0001", tmp_path)  # an entry with labels serves a configuration without
    prepare_subject(labelled, "SIM0001", tmp_path)
    assert (folder / "high.npy").stat().st_mtime_ns == stamp
    recorded = provenance(labelled, {"train": ["SIM0001"], "validation": []})["random_contrast"]
    assert recorded["proportion"] == 0.5 and recorded["labels"] == "simulator" and recorded["ranges"]["gamma"] == [0.5, 2.0]
    assert provenance(plain, {"train": ["SIM0001"], "validation": []})["random_contrast"] == {"proportion": 0.0}


def test_subjects_without_labels_get_intensity_classes_of_the_3t():
    labels = _phantom()
    high = np.stack([np.choose(labels, [-1.0, 0.8, 0.0, -0.4]), np.choose(labels, [-1.0, 0.9, 0.1, -0.3]),
                     np.choose(labels, [-1.0, -0.6, 0.3, 0.5])]).astype(np.float32)
    head = np.flatnonzero(labels > 0)
    classes = intensity_classes(high, head, classes=3)
    assert np.array_equal(classes, intensity_classes(high, head, classes=3)) and classes.dtype == np.uint8
    assert np.all(classes[labels == 0] == 0)
    for tissue in (CSF, GM, WM):  # each tissue is one class of its own
        assert len(np.unique(classes[labels == tissue])) == 1
    assert len({int(classes[labels == t][0]) for t in (CSF, GM, WM)}) == 3


def test_a_bridge_trains_on_randomised_pairs(tmp_path):
    """python -m training bridge, two steps, every pair randomised (ULF-EnC layout: labels from the 3 T)."""
    root = write_tiny_dataset(tmp_path / "ulf-enc")
    config = tiny_config(root, tmp_path / "cache", "train.steps=2", "train.validate_every=0", "data.random_contrast=1.0")
    path = tmp_path / "run.json"
    path.write_text(json.dumps(config.to_dict()))
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "training", "bridge", "--config", str(path), "--run-dir",
                             str(tmp_path / "run")], cwd=REPO, env=environment, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines if "train/loss" in line] == [1, 2]
    assert all(np.isfinite(line["train/loss"]) for line in lines if "train/loss" in line)
    assert json.loads((tmp_path / "run" / "data.json").read_text())["random_contrast"]["proportion"] == 1.0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["config"]["data"]["random_contrast"] == 1.0
    labels = np.load(tmp_path / "cache" / "TINY000" / "labels.npy")
    assert labels.shape == (70, 40, 36) and labels.max() >= 2
