"""On-the-fly intensity augmentation of the 64 mT side of a bridge training pair (issue 11).

Scanners, sequences and reconstructions change a low-field contrast's intensity curve, gain and
noise more than the simulator's ranges do. Each contrast of each sample gets, independently:
a gamma curve on the [-1, 1] intensities (``((x + 1) / 2) ** gamma * 2 - 1``), a gain about the
range's centre, and additive Gaussian noise; the result is clipped to [-1, 1], as inference's
percentile map clips. The high-field target is never touched.
"""

from __future__ import annotations

import math

import torch

GAMMA = (0.7, 1.4)  # log-uniform
GAIN = (0.9, 1.1)  # uniform, about 0 (the centre of [-1, 1])
NOISE_SD = (0.0, 0.04)  # uniform, in [-1, 1] units (the 64 mT brain-noise sd is about 0.05-0.1 there)


def _uniform(generator: torch.Generator, low: float, high: float, count: int) -> torch.Tensor:
    return low + (high - low) * torch.rand(count, generator=generator)


def augment_low_field(low: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Augmented copy of ``low`` (C, X, Y, Z) in [-1, 1]; one draw per contrast from ``generator``."""
    channels = low.shape[0]
    log_gamma = _uniform(generator, math.log(GAMMA[0]), math.log(GAMMA[1]), channels)
    gain = _uniform(generator, *GAIN, channels)
    noise_sd = _uniform(generator, *NOISE_SD, channels)
    shape = (channels,) + (1,) * (low.dim() - 1)
    unit = ((low + 1.0) / 2.0).clamp(0.0, 1.0) ** log_gamma.exp().view(shape)
    out = (unit * 2.0 - 1.0) * gain.view(shape)
    out = out + noise_sd.view(shape) * torch.randn(low.shape, generator=generator)
    return out.clamp(-1.0, 1.0)
