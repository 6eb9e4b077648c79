"""Training subjects: where they come from, their one-time preparation, and the subject split.

Two sources, one result. ``ulf-enc`` reads the challenge's own layout
(``ROOT/<ID>/3T/<ID>_{T1,T2,FLAIR}.nii.gz``, ``ROOT/<ID>/64mT/...``) through
:func:`model.pipeline.enhance_case.load_case`, i.e. exactly as inference reads a case (grid checks, resampling to
1 mm, the per-contrast [-1, 1] map of :mod:`model.volumes.intensity`). ``simulated`` runs
:func:`simulation.generate_subject` (IDs and seeds as ``python -m simulation --seed S``) and applies
the same intensity map. Either way each subject is prepared once into a cache folder as
``high.npy``, ``low.npy`` (when there is a low field), ``head.npy`` (flat indices of head voxels),
``labels.npy`` (uint8 tissue labels, only when ``data.random_contrast`` > 0: the simulator's dominant
tissue per voxel, or for real data classes of the 3 T intensities) and ``info.json``; training then
memory-maps them, so subjects are read lazily, page by page, and shared by every process on the
machine. A cache entry is rebuilt when its sources change, or when labels are needed and it has none
(an entry with labels also serves a configuration that needs none).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model.volumes.layouts import CONTRASTS
from training.config import DataConfig

FORMAT = 2  # 2: high-field targets clipped at model.volumes.intensity.OUTPUT_CEILING instead of 1
LABELS_FORMAT = 1  # the labels.npy of an entry (part of the cache key only when labels are needed)
SIMULATED_PREFIX = "SIM"
LESIONS = {"auto": None, "always": True, "never": False}


def list_subjects(config: DataConfig) -> list[str]:
    """Subject IDs of the configured source, sorted."""
    if config.kind == "simulated":
        from simulation.dataset import subject_id

        return [subject_id(SIMULATED_PREFIX, n) for n in range(1, config.subjects + 1)]
    from model.volumes.layouts import reference_subjects

    root = Path(config.root)
    if not root.is_dir():
        raise ValueError(f"data.root {root} is not a folder")
    subjects = reference_subjects(root)
    if not subjects:
        raise ValueError(f"no subjects under {root}: expected ROOT/<ID>/3T/<ID>_{{T1,T2,FLAIR}}.nii.gz")
    return subjects


def split_subjects(subjects: list[str], config: DataConfig, seed: int) -> dict[str, list[str]]:
    """Subject-level train/validation split: the explicit IDs, or a seeded random share (at least one)."""
    if config.validation_subjects:
        missing = sorted(set(config.validation_subjects) - set(subjects))
        if missing:
            raise ValueError(f"data.validation_subjects not in the data set: {', '.join(missing)}")
        validation = sorted(config.validation_subjects)
    else:
        count = round(config.validation_fraction * len(subjects))
        if config.validation_fraction > 0 and len(subjects) >= 2:
            count = max(count, 1)
        order = np.random.default_rng([seed, 0x5B1]).permutation(len(subjects))
        validation = sorted(subjects[i] for i in order[:count])
    train = [s for s in subjects if s not in validation]
    if not train:
        raise ValueError("no training subjects left after the validation split")
    return {"train": train, "validation": validation}


def _source_key(config: DataConfig, subject: str) -> dict[str, Any]:
    """What the prepared arrays of ``subject`` depend on; a change triggers a rebuild."""
    from model.volumes.intensity import HIGH_PERCENTILE, LOW_PERCENTILE

    key: dict[str, Any] = {"format": FORMAT, "percentiles": [LOW_PERCENTILE, HIGH_PERCENTILE],
                           "head_threshold": config.head_threshold}
    if config.kind == "simulated":
        from simulation.dataset import subject_seed

        number = int(subject[len(SIMULATED_PREFIX):])
        key["simulated"] = {"seed": subject_seed(config.seed, number), "data_set_seed": config.seed, "number": number,
                            "shape_scale": config.shape_scale, "lesions": config.lesions}
        if config.variation != "nominal":  # nominal caches keep their key (and stay valid)
            key["simulated"]["variation"] = config.variation
    else:
        files = {}
        for path in _ulf_enc_files(Path(config.root), subject).values():
            if path.is_file():
                stat = path.stat()
                files[str(path.resolve())] = [stat.st_size, stat.st_mtime_ns]
        key["files"] = files
    if needs_labels(config):  # configurations without random_contrast keep their key (and their caches)
        key["labels"] = {"format": LABELS_FORMAT, "source": label_source(config)}
    return key


def label_source(config: DataConfig) -> str:
    """Where the tissue labels of randomised-contrast pairs come from."""
    from training.random_contrast import DERIVED_CLASSES

    if config.kind == "simulated":
        return "simulator"  # simulation.generate_subject's labels: the dominant tissue per voxel
    return f"3T intensity classes ({DERIVED_CLASSES})"  # training.random_contrast.intensity_classes


def needs_labels(config: DataConfig) -> bool:
    """Whether the prepared subjects must carry tissue labels (for randomised-contrast bridge pairs)."""
    return config.random_contrast > 0


def _ulf_enc_files(root: Path, subject: str) -> dict[str, Path]:
    from model.volumes.layouts import HIGH_FIELD, LOW_FIELD, volume_path

    return {f"{field}/{c}": volume_path(root, subject, field, c) for field in (HIGH_FIELD, LOW_FIELD) for c in CONTRASTS}


def _load_ulf_enc(root: Path, subject: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Normalised (3, X, Y, Z) high and (when present) low field of one subject, as inference reads them."""
    from model.volumes.layouts import HIGH_FIELD, LOW_FIELD
    from model.pipeline.enhance_case import load_case
    from model.volumes.layouts import Case
    from model.volumes.images import grid_differences, image_to_array

    files = _ulf_enc_files(root, subject)
    loaded = {}
    for field in (HIGH_FIELD, LOW_FIELD):
        inputs = {c: files[f"{field}/{c}"] for c in CONTRASTS}
        if field == LOW_FIELD and not any(p.exists() for p in inputs.values()):
            continue
        loaded[field] = load_case(Case(case_id=f"{subject} {field}", inputs=inputs, outputs={}))
    high = _high_field_target([image_to_array(loaded[HIGH_FIELD].working[c]) for c in CONTRASTS], subject)
    if LOW_FIELD not in loaded:
        return high, None
    differences = grid_differences(loaded[HIGH_FIELD].working["T1"], loaded[LOW_FIELD].working["T1"])
    if differences:
        raise ValueError(f"{subject}: the {HIGH_FIELD} and {LOW_FIELD} grids differ ({'; '.join(differences)}); "
                         "training needs co-registered pairs")
    return high, loaded[LOW_FIELD].network_input


def _load_simulated(config: DataConfig, subject: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """A simulated pair, normalised per contrast with the map inference uses, its labels and voxel size (mm)."""
    from model.volumes.intensity import normalise_contrasts
    from simulation import generate_subject, subject_variation

    spec = _source_key(config, subject)["simulated"]
    simulated = generate_subject(spec["seed"], lesions=LESIONS[config.lesions], shape_scale=config.shape_scale,
                                 variation=subject_variation(spec["seed"], config.variation))
    low, _ = normalise_contrasts(list(simulated.low), [f"{subject} 64mT {c}" for c in CONTRASTS])
    voxel_mm = float(np.mean(simulated.spacing))
    return _high_field_target(list(simulated.high), subject), low, simulated.labels.astype(np.uint8), voxel_mm


def _high_field_target(volumes: list[np.ndarray], subject: str) -> np.ndarray:
    """The normalised 3 T volumes as training targets: the inference map, clipped at OUTPUT_CEILING, not 1,
    so that the networks learn the 3 T's bright tail (model/volumes/intensity.py says why)."""
    from model.volumes.intensity import OUTPUT_CEILING, normalise_contrasts

    return normalise_contrasts(volumes, [f"{subject} 3T {c}" for c in CONTRASTS], ceiling=OUTPUT_CEILING)[0]


def head_indices(high: np.ndarray, threshold: float) -> np.ndarray:
    """Flat indices of head voxels: any contrast above ``threshold`` of the [-1, 1] range (all voxels if none)."""
    head = (high > -1.0 + 2.0 * threshold).any(axis=0)
    indices = np.flatnonzero(head)
    return indices if indices.size else np.arange(head.size)


def prepare_subject(config: DataConfig, subject: str, cache: Path) -> Path:
    """Make sure ``cache/<subject>`` holds this subject's current arrays; returns the folder."""
    folder = Path(cache) / subject
    key = _source_key(config, subject)
    info_path = folder / "info.json"
    if info_path.is_file() and _serves(json.loads(info_path.read_text()).get("key"), key):
        return folder
    labels, voxel_mm = None, 1.0  # ulf-enc volumes are read onto the 1 mm grid
    if config.kind == "simulated":
        high, low, labels, voxel_mm = _load_simulated(config, subject)
    else:
        high, low = _load_ulf_enc(Path(config.root), subject)
    head = head_indices(high, config.head_threshold)
    if not needs_labels(config):
        labels = None
    elif labels is None:
        from training.random_contrast import intensity_classes

        labels = intensity_classes(high, head)
    partial = folder.with_name(f".{subject}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    np.save(partial / "high.npy", high.astype(np.float32))
    if low is not None:
        np.save(partial / "low.npy", low.astype(np.float32))
    np.save(partial / "head.npy", head)
    if labels is not None:
        np.save(partial / "labels.npy", labels.astype(np.uint8))
    info = {"key": key, "subject": subject, "shape": list(high.shape[1:]), "low_field": low is not None}
    if labels is not None:  # (entries without labels keep the info.json they always had)
        info.update(labels=True, voxel_mm=voxel_mm)
    (partial / "info.json").write_text(json.dumps(info, indent=2) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(partial, folder)
    return folder


def _serves(stored: Any, key: dict[str, Any]) -> bool:
    """Whether an entry prepared under ``stored`` serves ``key``: the same key, or the same one plus labels
    that ``key`` does not need."""
    if stored == key:
        return True
    return isinstance(stored, dict) and "labels" not in key and {k: v for k, v in stored.items() if k != "labels"} == key


def prepare_subjects(config: DataConfig, subjects: list[str], cache: Path, rank: int = 0, world_size: int = 1) -> None:
    """Prepare this process's share of ``subjects`` (every ``world_size``-th); the caller then waits for all."""
    for subject in subjects[rank::world_size]:
        prepare_subject(config, subject, cache)


def prepare_in_processes(config: DataConfig, processes: int) -> Path:
    """Prepare every subject of ``config`` into its cache (``data.cache``, required) with ``processes`` workers."""
    import multiprocessing

    if not config.cache:
        raise ValueError("data.cache must name a folder to prepare into (the runs then share it)")
    if processes < 1:
        raise ValueError(f"--processes must be at least 1, got {processes}")
    cache, subjects = Path(config.cache), list_subjects(config)
    if processes == 1:
        prepare_subjects(config, subjects, cache)
        return cache
    context = multiprocessing.get_context("spawn")  # no forked torch/ITK thread pools
    with context.Pool(processes) as pool:
        pool.starmap(prepare_subjects, [(config, subjects, cache, rank, processes) for rank in range(processes)])
    return cache


@dataclass
class PreparedSubject:
    """One prepared subject, memory-mapped on first use (so it pickles cheaply into loader workers)."""

    folder: Path
    _arrays: dict[str, Any] | None = None

    def _open(self) -> dict[str, Any]:
        if self._arrays is None:
            arrays = {name: np.load(self.folder / f"{name}.npy", mmap_mode="r") for name in ("high", "head")}
            for name in ("low", "labels"):
                if (self.folder / f"{name}.npy").is_file():
                    arrays[name] = np.load(self.folder / f"{name}.npy", mmap_mode="r")
            self._arrays = arrays
        return self._arrays

    def __getstate__(self) -> dict[str, Any]:
        return {"folder": self.folder, "_arrays": None}

    @property
    def labels(self) -> np.ndarray | None:
        """uint8 (X, Y, Z) tissue labels (0: no signal), when prepared with them."""
        return self._open().get("labels")

    @property
    def voxel_mm(self) -> float:
        """The grid spacing in mm (recorded with the labels; 1 otherwise)."""
        arrays = self._open()
        if "voxel_mm" not in arrays:
            arrays["voxel_mm"] = float(json.loads((self.folder / "info.json").read_text()).get("voxel_mm", 1.0))
        return arrays["voxel_mm"]

    def label_reference(self) -> tuple[np.ndarray, int]:
        """The labels on the coarse strided grid of :func:`training.random_contrast.reference_stride` (read
        once per process, about 32k voxels), and the stride."""
        from training.random_contrast import reference_stride

        arrays = self._open()
        if "label_reference" not in arrays:
            stride = reference_stride(self.labels.shape)
            arrays["label_reference"] = (np.ascontiguousarray(self.labels[::stride, ::stride, ::stride]), stride)
        return arrays["label_reference"]

    @property
    def high(self) -> np.ndarray:
        return self._open()["high"]

    @property
    def low(self) -> np.ndarray | None:
        return self._open().get("low")

    @property
    def head(self) -> np.ndarray:
        return self._open()["head"]


def open_subjects(cache: Path, subjects: list[str], need_low: bool) -> list[PreparedSubject]:
    """The prepared subjects, checking that each has a low field when ``need_low``."""
    opened = []
    for subject in subjects:
        info = json.loads((Path(cache) / subject / "info.json").read_text())
        if need_low and not info["low_field"]:
            raise ValueError(f"{subject}: no 64mT volumes; the bridge trains on low/high-field pairs")
        opened.append(PreparedSubject(Path(cache) / subject))
    return opened


def provenance(config: DataConfig, split: dict[str, list[str]]) -> dict[str, Any]:
    """What the manifest records about the training data."""
    out: dict[str, Any] = {"kind": config.kind, "split": split, "patch": list(config.patch),
                           "head_fraction": config.head_fraction, "head_threshold": config.head_threshold}
    out["random_contrast"] = {"proportion": config.random_contrast}  # of the bridge's training pairs
    if needs_labels(config):  # what was drawn, and from which labels
        from training.random_contrast import RANGES

        out["random_contrast"].update(labels=label_source(config),
                                      ranges={k: list(v) if isinstance(v, tuple) else v for k, v in RANGES.items()})
    if config.kind == "simulated":
        out["simulated"] = {"subjects": config.subjects, "data_set_seed": config.seed,
                            "shape_scale": config.shape_scale, "lesions": config.lesions,
                            "variation": config.variation,
                            "low_field_augmentation": config.low_field_augmentation}
    else:
        out["root"] = str(Path(config.root).resolve())
    return out
