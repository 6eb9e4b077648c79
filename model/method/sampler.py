"""The samplers: Algorithm 1 of the paper and its ablations (Table 1), as stateless functions, and the
registry the settings name a sampler from (``sampler = "algorithm-1"``).

Each function takes callables that evaluate the networks over the *whole* volume (the windowing
lives in :mod:`model.execution.windows`), the noise schedule and a random generator, and returns the
pseudo high-field volume. Noise is always drawn over the whole volume, once per level.

A new sampler is one function of ``(x0_lf, networks, schedule, generator, steps, hooks)`` registered with
:func:`register_sampler` (see docs/architecture.md): the enhancer, the cost plan, the time budget and the
command line (``--sampler NAME``) take it from the registry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import torch

from .operators import RemoveNoiseVariant, add_noise, remove_noise
from .schedule import NoiseSchedule, sampling_levels

Denoiser = Callable[[torch.Tensor, int], torch.Tensor]  # (x_t, t) -> eps_theta(x_t, t), whole volume
BridgeResidual = Callable[[torch.Tensor], torch.Tensor]  # x -> phi(x), whole volume
LevelCallback = Callable[[int, int], None]  # (levels done, levels in all)
KeepGoing = Callable[[int], bool]  # (next level) -> False to end the chain there (a time budget)
# (step "bridge" or "refine", level, clean-image estimate before, after): for QC reports (model.pipeline.qc)
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
    refinements: int,
    variant: RemoveNoiseVariant = RemoveNoiseVariant.X0,
    on_level: LevelCallback | None = None,
    keep_going: KeepGoing | None = None,
    on_estimate: EstimateCallback | None = None,
) -> torch.Tensor:
    """Algorithm 1, lines 5-9: at each level, re-noise the estimate J times with one noise draw.

    ``levels`` are visited in the given order (the paper: K, K-1, ..., 1); a subset
    (:func:`model.method.schedule.sampling_levels`) is the same algorithm with fewer levels.
    ``keep_going(level)`` (not in the paper; :class:`model.execution.budget.ChainDeadline`) may end the chain
    before a level: the estimate of the last level done is then the result.
    """
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
    bridge_timestep: int,
    refinements: int,
    levels: Sequence[int] | None = None,
    variant: RemoveNoiseVariant = RemoveNoiseVariant.X0,
    on_level: LevelCallback | None = None,
    keep_going: KeepGoing | None = None,
    on_estimate: EstimateCallback | None = None,
) -> torch.Tensor:
    """Algorithm 1 in one of the four ablation modes; returns the pseudo high-field ``x0``.

    ``x0_lf`` is the normalised low-field volume (1, 3, X, Y, Z) in [-1, 1]; ``levels`` default to
    every level K..1 (the paper). K, J and the levels are trusted: :class:`model.config.settings.AlgorithmSettings`
    validates them (and :meth:`~model.config.settings.AlgorithmSettings.check_against` K against the schedule). ``on_estimate`` sees the estimate before and after the bridge and
    after each level (the input is never modified; nothing is copied for it).
    """
    mode = Mode(mode)
    if mode is Mode.IDENTITY:
        return x0_lf.clone()
    if mode.uses_bridge and bridge_residual is None:
        raise ValueError(f"mode '{mode.value}' needs the bridge network")
    if mode.uses_diffusion and denoiser is None:
        raise ValueError(f"mode '{mode.value}' needs the diffusion network")
    levels = sampling_levels(bridge_timestep, bridge_timestep) if levels is None else tuple(levels)

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


@dataclass(frozen=True)
class Networks:
    """The networks over whole volumes (None: not loaded for this mode)."""

    denoiser: Denoiser | None = None
    bridge_residual: BridgeResidual | None = None


@dataclass(frozen=True)
class Steps:
    """What a sampler computes, from validated settings (:class:`model.config.settings.AlgorithmSettings`)."""

    mode: Mode
    bridge_timestep: int  # K
    levels: tuple[int, ...]  # the diffusion levels, top down
    refinements: int  # J
    variant: RemoveNoiseVariant

    @classmethod
    def of(cls, algorithm: Any, levels: Sequence[int]) -> "Steps":
        """From an ``AlgorithmSettings`` and the levels its case plan visits."""
        return cls(algorithm.mode, algorithm.bridge_timestep, tuple(levels), algorithm.refinements, algorithm.remove_noise)


@dataclass(frozen=True)
class Hooks:
    """Progress, a time budget's chain deadline, and the QC reports' view of the estimates."""

    on_level: LevelCallback | None = None
    keep_going: KeepGoing | None = None
    on_estimate: EstimateCallback | None = None


Sampler = Callable[[torch.Tensor, Networks, NoiseSchedule, torch.Generator, Steps, Hooks], torch.Tensor]
SAMPLERS: dict[str, Sampler] = {}  # name -> sampler; the settings' ``sampler`` field names one


def register_sampler(name: str) -> Callable[[Sampler], Sampler]:
    """Decorator: make a sampler selectable by ``name`` (``--sampler NAME``, ``sampler=NAME`` overrides)."""
    def register(fn: Sampler) -> Sampler:
        if name in SAMPLERS and SAMPLERS[name] is not fn:
            raise ValueError(f"a sampler named '{name}' is registered already")
        SAMPLERS[name] = fn
        return fn

    return register


@register_sampler("algorithm-1")
def algorithm_1(x0_lf: torch.Tensor, networks: Networks, schedule: NoiseSchedule, generator: torch.Generator,
                steps: Steps, hooks: Hooks = Hooks()) -> torch.Tensor:
    """The paper's Algorithm 1 (and its ablations by ``steps.mode``): :func:`sample`."""
    return sample(x0_lf, mode=steps.mode, denoiser=networks.denoiser, bridge_residual=networks.bridge_residual,
                  schedule=schedule, generator=generator, bridge_timestep=steps.bridge_timestep,
                  refinements=steps.refinements, levels=steps.levels, variant=steps.variant,
                  on_level=hooks.on_level, keep_going=hooks.keep_going, on_estimate=hooks.on_estimate)
