"""The cosine noise schedule (docs/method.md: noise schedule; Nichol & Dhariwal 2021, used by the paper's eq. 1).

Convention used everywhere in this project: timesteps are 1-based, ``t = 1..T``, and the
arrays below are indexed by ``t`` directly, with index 0 holding the clean level
(``alpha_bar[0] = 1``, ``beta[0] = 0``). MONAI's ``DDPMScheduler(schedule="cosine")`` uses
0-based arrays: its ``alphas_cumprod[i]`` is ``alpha_bar[i + 1]`` here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

DEFAULT_TIMESTEPS = 1000
COSINE_OFFSET = 0.008
MAX_BETA = 0.999
LEVEL_SPACINGS = ("uniform", "quadratic")


@dataclass(frozen=True)
class NoiseSchedule:
    """``beta_t``, ``alpha_t = 1 - beta_t`` and ``alpha_bar_t = prod_{s<=t} alpha_s`` for t = 0..T.

    All three are float64 tensors of length ``T + 1`` indexed by the timestep itself.
    """

    betas: torch.Tensor
    alphas: torch.Tensor
    alpha_bars: torch.Tensor
    name: str = "cosine"  # how the betas were made (:data:`SCHEDULES`); recorded in the weights manifest

    @property
    def num_timesteps(self) -> int:
        """T, the number of noise levels (index T is the noisiest)."""
        return len(self.betas) - 1

    def alpha_bar_at(self, t: "int | torch.Tensor") -> "float | torch.Tensor":
        """``alpha_bar_t``: a Python float for one level, or per sample (float64, on ``t``'s device)
        for a tensor of levels (a training batch draws one ``t`` per sample)."""
        if isinstance(t, int):
            return self.coefficients(t)[2]
        t = torch.as_tensor(t).reshape(-1)
        if t.device.type == "cpu" and (int(t.min()) < 1 or int(t.max()) > self.num_timesteps):
            raise ValueError(f"timesteps must lie in 1..{self.num_timesteps}, got {t.tolist()}")
        return self.alpha_bars.to(t.device)[t.long()]  # no host synchronisation for CUDA timesteps

    def coefficients(self, t: int) -> tuple[float, float, float, float]:
        """``(alpha_t, beta_t, alpha_bar_t, 1 - alpha_bar_t)`` of level ``t`` as Python floats."""
        if not 1 <= t <= self.num_timesteps:
            raise ValueError(f"timestep {t} outside 1..{self.num_timesteps}")
        alpha_bar = float(self.alpha_bars[t])
        return float(self.alphas[t]), float(self.betas[t]), alpha_bar, 1.0 - alpha_bar


def cosine_schedule(num_timesteps: int = DEFAULT_TIMESTEPS, s: float = COSINE_OFFSET) -> NoiseSchedule:
    """The cosine schedule: ``alpha_bar(t) = f(t)/f(0)``, ``f(t) = cos^2(((t/T)+s)/(1+s) * pi/2)``.

    ``beta_t = 1 - alpha_bar(t)/alpha_bar(t-1)`` is clipped to at most 0.999 and ``alpha_bar`` is
    then recomputed as the cumulative product of ``alpha_t = 1 - beta_t`` (docs/method.md: noise schedule), which is
    what makes the last levels differ from the closed form.
    """
    if num_timesteps < 1:
        raise ValueError("the schedule needs at least one timestep")
    steps = torch.arange(num_timesteps + 1, dtype=torch.float64)
    f = torch.cos(((steps / num_timesteps) + s) / (1 + s) * math.pi / 2) ** 2
    closed_form = f / f[0]
    betas = torch.clamp(1 - closed_form[1:] / closed_form[:-1], max=MAX_BETA)
    alphas = 1 - betas
    alpha_bars = torch.cumprod(alphas, dim=0)
    one = torch.ones(1, dtype=torch.float64)
    return NoiseSchedule(
        betas=torch.cat([torch.zeros(1, dtype=torch.float64), betas]),
        alphas=torch.cat([one, alphas]),
        alpha_bars=torch.cat([one, alpha_bars]),
    )


SCHEDULES = {"cosine": cosine_schedule}  # name -> f(num_timesteps): what a weights manifest may name


def named_schedule(name: str, num_timesteps: int) -> NoiseSchedule:
    """The schedule a weights manifest names (``{"name": "cosine", "timesteps": 1000}``)."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown noise schedule '{name}' (known: {', '.join(SCHEDULES)})")
    return SCHEDULES[name](num_timesteps)


def sampling_levels(bridge_timestep: int, count: int, spacing: str = "uniform") -> tuple[int, ...]:
    """The diffusion levels Algorithm 1 visits, from K down (docs/method.md: Algorithm 1; the paper: every level K..1).

    ``count`` levels out of K..1, placed ``"uniform"`` (K - floor(i K / n), i = 0..n-1: for a count that
    divides K the strided K, K - K/n, ...) or ``"quadratic"`` (round(K (j/n)^2), j = n..1: dense near
    t = 0, where the last estimate is made; DDIM's "quad" spacing, not in the paper). Levels that round
    alike are visited once, so a quadratic placement may give fewer than ``count``.
    """
    if not 1 <= count <= bridge_timestep:
        raise ValueError(f"the level count must be in 1..K={bridge_timestep}, got {count}")
    if spacing not in LEVEL_SPACINGS:
        raise ValueError(f"level spacing must be one of {LEVEL_SPACINGS}, got {spacing!r}")
    k, n = bridge_timestep, count
    if spacing == "uniform":
        return tuple(k - (i * k) // n for i in range(n))
    return tuple(sorted({max(1, round(k * (j / n) ** 2)) for j in range(1, n + 1)}, reverse=True))
