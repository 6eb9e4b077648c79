"""Run configurations: every hyper-parameter of a training run, read from TOML or JSON.

One file describes a run of either network; ``python -m training diffusion`` reads its ``[data]``,
``[train]`` and ``[diffusion]`` tables, ``python -m training bridge`` the ``[data]``, ``[train]``
and ``[bridge]`` ones (each command still checks the whole file). Missing keys take the defaults
below, unknown keys are refused by name, and the resolved configuration is saved beside the
checkpoints as ``config.json``. Relative paths are relative to the working directory.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from model.networks.bridge import BridgeConfig
from model.config.settings import PRECISIONS
from model.networks import NETWORK_NAMES, WINDOW
from model.networks.unet_config import UNetConfig

NETWORKS = NETWORK_NAMES
DATA_KINDS = ("ulf-enc", "simulated")
LESION_CHOICES = ("auto", "always", "never")
VARIATIONS = ("nominal", "training", "shifted")  # as simulation.variation.VARIATIONS (not imported: training data may be real)
DEVICES = ("auto", "cpu", "cuda")
OMITTED_AT_DEFAULT = {"random_contrast": 0.0}  # DataConfig keys written only when set (see DataConfig.to_dict)


@dataclass(frozen=True)
class DataConfig:
    """Where the paired volumes come from and how training patches are cut from them."""

    kind: str = "simulated"  # "ulf-enc": ROOT/<ID>/{3T,64mT}/<ID>_{T1,T2,FLAIR}.nii.gz; "simulated": the simulator
    root: str = ""  # ulf-enc: the data set's root folder
    subjects: int = 8  # simulated: number of subjects (IDs SIM0001..., seeds as `python -m simulation --seed`)
    seed: int = 0  # simulated: the data-set seed
    shape_scale: float = 1.0  # simulated: grid spacing 1/scale mm (1: the real 1 mm grid)
    lesions: str = "auto"  # simulated: auto | always | never
    variation: str = "nominal"  # simulated: nominal | training | shifted (simulation/variation.py)
    low_field_augmentation: bool = False  # bridge: random gamma, gain and noise of the 64 mT patch (training/augment.py)
    random_contrast: float = 0.0  # bridge: share of pairs whose 64 mT side is a randomised-contrast synthesis (training/random_contrast.py)
    cache: str = ""  # folder of prepared (normalised) arrays; "" -> RUN_DIR/data-cache
    validation_fraction: float = 0.1  # share of subjects held out (at least one when there are two or more)
    validation_subjects: tuple[str, ...] = ()  # explicit held-out IDs (override validation_fraction)
    patch: tuple[int, int, int] = WINDOW  # training patch (x, y, z): by default the inference window
    head_fraction: float = 0.9  # share of patches centred on a head voxel (the rest anywhere)
    head_threshold: float = 0.1  # head = any high-field contrast above this fraction of its [-1, 1] range
    workers: int = 2  # data-loader worker processes per training process (0: in the main process)

    def __post_init__(self) -> None:
        _check(self.kind in DATA_KINDS, f"data.kind must be one of {DATA_KINDS}, got {self.kind!r}")
        _check(self.kind != "ulf-enc" or bool(self.root), "data.root is required for data.kind = 'ulf-enc'")
        _check(self.subjects >= 1, f"data.subjects must be at least 1, got {self.subjects}")
        _check(0.1 <= self.shape_scale <= 1.0, f"data.shape_scale must be in [0.1, 1], got {self.shape_scale}")
        _check(self.variation in VARIATIONS, f"data.variation must be one of {VARIATIONS}, got {self.variation!r}")
        _check(self.lesions in LESION_CHOICES, f"data.lesions must be one of {LESION_CHOICES}, got {self.lesions!r}")
        _check(0.0 <= self.validation_fraction < 1.0, f"data.validation_fraction must be in [0, 1), got {self.validation_fraction}")
        _check(len(self.patch) == 3 and min(self.patch) >= 1, f"data.patch needs 3 positive sizes, got {self.patch}")
        _check(0.0 <= self.head_fraction <= 1.0, f"data.head_fraction must be in [0, 1], got {self.head_fraction}")
        _check(0.0 <= self.head_threshold < 1.0, f"data.head_threshold must be in [0, 1), got {self.head_threshold}")
        _check(self.workers >= 0, f"data.workers must be non-negative, got {self.workers}")
        _check(isinstance(self.random_contrast, (int, float)) and not isinstance(self.random_contrast, bool)
               and 0.0 <= self.random_contrast <= 1.0,
               f"data.random_contrast must be a proportion in [0, 1], got {self.random_contrast!r}")

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain values; keys added after runs were recorded are left out at their defaults, so
        the configuration of an earlier run reads (and resumes) as it was saved."""
        out = {f.name: _to_plain(getattr(self, f.name)) for f in dataclasses.fields(self)}
        for name, default in OMITTED_AT_DEFAULT.items():
            if out[name] == default:
                del out[name]
        return out


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, precision and bookkeeping (shared by both networks)."""

    steps: int = 200_000  # optimiser steps (the bridge's identity step does not count separately)
    batch_size: int = 4  # global batch: split evenly over the torchrun processes
    lr: float = 3e-4  # AdamW (docs/method.md: the diffusion network); [diffusion] / [bridge] lr overrides it per network
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.01  # torch's AdamW default (the paper does not state it)
    grad_clip: float = 1.0  # max global gradient norm; 0 switches clipping off
    ema_decay: float = 0.999  # EMA of the weights, warmed up as min(decay, (1 + step) / (10 + step))
    precision: str = "auto"  # auto or bfloat16: bf16 autocast on CUDA and on CPUs with native bfloat16, else float32
    device: str = "auto"  # auto | cpu | cuda
    log_every: int = 50  # training scalars to TensorBoard and metrics.jsonl
    validate_every: int = 1000  # validation metrics and image panels (0: only at the end)
    validation_patches: int = 8  # fixed validation patches (spread over the validation subjects)
    checkpoint_every: int = 1000  # checkpoints (one is always written at the end)
    keep_checkpoints: int = 3  # older ones are deleted
    progress: bool = True  # a progress bar on the first process
    time_limit_minutes: float = 0.0  # stop (with a checkpoint) after this much training time; 0: no limit
    init_weights: str = ""  # a weights folder (manifest.json): start this network from its exported weights (fine-tuning)

    def __post_init__(self) -> None:
        positive = ("steps", "batch_size", "log_every", "validation_patches", "checkpoint_every", "keep_checkpoints")
        for name in positive:
            _check(getattr(self, name) >= 1, f"train.{name} must be at least 1, got {getattr(self, name)}")
        _check(self.lr > 0, f"train.lr must be positive, got {self.lr}")
        _check(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), f"train.betas must be two values in [0, 1), got {self.betas}")
        _check(self.weight_decay >= 0 and self.grad_clip >= 0, "train.weight_decay and train.grad_clip must be non-negative")
        _check(0.0 <= self.ema_decay < 1.0, f"train.ema_decay must be in [0, 1), got {self.ema_decay}")
        _check(self.precision in PRECISIONS, f"train.precision must be one of {PRECISIONS}, got {self.precision!r}")
        _check(self.precision != "float16", "train.precision = float16 is for inference on a T4; training has no loss "
                                            "scaling: use auto or bfloat16")
        _check(self.device in DEVICES, f"train.device must be one of {DEVICES}, got {self.device!r}")
        _check(self.validate_every >= 0, "train.validate_every must be non-negative")
        _check(self.time_limit_minutes >= 0, f"train.time_limit_minutes must be non-negative, got {self.time_limit_minutes}")


@dataclass(frozen=True)
class DiffusionTraining:
    """The high-field epsilon-network and its loss (docs/method.md: the diffusion network, eqs. 4-7)."""

    network: UNetConfig = field(default_factory=UNetConfig)
    lr: float | None = None  # this network's learning rate; absent (None): train.lr
    timesteps: int = 1000  # T of the cosine schedule
    t_min: int = 1  # training timesteps: t = t_min + floor((t_max - t_min + 1) * u ** t_power), u ~ U[0, 1)
    t_max: int = 1000  # (t_power 1: uniform over t_min..t_max; 2: density ~ 1/sqrt(t - t_min), dense at low t)
    t_power: float = 1.0
    ssim_weight: float = 0.1  # lambda_ssim (the paper does not state its weights)
    sobel_weight: float = 0.1  # lambda_sobel
    ssim_window: int = 7  # Gaussian SSIM window (sigma 1.5), as the challenge's 7-voxel window
    sobel_scale: float = 1.0  # multiplies the integer 3x3x3 Sobel kernels before tanh (1/32: unit-slope gradients)
    validation_timesteps: tuple[int, ...] = (100, 400, 700)

    def __post_init__(self) -> None:
        _check(self.lr is None or self.lr > 0, f"diffusion.lr must be positive, got {self.lr}")
        _check(self.timesteps == self.network.num_timesteps,
               f"diffusion.timesteps ({self.timesteps}) must equal diffusion.network.num_timesteps ({self.network.num_timesteps})")
        _check(1 <= self.t_min <= self.t_max <= self.timesteps,
               f"diffusion needs 1 <= t_min <= t_max <= timesteps, got {self.t_min}, {self.t_max}, {self.timesteps}")
        _check(self.t_power > 0, f"diffusion.t_power must be positive, got {self.t_power}")
        _check(self.ssim_weight >= 0 and self.sobel_weight >= 0, "diffusion.ssim_weight and sobel_weight must be non-negative")
        _check(self.ssim_window >= 3 and self.ssim_window % 2 == 1, f"diffusion.ssim_window must be odd and >= 3, got {self.ssim_window}")
        _check(all(1 <= t <= self.timesteps for t in self.validation_timesteps) and self.validation_timesteps,
               f"diffusion.validation_timesteps must lie in 1..{self.timesteps}")


@dataclass(frozen=True)
class BridgeTraining:
    """The Swin UNETR bridge and its losses (docs/method.md: the bridge, eqs. 8, 9)."""

    network: BridgeConfig = field(default_factory=BridgeConfig)
    lr: float | None = None  # this network's learning rate; absent (None): train.lr
    timesteps: int = 1000  # T of the cosine schedule
    t_min: int = 250  # t is drawn uniformly from t_min..t_max (inclusive)
    t_max: int = 750
    latent_weight: float = 1.0  # || x_t^HF_hat - x_t^HF ||^2
    x0_weight: float = 1.0  # || RemoveNoise(x_t^HF_hat, eps, t) - x0^HF ||^2
    identity_weight: float = 1.0  # the separate identity step || phi(x_t^HF) ||^2 (eq. 9); 0 skips it
    validation_timestep: int = 400  # K: the paper's latent MSE is 0.32 without and 0.05 with the bridge

    def __post_init__(self) -> None:
        _check(self.lr is None or self.lr > 0, f"bridge.lr must be positive, got {self.lr}")
        _check(1 <= self.t_min <= self.t_max <= self.timesteps,
               f"bridge needs 1 <= t_min <= t_max <= timesteps, got {self.t_min}, {self.t_max}, {self.timesteps}")
        _check(min(self.latent_weight, self.x0_weight, self.identity_weight) >= 0, "bridge loss weights must be non-negative")
        _check(1 <= self.validation_timestep <= self.timesteps, f"bridge.validation_timestep must lie in 1..{self.timesteps}")


@dataclass(frozen=True)
class RunConfig:
    """A whole run: the seed, the data, the optimisation and both networks' sections."""

    seed: int = 0  # network initialisation, the subject split, every patch, timestep and noise draw
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    diffusion: DiffusionTraining = field(default_factory=DiffusionTraining)
    bridge: BridgeTraining = field(default_factory=BridgeTraining)

    def network_config(self, network: str) -> UNetConfig | BridgeConfig:
        """The architecture configuration of ``network`` (diffusion or bridge)."""
        return self.section(network).network

    def learning_rate(self, network: str) -> float:
        """The AdamW learning rate of ``network``: its section's ``lr`` when set, else ``train.lr``."""
        lr = self.section(network).lr
        return self.train.lr if lr is None else lr

    def section(self, network: str) -> DiffusionTraining | BridgeTraining:
        """The ``[diffusion]`` or ``[bridge]`` table."""
        _check(network in NETWORKS, f"network must be one of {NETWORKS}, got {network!r}")
        return getattr(self, network)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict of every field (tuples become lists)."""
        return _to_plain(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunConfig":
        """Inverse of :meth:`to_dict`; missing keys take defaults, unknown keys raise ``ValueError``.

        A network table without ``window`` gets the data patch as its window.
        """
        data = dict(data)
        data_section = data.get("data", {})
        patch = list(data_section.get("patch", DataConfig.patch) if isinstance(data_section, Mapping) else DataConfig.patch)
        for name in NETWORKS:
            section = data.get(name, {})
            if isinstance(section, Mapping) and isinstance(section.get("network", {}), Mapping):
                data[name] = {**section, "network": {"window": patch, **section.get("network", {})}}
        return _from_plain(cls, data, "")


def load_config(path: Path) -> RunConfig:
    """Read a ``.toml`` or ``.json`` run configuration."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"configuration file not found: {path}")
    text = path.read_text()
    try:
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not valid {'TOML' if path.suffix.lower() == '.toml' else 'JSON'}: {error}") from None
    try:
        return RunConfig.from_dict(data)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from None


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        if hasattr(value, "to_dict") and not isinstance(value, RunConfig):
            return value.to_dict()
        return {f.name: _to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [_to_plain(v) for v in value]
    return value


def _from_plain(cls: type, data: Any, where: str) -> Any:
    """Build dataclass ``cls`` from nested dicts, refusing unknown keys with their full name."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{where or 'the configuration'} must be a table, got {data!r}")
    if hasattr(cls, "from_dict") and cls is not RunConfig:
        try:
            return cls.from_dict(dict(data))
        except (TypeError, ValueError) as error:
            raise ValueError(f"{where}: {error}") from None
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        names = ", ".join(f"{where}.{k}" if where else k for k in unknown)
        raise ValueError(f"unknown configuration key(s) {names}; valid keys here: {', '.join(sorted(known))}")
    nested = {"data": DataConfig, "train": TrainConfig, "diffusion": DiffusionTraining, "bridge": BridgeTraining,
              "network": UNetConfig if cls is DiffusionTraining else BridgeConfig}
    values = {}
    for name, value in data.items():
        if name in nested:
            values[name] = _from_plain(nested[name], value, f"{where}.{name}" if where else name)
        else:
            values[name] = tuple(value) if isinstance(value, list) else value
    try:
        return cls(**values)
    except TypeError as error:
        raise ValueError(f"{where or 'the configuration'}: {error}") from None
