"""Signal equations of the foreign simulator: each returns a pure tissue's signal along the phase-encode axis.

The signal of a line of k-space depends on when it is acquired in the echo (or gradient-echo) train, so a
sequence gives, per tissue, a *profile*: the signed signal against kappa = |k_y| / k_max (0 at the
k-space centre, 1 at the edge). Images are made by weighting each tissue's k-space with its profile
(:mod:`simulation.foreign.scanner`): T2 decay along an FSE train blurs, T1 recovery along an MPRAGE
train filters. Signs are kept (inversion recovery); the image is the magnitude of the sum, so partial-volume
voxels of tissues of opposite sign cancel, as on a magnitude-reconstructed scanner image.
"""

from __future__ import annotations

import numpy as np

from simulation.foreign.parameters import ForeignSequence
from simulation.foreign.tissues import Relaxation

MPRAGE_CYCLES = 8  # repetitions of the MPRAGE cycle simulated to reach the steady state


def fse_recovery(t1: float, tr: float, train_ms: float) -> float:
    """Mz (over M0) before each FSE excitation: 1 - exp(-(TR - T_train) / T1).

    Bernstein, King and Zhou 2004 (Handbook of MRI Pulse Sequences, ch. 16, RARE): the train leaves Mz
    near zero, so longitudinal recovery only runs for the repetition time less the train's duration.
    """
    return 1.0 - np.exp(-max(tr - train_ms, 0.0) / t1)


def ir_fse_longitudinal(t1: float, sequence: ForeignSequence) -> float:
    """Signed Mz (over M0) at the excitation of an inversion-recovery FSE (T1w-IR, FLAIR).

    Before the inversion Mz = 1 - exp(-T_rec / T1), T_rec = TR - TI - T_train (recovery after the train
    that saturated it); the pulse leaves -q Mz (q: the inverted fraction); then free recovery for TI:
    Mz(TI) = 1 - (1 + q Mz_pre) exp(-TI / T1). Bloch equations as in Bydder and Young 1985 (J Comput Assist
    Tomogr 9:659, the STIR/IR signal), with the train's saturation instead of a complete recovery.
    """
    train = sequence.etl * sequence.esp
    before = 1.0 - np.exp(-max(sequence.tr - sequence.ti - train, 0.0) / t1)
    return 1.0 - (1.0 + sequence.inversion * before) * np.exp(-sequence.ti / t1)


def echo_times(sequence: ForeignSequence, kappa: np.ndarray) -> np.ndarray:
    """(2, n) echo times (ms) of the lines at ``kappa``, for the two halves of k-space.

    Centric ordering (the effective TE is in the first half of the train): TE grows from TE_eff with
    kappa over the rest of the train on both sides. Linear ordering (TE_eff mid-train): the lines at kappa
    are read TE_eff -+ kappa x half the train, one half early, one late (Mulkern et al. 1990, MRI 8:557).
    Echo times are clipped to the train [ESP, ETL x ESP].
    """
    first, last = sequence.esp, sequence.etl * sequence.esp
    if sequence.te - first < 0.5 * (last - first):
        late = sequence.te + kappa * (last - sequence.te)
        times = np.stack([late, late])
    else:
        half = 0.5 * (last - first)
        times = np.stack([sequence.te - kappa * half, sequence.te + kappa * half])
    return np.clip(times, first, last)


def echo_train_decay(t2: float, sequence: ForeignSequence, kappa: np.ndarray) -> np.ndarray:
    """The k-space T2 filter of an FSE train: the mean over the two halves of exp(-TE(kappa) / T2).

    Mulkern et al. 1990 (MRI 8:557): in RARE each line carries the T2 decay of its own echo, which
    filters k-space; decaying high frequencies blur short-T2 tissue (echo-train blurring).
    """
    return np.exp(-echo_times(sequence, kappa) / t2).mean(axis=0)


def mprage_readout(t1: float, sequence: ForeignSequence) -> np.ndarray:
    """Signed Mz (over M0) before each of the ETL readout pulses of an MPRAGE cycle, in the steady state.

    Mugler and Brookeman 1990 (MRM 15:152) and Deichmann et al. 2000 (NeuroImage 12:112): inversion
    (Mz -> -q Mz), recovery to the first readout (the k-space centre, mid-train, falls at TI), ETL
    pulses of flip alpha every ESP (Mz -> Mz cos alpha, then recovery), recovery to the end of TR.
    Solved here by running the cycle MPRAGE_CYCLES times from Mz = 1 (it converges in two or three).
    """
    n, esp = sequence.etl, sequence.esp
    cos_flip = np.cos(np.deg2rad(sequence.flip))
    start = sequence.ti - 0.5 * n * esp
    tail = sequence.tr - start - n * esp
    if start < 0 or tail < 0:
        raise ValueError(f"MPRAGE timing does not fit: TI {sequence.ti}, {n} x {esp} ms, TR {sequence.tr}")
    decay, step = np.exp(-start / t1), np.exp(-esp / t1)
    mz, readout = 1.0, np.empty(n)
    for _ in range(MPRAGE_CYCLES):
        mz = 1.0 - (1.0 + sequence.inversion * mz) * decay
        for pulse in range(n):
            readout[pulse] = mz
            mz = 1.0 - (1.0 - mz * cos_flip) * step
        mz = 1.0 - (1.0 - mz) * np.exp(-tail / t1)
    return readout


def mprage_profile(t1: float, sequence: ForeignSequence, kappa: np.ndarray) -> np.ndarray:
    """The MPRAGE signal (over M0 sin alpha) of the lines at ``kappa``: linear ordering, the centre mid-train,
    the lines at kappa read kappa x half the train before and after it (mean of the two)."""
    readout = mprage_readout(t1, sequence)
    centre = 0.5 * (sequence.etl - 1)
    offsets = kappa * centre
    early = np.interp(centre - offsets, np.arange(sequence.etl), readout)
    late = np.interp(centre + offsets, np.arange(sequence.etl), readout)
    return 0.5 * (early + late)


def tissue_profile(tissue: Relaxation, sequence: ForeignSequence, kappa: np.ndarray) -> np.ndarray:
    """Signed signal of a pure voxel of ``tissue`` against ``kappa`` (PD times the sequence's weighting)."""
    kappa = np.asarray(kappa, dtype=np.float64)
    if sequence.kind == "mprage":
        weighting = mprage_profile(tissue.t1, sequence, kappa) * np.sin(np.deg2rad(sequence.flip))
    elif sequence.kind == "fse":
        weighting = fse_recovery(tissue.t1, sequence.tr, sequence.etl * sequence.esp) * \
            echo_train_decay(tissue.fse_t2, sequence, kappa)
    elif sequence.kind == "ir-fse":
        weighting = ir_fse_longitudinal(tissue.t1, sequence) * echo_train_decay(tissue.fse_t2, sequence, kappa)
    else:
        raise ValueError(f"unknown sequence kind {sequence.kind!r}")
    return tissue.pd * weighting


def centre_signals(table: dict[str, Relaxation], sequence: ForeignSequence) -> dict[str, float]:
    """Each tissue's signal at the k-space centre (the contrast of large uniform regions)."""
    return {name: float(tissue_profile(tissue, sequence, np.zeros(1))[0]) for name, tissue in table.items()}
