"""Every number the simulator uses, in one place (docs/data-and-metric.md).

Units: times in ms, lengths in mm, angles in degrees, proton density (PD) relative to CSF.
Calibration knobs: the low-field acquisition (SNR, bias, misregistration, distortion), the 3 T
MPRAGE inversion time and the 64 mT T2w echo time were tuned so that the identity baseline (the
64 mT volume scored as the prediction of the 3 T one) lands where the real challenge pairs do
(masked SSIM 0.50-0.65, the challenge's per-voxel PSNR 15-20 dB). Measured: SSIM 0.557, PSNR
18.8 dB over 10 subjects; the table and what each knob does are in ``docs/data-and-metric.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

from model.volumes.layouts import CONTRASTS


@dataclass(frozen=True)
class Tissue:
    """Relaxation times at both field strengths and the proton density of one tissue."""

    t1_3t: float
    t1_64mt: float
    t2_3t: float
    t2_64mt: float
    pd: float

    def t1(self, field: str) -> float:
        """T1 (ms) at ``field`` ("3T" or "64mT")."""
        return self.t1_3t if field == "3T" else self.t1_64mt

    def t2(self, field: str) -> float:
        """T2 (ms) at ``field`` ("3T" or "64mT")."""
        return self.t2_3t if field == "3T" else self.t2_64mt


# The order is the order of the tissue stack everywhere in the package.
# WM/GM/CSF: docs/data-and-metric.md table (3 T T1: Wright 2008; 64 mT T1: the Rooney 2007 fit T1 = A (gamma B0)^B).
# Lesion, fat and muscle: assumed literature-like values (lesion: longer T1/T2 than WM, so bright
# on T2w and FLAIR; fat: short T1, bright on every contrast as in clinical FSE/MPRAGE; its PD is
# an apparent one, lowered so that scalp fat is about 1.5x white matter on the 3 T T1w).
# Cortical bone and air carry no signal: whatever fraction of a voxel no tissue claims is signal-free.
TISSUES: dict[str, Tissue] = {
    "csf": Tissue(t1_3t=4300, t1_64mt=4300, t2_3t=2000, t2_64mt=2000, pd=1.00),
    "gm": Tissue(t1_3t=1600, t1_64mt=305, t2_3t=80, t2_64mt=100, pd=0.86),
    "wm": Tissue(t1_3t=840, t1_64mt=204, t2_3t=65, t2_64mt=80, pd=0.77),
    "lesion": Tissue(t1_3t=1350, t1_64mt=420, t2_3t=125, t2_64mt=150, pd=0.86),
    "fat": Tissue(t1_3t=380, t1_64mt=160, t2_3t=130, t2_64mt=110, pd=0.70),
    "muscle": Tissue(t1_3t=1400, t1_64mt=230, t2_3t=40, t2_64mt=45, pd=0.70),
}
TISSUE_NAMES = tuple(TISSUES)

# Per-subject tissue-parameter jitter: each tissue's T1, T2 and PD are multiplied by exp(N(0, sd)),
# the same factor at both fields (a tissue that relaxes slowly at 3 T does so at 64 mT too).
# CSF is nearly pure water and varies little; FLAIR's inversion time is set for the nominal CSF T1,
# so CSF is nulled up to its small jitter (6 % would leave CSF at about 20 % of white matter).
RELAXATION_JITTER_SD = {name: 0.01 if name == "csf" else 0.06 for name in TISSUES}
PD_JITTER_SD = 0.03


@dataclass(frozen=True)
class Sequence:
    """A pulse sequence: ``kind`` is "mprage", "fse" or "flair"; ``ti=None`` nulls CSF (FLAIR)."""

    kind: str
    tr: float
    te: float = 0.0
    ti: float | None = None


# 3 T: T1w MPRAGE-like, T2w FSE, FLAIR with CSF nulled (TI from the nominal CSF T1).
HIGH_FIELD_SEQUENCES = {
    "T1": Sequence("mprage", tr=2300, ti=1150),
    "T2": Sequence("fse", tr=5000, te=100),
    "FLAIR": Sequence("flair", tr=9000, te=140),
}
# 64 mT, Hyperfine-like: T1w is a short-TR FSE (weak GM/WM contrast), T2w a long-TE FSE, FLAIR nulls CSF.
LOW_FIELD_SEQUENCES = {
    "T1": Sequence("fse", tr=400, te=8),
    "T2": Sequence("fse", tr=2500, te=220),
    "FLAIR": Sequence("flair", tr=4000, te=160),
}


@dataclass(frozen=True)
class Acquisition:
    """How one scan is acquired and brought onto the 1 mm high-field grid.

    * ``voxel_mm``: acquired voxel size (x, y, z), z the axial slice direction; the point spread
      function is a Gaussian whose FWHM equals the voxel size along each axis.
    * ``snr``: mean noise-free brain signal over the Rician noise sigma, at the acquired voxel.
    * ``bias_strength``: standard deviation of the log bias field inside the head (0.1 = about 10 %).
    * ``bias_degree``: degree of the random polynomial that makes the bias field.
    * ``misregistration_mm`` / ``misregistration_deg``: standard deviation of the residual rigid
      translation (per axis) and rotation (per axis) left after co-registration to the 3 T scan.
    * ``distortion_rms_mm`` / ``distortion_spacing_mm``: a smooth non-rigid geometric distortion
      (low-field gradient non-linearity) that rigid co-registration cannot remove: RMS displacement
      and B-spline control-point spacing.
    * ``interpolation``: "linear" or "bspline", used to resample the scan back onto the 1 mm grid.
    * ``psf_factor``: the point spread's FWHM is ``voxel_mm`` times this (1: the voxel itself).
    """

    voxel_mm: tuple[float, float, float]
    snr: float
    bias_strength: float
    bias_degree: int = 2
    misregistration_mm: float = 0.0
    misregistration_deg: float = 0.0
    distortion_rms_mm: float = 0.0
    distortion_spacing_mm: float = 60.0
    interpolation: str = "linear"
    psf_factor: float = 1.0


# 3 T: the reference. 1 mm isotropic, mild noise, mild bias, no misregistration (it defines the grid).
HIGH_FIELD_ACQUISITION = {
    c: Acquisition(voxel_mm=(1.0, 1.0, 1.0), snr=40.0, bias_strength=0.05, bias_degree=2) for c in CONTRASTS
}
# 64 mT: Hyperfine-like thick axial slices, low SNR, a stronger bias field, a small misregistration
# and distortion. These are the calibration knobs (see the module docstring).
LOW_FIELD_ACQUISITION = {
    contrast: Acquisition(voxel_mm=voxel, snr=snr, bias_strength=0.2, bias_degree=3, misregistration_mm=0.6,
                          misregistration_deg=0.8, distortion_rms_mm=0.7, distortion_spacing_mm=60.0)
    for contrast, voxel, snr in (("T1", (1.5, 1.5, 5.0), 16.0), ("T2", (1.5, 1.5, 5.0), 10.0),
                                 ("FLAIR", (1.6, 1.6, 5.0), 14.0))
}


@dataclass(frozen=True)
class Deformation:
    """Per-subject geometry: a small random affine about the grid centre and a smooth B-spline warp."""

    rotation_sd_deg: float = 3.0
    scale_sd: float = 0.04
    translation_sd_mm: float = 2.0
    control_spacing_mm: float = 40.0
    warp_rms_mm: float = 2.5
    field_spacing_mm: float = 4.0  # the dense displacement field is sampled this finely


DEFORMATION = Deformation()


@dataclass(frozen=True)
class HeadModel:
    """Non-brain head tissue built as shells around the brain (thicknesses in mm, mean values).

    From the closed brain outline outwards: extra-axial CSF, inner skull table (no signal),
    diploe (``diploe_fat`` of it fatty marrow), outer table (no signal), subcutaneous fat, skin and
    muscle. Each subject multiplies the skull and scalp thicknesses by a factor drawn uniformly from
    ``thickness_jitter``. Below the brain the skull fades into neck muscle over ``neck_fade_mm``.
    """

    outline_smoothing_mm: float = 4.0
    outline_threshold: float = 0.3
    csf: float = 1.5
    inner_table: float = 1.8
    diploe: float = 2.5
    outer_table: float = 1.7
    fat: float = 3.5
    skin: float = 2.5
    diploe_fat: float = 0.6
    thickness_jitter: tuple[float, float] = (0.8, 1.25)
    neck_fade_mm: float = 20.0
    neck_shrink: float = 0.3


HEAD = HeadModel()


@dataclass(frozen=True)
class Lesions:
    """Optional white-matter lesions: ellipsoids placed in deep white matter."""

    probability: float = 0.4  # chance of lesions when ``generate_subject(lesions=None)``
    mean_count: float = 5.0  # Poisson mean, plus one
    radius_mm: tuple[float, float] = (1.5, 6.0)
    min_white_matter: float = 0.95  # centres only where the WM fraction is at least this


LESIONS = Lesions()

# Written volumes are scaled so that the noise-free 99th percentile inside the head is about this,
# times a per-scan gain exp(N(0, OUTPUT_GAIN_SD)): scanners have arbitrary intensity units.
OUTPUT_LEVEL = 1000.0
OUTPUT_GAIN_SD = 0.1
