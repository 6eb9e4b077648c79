"""Training samples: a patch, a timestep and a noise draw per (step, slot) of the global batch.

Every sample is a pure function of the run seed, the step and its slot in the global batch:
subject (a fresh permutation of the training subjects per step), patch position (centred on a
random head voxel with probability ``head_fraction``, else anywhere), timestep and noise. So a
resumed run sees exactly the batches it would have seen, and N torchrun processes, each taking
its share of the slots, see together exactly the batch that one process would.

Bridge samples: the low-field side is the physical 64 mT patch (optionally augmented,
:mod:`training.augment`) or, in a proportion ``random_contrast`` of the samples, a randomised-contrast
synthesis from the subject's tissue labels (:mod:`training.random_contrast`); the 3 T target is the same.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from training.augment import augment_low_field
from training.data import PreparedSubject
from training.random_contrast import randomised_low_field

BACKGROUND = -1.0  # the [-1, 1] map sends air to -1: patches reaching outside the volume are padded with it
STREAM_SUBJECT, STREAM_PATCH, STREAM_NOISE, STREAM_AUGMENT, STREAM_CONTRAST = 1, 2, 3, 4, 5
VALIDATION_STEP = 1 << 40  # the "step" of validation samples: never a training step


def rng(seed: int, *keys: int) -> np.random.Generator:
    """The numpy generator of one stream of one sample."""
    return np.random.default_rng([seed, *keys])


def seed_from(seed: int, *keys: int) -> int:
    """A 64-bit seed derived from ``(seed, *keys)``."""
    state = np.random.SeedSequence([seed, *keys]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 32 | int(state[1])


def torch_generator(seed: int, *keys: int) -> torch.Generator:
    """A CPU torch generator seeded from ``(seed, *keys)``."""
    return torch.Generator().manual_seed(seed_from(seed, *keys))


def patch_start(shape: Sequence[int], patch: Sequence[int], centre: Sequence[int]) -> tuple[int, ...]:
    """The corner of the patch centred (as far as the volume allows) on ``centre``."""
    return tuple(int(min(max(c - p // 2, 0), max(s - p, 0))) for s, p, c in zip(shape, patch, centre))


def cut(volume: np.ndarray, start: Sequence[int], patch: Sequence[int]) -> np.ndarray:
    """``volume[:, start : start + patch]`` as float32, padded with :data:`BACKGROUND` where the volume is smaller."""
    region = np.array(volume[(slice(None),) + tuple(slice(a, a + p) for a, p in zip(start, patch))], dtype=np.float32)
    missing = [p - r for p, r in zip(patch, region.shape[1:])]
    if any(missing):
        region = np.pad(region, [(0, 0)] + [(m // 2, m - m // 2) for m in missing], constant_values=BACKGROUND)
    return region


def cut_labels(labels: np.ndarray, start: Sequence[int], patch: Sequence[int]) -> np.ndarray:
    """The labels (X, Y, Z) under :func:`cut`'s patch, padded with 0 (no signal) where :func:`cut` pads."""
    region = np.array(labels[tuple(slice(a, a + p) for a, p in zip(start, patch))])
    missing = [p - r for p, r in zip(patch, region.shape)]
    if any(missing):
        region = np.pad(region, [(m // 2, m - m // 2) for m in missing], constant_values=0)
    return region


def patch_axes(shape: Sequence[int], start: Sequence[int], patch: Sequence[int]) -> list[torch.Tensor]:
    """Per axis, the volume index of each voxel of :func:`cut`'s patch (outside the volume where it pads)."""
    axes = []
    for s, a, p in zip(shape, start, patch):
        missing = p - (min(a + p, s) - a)
        axes.append(torch.arange(p) + a - missing // 2)
    return axes


@dataclass(frozen=True)
class TimestepDraw:
    """Training timesteps ``t = t_min + floor((t_max - t_min + 1) * u ** power)``, ``u ~ U[0, 1)``.

    ``power`` 1 is uniform over ``t_min..t_max`` (the paper's draw); ``power`` p > 1 puts more
    samples at low t (density proportional to ``(t - t_min) ** (1/p - 1)``): where the shipped level
    sets spend their levels.
    """

    t_min: int
    t_max: int
    power: float = 1.0

    def __call__(self, generator: torch.Generator) -> torch.Tensor:
        if self.power == 1.0:
            return torch.randint(self.t_min, self.t_max + 1, (), generator=generator)
        u = torch.rand((), generator=generator, dtype=torch.float64)
        offset = torch.floor((self.t_max - self.t_min + 1) * u ** self.power).to(torch.int64)
        return (self.t_min + offset).clamp(max=self.t_max)


def make_sample(subject: PreparedSubject, patch: Sequence[int], head_fraction: float, timesteps: TimestepDraw,
                with_low: bool, seed: int, *keys: int, augment_low: bool = False,
                random_contrast: float = 0.0) -> dict[str, torch.Tensor]:
    """One sample: ``high`` (and ``low``) patches (3, *patch), ``t`` (int64) and ``noise`` (3, *patch).

    ``augment_low``: the low-field patch goes through :func:`training.augment.augment_low_field`.
    ``random_contrast``: the probability that ``low`` is instead a randomised-contrast synthesis from the
    subject's labels (:func:`training.random_contrast.randomised_low_field`, not augmented); its draws come
    from a stream of their own, so 0 leaves every other draw, and the sample, as they were.
    """
    position = rng(seed, STREAM_PATCH, *keys)
    shape = subject.high.shape[1:]
    if position.random() < head_fraction:
        head = subject.head
        centre = np.unravel_index(int(head[position.integers(len(head))]), shape)
    else:
        centre = [position.integers(s) for s in shape]
    start = patch_start(shape, patch, centre)
    generator = torch_generator(seed, STREAM_NOISE, *keys)
    t = timesteps(generator)
    sample = {"high": torch.from_numpy(cut(subject.high, start, patch)), "t": t,
              "noise": torch.randn((subject.high.shape[0], *patch), generator=generator)}
    if with_low and random_contrast > 0:
        contrast_generator = torch_generator(seed, STREAM_CONTRAST, *keys)
        if float(torch.rand((), generator=contrast_generator)) < random_contrast:
            reference, stride = subject.label_reference()
            sample["low"] = randomised_low_field(
                cut_labels(subject.labels, start, patch), contrast_generator, volume_shape=shape,
                axes=patch_axes(shape, start, patch), reference=reference,
                reference_axes=[torch.arange(0, s, stride) for s in shape], voxel_mm=subject.voxel_mm,
                contrasts=subject.high.shape[0])
            return sample
    if with_low:
        sample["low"] = torch.from_numpy(cut(subject.low, start, patch))
        if augment_low:
            sample["low"] = augment_low_field(sample["low"], torch_generator(seed, STREAM_AUGMENT, *keys))
    return sample


class PatchDataset(Dataset):
    """Map-style dataset indexed by ``(step, slot)`` of the global batch."""

    def __init__(self, subjects: list[PreparedSubject], patch: Sequence[int], head_fraction: float,
                 timesteps: TimestepDraw, with_low: bool, seed: int, augment_low: bool = False,
                 random_contrast: float = 0.0):
        if not subjects:
            raise ValueError("no training subjects")
        if not 0.0 <= random_contrast <= 1.0:
            raise ValueError(f"random_contrast must be in [0, 1], got {random_contrast}")
        if with_low and random_contrast > 0:
            unlabelled = [str(s.folder) for s in subjects if s.labels is None]
            if unlabelled:
                raise ValueError(f"random_contrast needs tissue labels, and these prepared subjects have none: "
                                 f"{', '.join(unlabelled)} (prepare them with data.random_contrast > 0)")
        self.subjects, self.patch, self.head_fraction = subjects, tuple(patch), head_fraction
        self.timesteps, self.with_low, self.seed = timesteps, with_low, seed
        self.augment_low, self.random_contrast = augment_low, random_contrast

    def subject_index(self, step: int, slot: int) -> int:
        """A fresh permutation of the subjects per step: a batch repeats a subject only when it has more slots."""
        order = rng(self.seed, STREAM_SUBJECT, step).permutation(len(self.subjects))
        return int(order[slot % len(self.subjects)])

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        step, slot = key
        subject = self.subjects[self.subject_index(step, slot)]
        return make_sample(subject, self.patch, self.head_fraction, self.timesteps, self.with_low, self.seed, step, slot,
                           augment_low=self.augment_low, random_contrast=self.random_contrast)


class StepBatches(Sampler):
    """This process's slots of the global batch, step after step from ``start`` to ``stop``."""

    def __init__(self, start: int, stop: int, batch_size: int, rank: int, world_size: int):
        if batch_size % world_size:
            raise ValueError(f"train.batch_size {batch_size} does not split evenly over {world_size} processes")
        self.start, self.stop, self.rank = start, stop, rank
        self.local = batch_size // world_size

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start, self.stop):
            yield [(step, self.rank * self.local + j) for j in range(self.local)]

    def __len__(self) -> int:
        return max(self.stop - self.start, 0)


def make_loader(dataset: PatchDataset, start: int, stop: int, batch_size: int, rank: int, world_size: int,
                workers: int, pin_memory: bool) -> DataLoader:
    """Batches of this process's slots for steps ``start..stop-1``, prefetched by ``workers`` processes."""
    return DataLoader(dataset, batch_sampler=StepBatches(start, stop, batch_size, rank, world_size),
                      num_workers=workers, pin_memory=pin_memory, persistent_workers=False)


def validation_batch(subjects: list[PreparedSubject], count: int, patch: Sequence[int], t: int, with_low: bool,
                     seed: int) -> dict[str, torch.Tensor]:
    """A fixed batch of ``count`` head-centred patches spread over ``subjects``, all at timestep ``t``."""
    samples = [make_sample(subjects[j % len(subjects)], patch, 1.0, TimestepDraw(t, t), with_low, seed, VALIDATION_STEP, j)
               for j in range(count)]
    return {key: torch.stack([s[key] for s in samples]) for key in samples[0]}
