"""The paper's operators with one timestep per batch element, for training.

:mod:`model.operators` takes one Python-int timestep for the whole tensor (what the sampler
needs); a training batch draws its own ``t`` per sample. These are the same formulas with
``alpha_bar_t`` gathered per sample from the schedule's table (``NoiseSchedule.alpha_bars``,
indexed by the 1-based timestep), tested equal to :func:`model.operators.add_noise` and
:func:`model.operators.estimate_x0`. The table may live on the GPU: nothing here waits for it.
"""

from __future__ import annotations

import torch


def alpha_bar_at(table: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``alpha_bar_t`` per sample (float64, on ``t``'s device) from a schedule's ``alpha_bars`` table."""
    t = torch.as_tensor(t).reshape(-1)
    if t.device.type == "cpu" and (int(t.min()) < 1 or int(t.max()) > len(table) - 1):
        raise ValueError(f"timesteps must lie in 1..{len(table) - 1}, got {t.tolist()}")
    return table.to(t.device)[t.long()]


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.to(like.dtype).reshape((-1,) + (1,) * (like.ndim - 1))


def add_noise(x0: torch.Tensor, noise: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """Eq. 10 per sample: ``sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps``."""
    return _per_sample(alpha_bar.sqrt(), x0) * x0 + _per_sample((1.0 - alpha_bar).sqrt(), x0) * noise


def estimate_x0(x_t: torch.Tensor, noise: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """RemoveNoise as the clean-image estimate (SPEC 3.2), per sample: ``(x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)``."""
    return (x_t - _per_sample((1.0 - alpha_bar).sqrt(), x_t) * noise) / _per_sample(alpha_bar.sqrt(), x_t)
