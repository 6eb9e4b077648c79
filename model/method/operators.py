"""The paper's two operators, ``AddNoise`` (eq. 10) and ``RemoveNoise`` (eq. 11; docs/method.md: the two operators).

``RemoveNoise`` has two variants. The paper prints the DDPM posterior mean (eq. 11), but its
Algorithm 1 treats the result as the clean image and re-noises it; ablation 2 ("removing the added
noise perfectly") only holds for the clean-image estimate. So the default is the x0 estimate (the
inverse of eq. 10) and the literal eq. 11 is kept as a selectable option.
"""

from __future__ import annotations

import math
from enum import Enum

import torch

from .schedule import NoiseSchedule


class RemoveNoiseVariant(str, Enum):
    """Which reading of the paper's RemoveNoise to use."""

    X0 = "x0"  #: the clean-image estimate, inverse of eq. 10 (default)
    POSTERIOR_MEAN = "posterior-mean"  #: the literal eq. 11


Timestep = int | torch.Tensor  # one level for the whole tensor (sampling), or one per sample (training)


def _sqrt(value: float | torch.Tensor, like: torch.Tensor) -> float | torch.Tensor:
    """``sqrt(value)`` as a float, or per sample as ``like``'s dtype shaped (N, 1, ..., 1) to broadcast."""
    if isinstance(value, float):
        return math.sqrt(value)
    return value.sqrt().to(like.dtype).reshape((-1,) + (1,) * (like.ndim - 1))


def add_noise(x0: torch.Tensor, noise: torch.Tensor, t: Timestep, schedule: NoiseSchedule) -> torch.Tensor:
    """Eq. 10: ``AddNoise(x, eps, t) = sqrt(alpha_bar_t) x + sqrt(1 - alpha_bar_t) eps``."""
    alpha_bar = schedule.alpha_bar_at(t)
    return _sqrt(alpha_bar, x0) * x0 + _sqrt(1.0 - alpha_bar, x0) * noise


def estimate_x0(x_t: torch.Tensor, noise: torch.Tensor, t: Timestep, schedule: NoiseSchedule) -> torch.Tensor:
    """The clean-image estimate: ``(x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)``.

    The exact inverse of :func:`add_noise` for the same noise (docs/method.md: the two operators, the default RemoveNoise;
    also the x0-hat of the training losses, docs/method.md: the diffusion network, the bridge).
    """
    alpha_bar = schedule.alpha_bar_at(t)
    return (x_t - _sqrt(1.0 - alpha_bar, x_t) * noise) / _sqrt(alpha_bar, x_t)


def posterior_mean(x_t: torch.Tensor, noise: torch.Tensor, t: int, schedule: NoiseSchedule) -> torch.Tensor:
    """Eq. 11 (= eq. 3): ``(x_t - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t)``."""
    alpha, beta, _, one_minus = schedule.coefficients(t)
    return (x_t - beta / math.sqrt(one_minus) * noise) / math.sqrt(alpha)


def remove_noise(
    x_t: torch.Tensor,
    noise: torch.Tensor,
    t: int,
    schedule: NoiseSchedule,
    variant: RemoveNoiseVariant = RemoveNoiseVariant.X0,
) -> torch.Tensor:
    """The paper's ``RemoveNoise(x_t, eps, t)`` in the chosen reading (see module docstring)."""
    if RemoveNoiseVariant(variant) is RemoveNoiseVariant.X0:
        return estimate_x0(x_t, noise, t, schedule)
    return posterior_mean(x_t, noise, t, schedule)
