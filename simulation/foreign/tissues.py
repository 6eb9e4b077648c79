"""Tissue relaxation at both fields: the 3 T literature values and a Cole-Cole law down to 64 mT."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulation.foreign.parameters import (COLE_COLE_CENTRE_MHZ, COLE_COLE_EXPONENT, DEFAULT_RELAXATION_SPREAD,
                                           FIELDS_T, GAMMA_MHZ_PER_T, PD_SPREAD, RELAXATION_SPREAD, TISSUES,
                                           ForeignTissue)


@dataclass(frozen=True)
class Relaxation:
    """One tissue at one field: T1 and T2 (ms, T2 the apparent one in an FSE train where it differs) and PD."""

    t1: float
    t2: float
    pd: float
    fse_t2: float


def cole_cole(frequency_mhz: float) -> float:
    """The normalised Cole-Cole dispersion 1 / (1 + (nu / nu_c)^beta).

    Koenig and Brown 1984 (MRM 1:437) describe tissue proton R1 against Larmor frequency with this form
    (a plateau at low field, a power-law fall around nu_c, a plateau at high field).
    """
    return 1.0 / (1.0 + (frequency_mhz / COLE_COLE_CENTRE_MHZ) ** COLE_COLE_EXPONENT)


def low_field_t1(t1_3t: float, dispersion: float, field_t: float) -> float:
    """T1 (ms) at ``field_t`` tesla from the 3 T value: R1(nu) = R1(3 T) + dR1 [f(nu) - f(nu_3T)].

    f is :func:`cole_cole`; dR1 (1/s) the tissue's dispersion amplitude. The 3 T value anchors the curve
    (Stanisz et al. 2005), so a subject whose tissue relaxes slowly at 3 T does so at 64 mT too.
    """
    nu, nu_3t = GAMMA_MHZ_PER_T * field_t, GAMMA_MHZ_PER_T * FIELDS_T["3T"]
    rate = 1000.0 / t1_3t + dispersion * (cole_cole(nu) - cole_cole(nu_3t))
    return 1000.0 / rate


def relaxation(tissue: ForeignTissue, field: str) -> Relaxation:
    """``tissue`` at ``field`` ("3T" or "64mT"): T1 from :func:`low_field_t1`, T2 scaled by the low-field factor."""
    t1 = tissue.t1_3t if field == "3T" else low_field_t1(tissue.t1_3t, tissue.dispersion, FIELDS_T[field])
    t2 = tissue.t2_3t * (1.0 if field == "3T" else tissue.t2_low_factor)
    return Relaxation(t1=t1, t2=t2, pd=tissue.pd, fse_t2=t2 * tissue.fse_t2_factor)


def subject_tissues(rng: np.random.Generator) -> dict[str, ForeignTissue]:
    """This subject's tissues: T1, T2 and PD times factors uniform in 1 +- spread, drawn in tissue order."""
    drawn = {}
    for name, tissue in TISSUES.items():
        spread = RELAXATION_SPREAD.get(name, DEFAULT_RELAXATION_SPREAD)
        f1, f2 = 1.0 + rng.uniform(-spread, spread, 2)
        fpd = 1.0 + rng.uniform(-PD_SPREAD, PD_SPREAD)
        drawn[name] = ForeignTissue(t1_3t=tissue.t1_3t * f1, t2_3t=tissue.t2_3t * f2, pd=tissue.pd * fpd,
                                    dispersion=tissue.dispersion, t2_low_factor=tissue.t2_low_factor,
                                    fse_t2_factor=tissue.fse_t2_factor)
    return drawn


def relaxation_table(field: str, tissues: dict[str, ForeignTissue] | None = None) -> dict[str, Relaxation]:
    """Every tissue at ``field`` (the nominal tissues unless ``tissues`` is given)."""
    return {name: relaxation(tissue, field) for name, tissue in (tissues or TISSUES).items()}
