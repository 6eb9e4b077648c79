"""The U-Net's configuration: widths, levels, attention, and the per-axis down-sampling of anisotropic windows
(:class:`model.networks.unet.MPUNet3D` builds the network from it)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..method.schedule import DEFAULT_TIMESTEPS
from . import WINDOW

Triple = tuple[int, int, int]


# ---------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------


def down_factors_for(window: Sequence[int], num_levels: int, min_size: int) -> tuple[Triple, ...]:
    """Per-axis down-sampling factors (1 or 2) between consecutive levels.

    Going from level ``l`` to ``l + 1``, an axis is halved only while its size at level
    ``l`` is at least ``2 * min_size``; sizes at the next level are ``ceil(size / f)``.
    For a 128x128x32 window and ``min_size=8`` the levels are 128x128x32 -> 64x64x16 ->
    32x32x8 -> 16x16x8: z stops halving before x and y.
    """
    size = [int(s) for s in window]
    factors = []
    for _ in range(num_levels - 1):
        step = tuple(2 if s >= 2 * min_size else 1 for s in size)
        size = [math.ceil(s / f) for s, f in zip(size, step)]
        factors.append(step)
    return tuple(factors)  # type: ignore[return-value]


def _as_int_tuple(value: Any, name: str) -> tuple[int, ...]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise TypeError(f"UNetConfig.{name} must be a sequence of ints, got {value!r}")
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(f"UNetConfig.{name} must be a sequence of ints, got {value!r}") from None
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        raise TypeError(f"UNetConfig.{name} must contain ints only, got {value!r}")
    return items


@dataclass(frozen=True)
class UNetConfig:
    """Hyper-parameters of :class:`MPUNet3D`; the same config always builds the same network.

    Fields (lists are accepted and stored as tuples):

    * ``in_channels`` / ``out_channels``: image channels ([T1, T2, FLAIR] -> epsilon).
    * ``model_channels``: base width; level ``l`` has ``model_channels * channel_mult[l]``.
    * ``channel_mult``: one multiplier per resolution level (finest first).
    * ``num_blocks``: residual blocks per level in the encoder (an int means the same for
      every level); the decoder has one more per level, as in EDM2.
    * ``attention_levels``: indices of levels with self-attention in every block; negative
      indices count from the coarsest (default ``(-1,)``: the coarsest level only).
    * ``channels_per_head``: attention heads get this many channels (at least one head).
    * ``window``: the training/inference window (x, y, z); with ``min_size`` it fixes the
      per-level down-sampling factors (see :func:`down_factors_for`).
    * ``num_timesteps``: T; the network is conditioned on ``c = t / T``.
    * ``fourier_scale``: standard deviation of the Fourier frequencies (cycles per unit of
      ``c``); 16 resolves neighbouring timesteps of a 1000-step schedule.
    * ``fourier_seed``: seed of the fixed Fourier frequencies and phases.
    * ``embedding_mult``: timestep-embedding width in units of ``model_channels``.
    * ``dropout``: dropout probability inside residual branches (training only).
    * ``residual_balance`` / ``concat_balance``: the ``t`` of ``mp_sum`` (EDM2: 0.3) and of
      ``mp_cat`` for skips (EDM2: 0.5).
    * ``activation_clip``: activations are clamped to +-this after each block (EDM2: 256).
    """

    in_channels: int = 3
    out_channels: int = 3
    model_channels: int = 16
    channel_mult: tuple[int, ...] = (1, 2, 4, 8)
    num_blocks: tuple[int, ...] | int = 2
    attention_levels: tuple[int, ...] = (-1,)
    channels_per_head: int = 64
    window: tuple[int, int, int] = WINDOW
    min_size: int = 8
    num_timesteps: int = DEFAULT_TIMESTEPS
    fourier_scale: float = 16.0
    fourier_seed: int = 0
    embedding_mult: int = 4
    dropout: float = 0.0
    residual_balance: float = 0.3
    concat_balance: float = 0.5
    activation_clip: float = 256.0

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        set_("channel_mult", _as_int_tuple(self.channel_mult, "channel_mult"))
        if not self.channel_mult or min(self.channel_mult) < 1:
            raise ValueError(f"UNetConfig.channel_mult must be non-empty positive ints, got {self.channel_mult}")
        num_levels = len(self.channel_mult)
        if isinstance(self.num_blocks, int) and not isinstance(self.num_blocks, bool):
            set_("num_blocks", (self.num_blocks,) * num_levels)
        set_("num_blocks", _as_int_tuple(self.num_blocks, "num_blocks"))
        if len(self.num_blocks) != num_levels or min(self.num_blocks) < 0:
            raise ValueError(
                f"UNetConfig.num_blocks needs {num_levels} non-negative ints (one per level), got {self.num_blocks}"
            )
        set_("attention_levels", _as_int_tuple(self.attention_levels, "attention_levels"))
        for level in self.attention_levels:
            if not -num_levels <= level < num_levels:
                raise ValueError(f"UNetConfig.attention_levels: level {level} out of range for {num_levels} levels")
        set_("window", _as_int_tuple(self.window, "window"))
        if len(self.window) != 3 or min(self.window) < 1:
            raise ValueError(f"UNetConfig.window must be 3 positive ints (x, y, z), got {self.window}")
        for name in ("in_channels", "out_channels", "model_channels", "channels_per_head", "min_size",
                     "num_timesteps", "embedding_mult"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"UNetConfig.{name} must be a positive int, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"UNetConfig.dropout must be in [0, 1), got {self.dropout}")
        for name in ("residual_balance", "concat_balance"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"UNetConfig.{name} must be in [0, 1], got {getattr(self, name)}")

    # -- derived quantities ------------------------------------------------------------

    @property
    def num_levels(self) -> int:
        return len(self.channel_mult)

    @property
    def level_channels(self) -> tuple[int, ...]:
        """Channel width of every level, finest first."""
        return tuple(self.model_channels * m for m in self.channel_mult)

    @property
    def embedding_channels(self) -> int:
        return self.model_channels * self.embedding_mult

    @property
    def attention_level_set(self) -> frozenset[int]:
        """``attention_levels`` resolved to non-negative level indices."""
        return frozenset(level % self.num_levels for level in self.attention_levels)

    @property
    def down_factors(self) -> tuple[Triple, ...]:
        """Per-axis factors (x, y, z) of each level transition; ``num_levels - 1`` entries."""
        return down_factors_for(self.window, self.num_levels, self.min_size)

    @property
    def total_factor(self) -> Triple:
        """Product of all down-sampling factors per axis: inputs are padded to a multiple of it."""
        total = [1, 1, 1]
        for step in self.down_factors:
            total = [a * b for a, b in zip(total, step)]
        return tuple(total)  # type: ignore[return-value]

    @property
    def level_shapes(self) -> tuple[Triple, ...]:
        """Spatial shape of every level for one ``window``."""
        shapes = [tuple(self.window)]
        for step in self.down_factors:
            shapes.append(tuple(math.ceil(s / f) for s, f in zip(shapes[-1], step)))
        return tuple(shapes)  # type: ignore[return-value]

    def num_heads(self, channels: int) -> int:
        return max(1, channels // self.channels_per_head)

    # -- serialisation -----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict of all fields (tuples become lists)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "UNetConfig":
        """Inverse of :meth:`to_dict`; missing keys take their defaults, unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"UNetConfig.from_dict: unknown key(s) {unknown}; valid keys are {sorted(known)}"
            )
        return cls(**dict(data))


def tiny_config(**overrides: Any) -> UNetConfig:
    """A very small config for tests (two levels, 8 base channels, 32x32x16 window)."""
    base = dict(model_channels=8, channel_mult=(1, 2), num_blocks=1, window=(32, 32, 16), channels_per_head=8)
    base.update(overrides)
    return UNetConfig(**base)
