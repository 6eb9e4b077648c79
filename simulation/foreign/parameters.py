"""Every number of the foreign simulator, with its source (docs/data-and-metric.md, "The foreign held-out set").

Written independently of the training simulator (``simulation/parameters.py`` is not read): other
literature for the tissues, another field-dependence law for T1, other sequences and another
acquisition model. Units: times in ms, lengths in mm, angles in degrees, frequencies in MHz.
Values marked *assumed* are our choices within the range of clinical practice, not measurements.
"""

from __future__ import annotations

from dataclasses import dataclass

GAMMA_MHZ_PER_T = 42.577  # proton gyromagnetic ratio / 2 pi
FIELDS_T = {"3T": 3.0, "64mT": 0.064}


@dataclass(frozen=True)
class ForeignTissue:
    """One tissue: 3 T relaxation and density, and how T1 and T2 change at 64 mT.

    ``dispersion``: amplitude (1/s) of the tissue's Cole-Cole R1 dispersion (:func:`tissues.low_field_t1`);
    ``t2_low_factor``: T2 at 64 mT over T2 at 3 T; ``fse_t2_factor``: apparent lengthening of T2 in a
    fast-spin-echo train (J-coupled fat protons, Henkelman et al. 1992, JMRI 2:533).
    """

    t1_3t: float
    t2_3t: float
    pd: float
    dispersion: float
    t2_low_factor: float
    fse_t2_factor: float = 1.0


# 3 T relaxation: GM/WM from Stanisz et al. 2005 (MRM 54:507; WM 1084/69 ms, GM 1820/99 ms); fat and
# muscle from Gold et al. 2004 (AJR 183:343; subcutaneous fat 382/68 ms, muscle 1420/32 ms); CSF:
# near-free water, assumed 4000/1800 ms; lesion (demyelinating, WM-like with more free water): assumed.
# PD: brain water content after Neeb et al. 2006 (NeuroImage 31:1156; about 0.69 WM, 0.80 GM), CSF 1;
# lesion and muscle assumed; fat an apparent PD (only its main methylene peak stays on resonance), assumed.
# Low field: Cole-Cole dispersion amplitudes assumed, chosen so that the 64 mT T1s are of the order measured
# at 50-64 mT in vivo (WM about 300 ms, GM about 390 ms); T2 a little longer at low field (less
# susceptibility and diffusion dephasing), factors assumed.
TISSUES: dict[str, ForeignTissue] = {
    "csf": ForeignTissue(t1_3t=4000, t2_3t=1800, pd=1.00, dispersion=0.07, t2_low_factor=1.0),
    "gm": ForeignTissue(t1_3t=1820, t2_3t=99, pd=0.80, dispersion=3.9, t2_low_factor=1.15),
    "wm": ForeignTissue(t1_3t=1084, t2_3t=69, pd=0.69, dispersion=4.7, t2_low_factor=1.2),
    "lesion": ForeignTissue(t1_3t=1500, t2_3t=140, pd=0.78, dispersion=3.4, t2_low_factor=1.15),
    "fat": ForeignTissue(t1_3t=382, t2_3t=68, pd=0.55, dispersion=5.0, t2_low_factor=1.1, fse_t2_factor=2.0),
    "muscle": ForeignTissue(t1_3t=1420, t2_3t=32, pd=0.75, dispersion=5.0, t2_low_factor=1.3),
}
# Cole-Cole shape shared by the tissues (Koenig and Brown 1984, MRM 1:437: tissue R1 dispersions are
# Cole-Cole-like, flat far below and far above a characteristic frequency); centre and exponent assumed.
COLE_COLE_CENTRE_MHZ = 4.0
COLE_COLE_EXPONENT = 0.8
# Per-subject tissue variation: T1, T2 and PD each times a factor uniform in 1 +- these (shared by both fields).
RELAXATION_SPREAD = {"csf": 0.01}  # CSF is water; every other tissue: DEFAULT_RELAXATION_SPREAD
DEFAULT_RELAXATION_SPREAD = 0.08
PD_SPREAD = 0.04


@dataclass(frozen=True)
class ForeignSequence:
    """A pulse sequence.

    ``kind``: "mprage" (inversion-prepared spoiled gradient-echo train), "fse" (fast spin echo) or
    "ir-fse" (inversion-recovery fast spin echo: T1w-IR and FLAIR). ``te``: the effective echo time (the
    echo at the k-space centre); ``etl``/``esp``: echo-train length and spacing; ``flip``: MPRAGE flip angle;
    ``inversion``: the inverted fraction of Mz (1: a perfect inversion).
    """

    kind: str
    tr: float
    te: float = 0.0
    ti: float = 0.0
    etl: int = 1
    esp: float = 0.0
    flip: float = 0.0
    inversion: float = 0.95


# 3 T: ADNI-like MPRAGE (Jack et al. 2008, JMRI 27:685: TR 2300, TI 900, flip 9 deg; echo spacing and
# 176 partitions as commonly run), clinical T2w TSE and 2D FLAIR TSE (timings assumed, typical of 3 T protocols;
# the FLAIR's TI is the one that nulls the nominal CSF under :func:`sequences.ir_fse_longitudinal`).
HIGH_FIELD = {
    "T1": ForeignSequence("mprage", tr=2300, ti=900, etl=176, esp=7.1, flip=9.0, inversion=0.96),
    "T2": ForeignSequence("fse", tr=6000, te=95, etl=16, esp=10.0),
    "FLAIR": ForeignSequence("ir-fse", tr=9000, te=100, ti=2300, etl=16, esp=10.0, inversion=0.96),
}
# 64 mT: inversion-recovery T1w, long-TE T2w and FLAIR FSEs of a portable scanner; the vendor's exact
# timings are not public, these are assumed (long echo spacings: low bandwidth at low field; the FLAIR's TI
# nulls the nominal CSF, the T1w-IR's leaves CSF dark and weak grey/white contrast, as on such scanners).
LOW_FIELD = {
    "T1": ForeignSequence("ir-fse", tr=1500, te=7, ti=500, etl=8, esp=7.0, inversion=0.93),
    "T2": ForeignSequence("fse", tr=2800, te=180, etl=20, esp=12.0),
    "FLAIR": ForeignSequence("ir-fse", tr=4500, te=150, ti=1450, etl=16, esp=12.0, inversion=0.93),
}


@dataclass(frozen=True)
class ForeignAcquisition:
    """How a contrast is acquired at 64 mT: voxel (x, y, z; y the phase-encode, z the slice axis), SNR of
    the mean brain signal at that voxel, the apodisation of the kept k-space, the receive-coil array and
    the residual motion between contrasts (standard deviations per axis)."""

    voxel_mm: tuple[float, float, float]
    snr: float
    apodisation: float = 0.3  # Tukey taper: this outer fraction of the kept k-space is rolled off
    motion_mm: float = 0.7
    motion_deg: float = 0.7


LOW_FIELD_ACQUISITION = {
    "T1": ForeignAcquisition(voxel_mm=(1.6, 1.6, 5.0), snr=12.0),
    "T2": ForeignAcquisition(voxel_mm=(1.6, 1.8, 5.0), snr=9.0),
    "FLAIR": ForeignAcquisition(voxel_mm=(1.6, 1.8, 5.0), snr=10.0),
}
HIGH_FIELD_SNR = 30.0  # 3 T, at 1 mm (assumed); no k-space truncation, no motion (the reference grid)
K_SPACE_PADDING_MM = 16.0  # zero padding around the field of view before the 64 mT k-space is cut


@dataclass(frozen=True)
class CoilArray:
    """Receive array: ``loops`` circular loops of radius ``loop_radius_mm`` on an ellipsoidal helmet
    ``standoff_mm`` outside the head; the combined sensitivity's log is scaled to an SD uniform in
    ``strength`` inside the head."""

    loops: int = 8
    loop_radius_mm: float = 55.0
    standoff_mm: float = 25.0
    position_jitter_mm: float = 10.0
    strength: tuple[float, float] = (0.12, 0.25)


COILS = CoilArray()
# 3 T: centre brightening (dielectric standing wave), 1 + a exp(-r^2 / 2 w^2); a uniform in this range.
DIELECTRIC_AMPLITUDE = (0.04, 0.10)
DIELECTRIC_WIDTH_MM = 55.0


@dataclass(frozen=True)
class ForeignAnatomy:
    """Head shells and the subject's deformation (our own values).

    Shells outward from the closed brain outline: CSF, skull (a ``marrow`` share of its middle third
    fatty diploe), scalp (fat under ``skin_mm`` of skin and galea, muscle-like); thicknesses times factors
    uniform in ``thickness_jitter``. Deformation: affine (rotation, log-scale, shear and translation SDs)
    composed with ``bumps`` (plus Poisson(``extra_bumps``)) Gaussian displacement bumps of width uniform
    in ``bump_width_mm`` and amplitude uniform in ``bump_amplitude_mm`` (at most ``0.3 x width``).
    """

    csf_mm: float = 2.0
    skull_mm: float = 6.5
    marrow: float = 0.5
    scalp_mm: float = 5.5
    skin_mm: float = 2.0
    thickness_jitter: tuple[float, float] = (0.8, 1.2)
    edge_mm: float = 0.6  # partial-volume softness of every shell boundary
    rotation_deg: float = 2.0
    log_scale: float = 0.03
    shear: float = 0.015
    translation_mm: float = 1.5
    bumps: int = 8
    extra_bumps: float = 4.0
    bump_width_mm: tuple[float, float] = (12.0, 30.0)
    bump_amplitude_mm: tuple[float, float] = (1.0, 4.0)


ANATOMY = ForeignAnatomy()


@dataclass(frozen=True)
class ForeignLesions:
    """Confluent periventricular lesions: a thresholded smooth random field inside white matter within
    ``band_mm`` of the ventricles, total volume log-uniform in ``volume_ml``; present with ``probability``."""

    probability: float = 0.5
    band_mm: float = 12.0
    volume_ml: tuple[float, float] = (1.5, 20.0)
    smoothness_mm: float = 3.0
    edge: float = 0.6  # soft edge, in standard deviations of the random field


LESIONS = ForeignLesions()
# Output: 12-bit-like scanner integers; the head's 99.5th percentile maps to a level uniform in this range.
OUTPUT_LEVEL = {"3T": (900.0, 3000.0), "64mT": (300.0, 1500.0)}
