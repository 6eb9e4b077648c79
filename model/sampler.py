"""Algorithm 1 of the paper (SPEC 3.5) and its ablations (SPEC 3.6), as stateless functions.

Each function takes callables that evaluate the networks over the *whole* volume (the windowing
lives in :mod:`model.windows`), the noise schedule and a random generator, and returns the
pseudo high-field volume. Noise is always drawn over the whole volume, once per level.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import Enum

import torch

from model.operators import RemoveNoiseVariant, add_noise, remove_noise
from model.schedule import NoiseSchedule, sampling_levels

Denoiser = Callable[[torch.Tensor, int], torch.Tensor]  # (x_t, t) -> eps_theta(x_t, t), whole volume
BridgeResidual = Callable[[torch.Tensor], torch.Tensor]  # x -> phi(x), whole volume
LevelCallback = Callable[[int, int], None]  # (levels done, levels in all)
KeepGoing = Callable[[int], bool]  # (next level) -> False to end the chain there (a time budget)
# (step "bridge" or "refine", level, clean-image estimate before, after): for QC reports (model.qc)
EstimateCallback = Callable[[str, int, torch.Tensor, torch.Tensor], None]


class Mode(str, Enum):
    """The four configurations of the paper's ablation study (Table 1)."""

    IDENTITY = "identity"  #: 1: the low-field input as output
    BRIDGE = "bridge"  #: 2: bridge, then remove the known noise; no diffusion
    DIFFUSION = "diffusion"  #: 3: Algorithm 1 with phi = 0
    FULL = "full"  #: 4: Algorithm 1

    @property
    def uses_bridge(self) -> bool:
        """Whether this mode evaluates the bridge network."""
        return self in (Mode.BRIDGE, Mode.FULL)

    @property
    def uses_diffusion(self) -> bool:
        """Whether this mode evaluates the diffusion network."""
        return self in (Mode.DIFFUSION, Mode.FULL)


def gaussian_like(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One standard normal draw of ``x``'s shape over the whole volume."""
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def bridge_to_high_field(
    x0_lf: torch.Tensor,
    noise: torch.Tensor,
    bridge_timestep: int,
    bridge_residual: BridgeResidual | None,
    schedule: NoiseSchedule,
    variant: RemoveNoiseVariant = RemoveNoiseVariant.X0,
) -> torch.Tensor:
    """Algorithm 1, lines 1-4: noise the low-field volume to K, bridge it (eq. 8), remove the noise.

    With ``bridge_residual=None`` the bridge is the identity (ablation 3).
    """
    x_k_lf = add_noise(x0_lf, noise, bridge_timestep, schedule)
    x_k_hf = x_k_lf if bridge_residual is None else x_k_lf + bridge_residual(x_k_lf)
    return remove_noise(x_k_hf, noise, bridge_timestep, schedule, variant)


def refine_with_diffusion(
    x0: torch.Tensor,
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    generator: torch.Generator,
    *,
    levels: Sequence[int],
    refinements: int = 3,
    variant: RemoveNoiseVariant = RemoveNoiseVariant.X0,
    on_level: LevelCallback | None = None,
    keep_going: KeepGoing | None = None,
    on_estimate: EstimateCallback | None = None,
) -> torch.Tensor:
    """Algorithm 1, lines 5-9: at each level, re-noise the estimate J times with one noise draw.

    ``levels`` are visited in the given order (the paper: K, K-1, ..., 1); a subset
    (:func:`model.schedule.sampling_levels`) is the same algorithm with fewer levels.
    ``keep_going(level)`` (not in the paper; :class:`model.budget.ChainDeadline`) may end the chain
    before a level: the estimate of the last level done is then the result.
    """
    if refinements < 1:
        raise ValueError(f"the refinement count J must be at least 1, got {refinements}")
    for done, level in enumerate(levels, start=1):
        if keep_going is not None and not keep_going(level):
            break
        noise, before = gaussian_like(x0, generator), x0
        for _ in range(refinements):
            x_level = add_noise(x0, noise, level, schedule)
            x0 = remove_noise(x_level, denoiser(x_level, level), level, schedule, variant)
        if on_estimate is not None:
            on_estimate("refine", level, before, x0)
        if on_level is not None:
            on_level(done, len(levels))
    return x0


def sample(
    x0_lf: torch.Tensor,
    *,
    mode: Mode,
    denoiser: Denoiser | None,
    bridge_residual: BridgeResidual | None,
    schedule: NoiseSchedule,
    generator: torch.Generator,
    bridge_timestep: int = 400,
    refinements: int = 3,
    levels: Sequence[int] | None = None,
    variant: RemoveNoiseVariant = RemoveNoiseVariant.X0,
    on_level: LevelCallback | None = None,
    keep_going: KeepGoing | None = None,
    on_estimate: EstimateCallback | None = None,
) -> torch.Tensor:
    """Algorithm 1 in one of the four ablation modes; returns the pseudo high-field ``x0``.

    ``x0_lf`` is the normalised low-field volume (1, 3, X, Y, Z) in [-1, 1]; ``levels`` default to
    every level K..1 (the paper). ``on_estimate`` sees the estimate before and after the bridge and
    after each level (the input is never modified; nothing is copied for it).
    """
    mode = Mode(mode)
    if mode is Mode.IDENTITY:
        return x0_lf.clone()
    if not 1 <= bridge_timestep <= schedule.num_timesteps:
        raise ValueError(f"bridge timestep K={bridge_timestep} outside 1..{schedule.num_timesteps}")
    if mode.uses_bridge and bridge_residual is None:
        raise ValueError(f"mode '{mode.value}' needs the bridge network")
    if mode.uses_diffusion and denoiser is None:
        raise ValueError(f"mode '{mode.value}' needs the diffusion network")
    levels = sampling_levels(bridge_timestep, bridge_timestep) if levels is None else tuple(levels)
    if any(not 1 <= level <= bridge_timestep for level in levels):
        raise ValueError(f"levels must lie in 1..K={bridge_timestep}")

    noise = gaussian_like(x0_lf, generator)
    x0 = bridge_to_high_field(
        x0_lf, noise, bridge_timestep, bridge_residual if mode.uses_bridge else None, schedule, variant
    )
    if on_estimate is not None:
        on_estimate("bridge", bridge_timestep, x0_lf, x0)
    if not mode.uses_diffusion:
        return x0
    return refine_with_diffusion(
        x0, denoiser, schedule, generator, levels=levels, refinements=refinements, variant=variant, on_level=on_level,
        keep_going=keep_going,
        on_estimate=on_estimate,
    )
