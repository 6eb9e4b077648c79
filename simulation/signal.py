"""Signal equations (docs/data-and-metric.md) and per-subject tissue parameters."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from simulation.parameters import (CONTRASTS, HIGH_FIELD_SEQUENCES, LOW_FIELD_SEQUENCES, PD_JITTER_SD,
                                   RELAXATION_JITTER_SD, TISSUES, Sequence, Tissue)


def csf_null_inversion_time(t1_csf: float, tr: float) -> float:
    """The inversion time (ms) that nulls a tissue of longitudinal relaxation ``t1_csf`` at repetition ``tr``.

    Solves 1 - 2 exp(-TI/T1) + exp(-TR/T1) = 0.
    """
    return float(t1_csf * np.log(2.0 / (1.0 + np.exp(-tr / t1_csf))))


def signal(tissue: Tissue, field: str, sequence: Sequence) -> float:
    """Noise-free signal of a pure voxel of ``tissue`` at ``field`` for ``sequence``.

    * mprage: PD * max(0, 1 - 2 e^{-TI/T1} + e^{-TR/T1})
    * fse:    PD * (1 - e^{-TR/T1}) * e^{-TE/T2}
    * flair:  PD * |1 - 2 e^{-TI/T1} + e^{-TR/T1}| * e^{-TE/T2}, TI nulling the nominal CSF when unset
    """
    t1, t2, pd = tissue.t1(field), tissue.t2(field), tissue.pd
    if sequence.kind == "mprage":
        return pd * max(0.0, 1 - 2 * np.exp(-sequence.ti / t1) + np.exp(-sequence.tr / t1))
    if sequence.kind == "fse":
        return pd * (1 - np.exp(-sequence.tr / t1)) * np.exp(-sequence.te / t2)
    if sequence.kind == "flair":
        ti = sequence.ti if sequence.ti is not None else csf_null_inversion_time(TISSUES["csf"].t1(field), sequence.tr)
        return pd * abs(1 - 2 * np.exp(-ti / t1) + np.exp(-sequence.tr / t1)) * np.exp(-sequence.te / t2)
    raise ValueError(f"unknown sequence kind {sequence.kind!r}")


def jittered_tissues(rng: np.random.Generator, relaxation_sd: float | None = None) -> dict[str, Tissue]:
    """This subject's tissue parameters: each T1, T2 and PD times exp(N(0, sd)), shared by both fields.

    ``relaxation_sd`` replaces the nominal T1/T2 jitter of every tissue but CSF (None: nominal).
    """
    tissues = {}
    for name, tissue in TISSUES.items():
        sd = RELAXATION_JITTER_SD[name] if relaxation_sd is None or name == "csf" else relaxation_sd
        f1, f2 = np.exp(rng.normal(0.0, sd, 2))
        fpd = np.exp(rng.normal(0.0, PD_JITTER_SD))
        tissues[name] = replace(tissue, t1_3t=tissue.t1_3t * f1, t1_64mt=tissue.t1_64mt * f1,
                                t2_3t=tissue.t2_3t * f2, t2_64mt=tissue.t2_64mt * f2, pd=tissue.pd * fpd)
    return tissues


def sequences(field: str) -> dict[str, Sequence]:
    """The three sequences of a field strength, by contrast."""
    return HIGH_FIELD_SEQUENCES if field == "3T" else LOW_FIELD_SEQUENCES


def contrast_volumes(fractions: np.ndarray, names: tuple[str, ...], tissues: dict[str, Tissue],
                     field: str, field_sequences: dict[str, Sequence] | None = None) -> np.ndarray:
    """Noise-free (3, x, y, z) T1w, T2w and FLAIR volumes: tissue fractions weighted by pure-tissue signals.

    ``field_sequences`` replaces the field's nominal sequences (None: :func:`sequences`).
    """
    chosen = sequences(field) if field_sequences is None else field_sequences
    weights = np.array([[signal(tissues[name], field, chosen[c]) for name in names] for c in CONTRASTS],
                       dtype=np.float32)
    volumes = np.empty((len(CONTRASTS),) + fractions.shape[:3], dtype=np.float32)
    for index in range(len(CONTRASTS)):
        np.dot(fractions, weights[index], out=volumes[index])
    return volumes
