"""Per-subject simulator parameters drawn from documented ranges (issue 11: training data that generalises).

The nominal simulator (``parameters.py``) gives every subject the same acquisition, sequences and
anatomy statistics: a bridge trained on it learns that one mapping. Here each subject draws its own
parameters, uniformly from :data:`TRAINING_RANGES`; :data:`SHIFTED_RANGES` lie outside them (lower
SNR, thicker slices, stronger bias, more atrophy, other 64 mT sequence timings, ...) and make the
*shifted* held-out set, which measures what the networks do on data unlike anything they saw.

A :class:`SubjectVariation` holds the drawn values; :meth:`SubjectVariation.low_field_acquisition`,
:meth:`low_field_sequences`, :meth:`deformation`, :meth:`lesions` apply them to the nominal
parameters. ``generate_subject(variation=None)`` keeps the nominal simulator bit for bit.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace

import numpy as np

from simulation.parameters import (DEFORMATION, LESIONS, LOW_FIELD_ACQUISITION, LOW_FIELD_SEQUENCES, Acquisition,
                                   Deformation, Lesions, Sequence)

VARIATIONS = ("nominal", "training", "shifted")
FLAIR_IN_PLANE_EXTRA_MM = 0.1  # the FLAIR's in-plane voxel is this much larger than T1w/T2w's (as nominally)


@dataclass(frozen=True)
class SubjectVariation:
    """One subject's simulator parameters (the nominal simulator's values by default).

    * ``snr_factor``: multiplies each contrast's nominal 64 mT SNR (T1w 16, T2w 10, FLAIR 14).
    * ``bias_strength``: standard deviation of the 64 mT log bias field.
    * ``in_plane_mm`` / ``slice_mm``: the acquired 64 mT voxel (FLAIR in-plane 0.1 mm larger).
    * ``blur_factor``: widens the point spread beyond the voxel (FWHM = voxel x factor).
    * ``relaxation_jitter_sd``: per-tissue T1/T2 jitter (log-normal sd; CSF keeps 0.01).
    * ``misregistration_factor``: multiplies the residual misregistration and distortion.
    * ``warp_rms_mm``: RMS of the subject's smooth anatomical warp.
    * ``atrophy``: share of grey/white matter next to CSF turned into CSF (wider sulci, larger ventricles).
    * ``lesion_probability`` / ``lesion_count``: white-matter lesions (Poisson mean count).
    * ``t1_tr_ms``, ``t2_te_ms``, ``flair_te_ms``: the 64 mT sequence timings that set its contrast.
    """

    snr_factor: float = 1.0
    bias_strength: float = LOW_FIELD_ACQUISITION["T1"].bias_strength
    in_plane_mm: float = LOW_FIELD_ACQUISITION["T1"].voxel_mm[0]
    slice_mm: float = LOW_FIELD_ACQUISITION["T1"].voxel_mm[2]
    blur_factor: float = 1.0
    relaxation_jitter_sd: float = 0.06
    misregistration_factor: float = 1.0
    warp_rms_mm: float = DEFORMATION.warp_rms_mm
    atrophy: float = 0.0
    lesion_probability: float = LESIONS.probability
    lesion_count: float = LESIONS.mean_count
    t1_tr_ms: float = LOW_FIELD_SEQUENCES["T1"].tr
    t2_te_ms: float = LOW_FIELD_SEQUENCES["T2"].te
    flair_te_ms: float = LOW_FIELD_SEQUENCES["FLAIR"].te

    def to_dict(self) -> dict[str, float]:
        """The drawn values (for the data set's manifest)."""
        return {f.name: float(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @property
    def nominal(self) -> bool:
        """True when these are exactly the nominal simulator's parameters."""
        return self == NOMINAL

    def low_field_acquisition(self, contrast: str) -> Acquisition:
        """The 64 mT acquisition of ``contrast`` with this subject's values."""
        base = LOW_FIELD_ACQUISITION[contrast]
        if self.nominal:
            return base
        in_plane = self.in_plane_mm + (FLAIR_IN_PLANE_EXTRA_MM if contrast == "FLAIR" else 0.0)
        return replace(base, voxel_mm=(in_plane, in_plane, self.slice_mm), snr=base.snr * self.snr_factor,
                       bias_strength=self.bias_strength, psf_factor=self.blur_factor,
                       misregistration_mm=base.misregistration_mm * self.misregistration_factor,
                       misregistration_deg=base.misregistration_deg * self.misregistration_factor,
                       distortion_rms_mm=base.distortion_rms_mm * self.misregistration_factor)

    def low_field_sequences(self) -> dict[str, Sequence]:
        """The 64 mT sequences with this subject's timings."""
        if self.nominal:
            return LOW_FIELD_SEQUENCES
        return {"T1": replace(LOW_FIELD_SEQUENCES["T1"], tr=self.t1_tr_ms),
                "T2": replace(LOW_FIELD_SEQUENCES["T2"], te=self.t2_te_ms),
                "FLAIR": replace(LOW_FIELD_SEQUENCES["FLAIR"], te=self.flair_te_ms)}

    def deformation(self) -> Deformation:
        """The anatomical deformation statistics."""
        return DEFORMATION if self.nominal else replace(DEFORMATION, warp_rms_mm=self.warp_rms_mm)

    def lesions(self) -> Lesions:
        """The lesion statistics."""
        return LESIONS if self.nominal else replace(LESIONS, probability=self.lesion_probability,
                                                    mean_count=self.lesion_count)


NOMINAL = SubjectVariation()


@dataclass(frozen=True)
class VariationRanges:
    """Uniform ranges ``(low, high)`` of each :class:`SubjectVariation` field; a field may have
    several disjoint ranges (a tuple of pairs), one of which is picked at random."""

    ranges: dict[str, tuple[tuple[float, float], ...]]

    def draw(self, rng: np.random.Generator) -> SubjectVariation:
        """One subject's values (fields in declaration order, so a range change moves only its own draw)."""
        values = {}
        for field in dataclasses.fields(SubjectVariation):
            options = self.ranges[field.name]
            low, high = options[int(rng.integers(len(options)))] if len(options) > 1 else options[0]
            values[field.name] = float(rng.uniform(low, high))
        return SubjectVariation(**values)


# Training ranges: around the nominal (calibrated) simulator, wide enough that no single mapping fits.
TRAINING_RANGES = VariationRanges({
    "snr_factor": ((0.6, 1.5),),
    "bias_strength": ((0.1, 0.3),),
    "in_plane_mm": ((1.2, 1.8),),
    "slice_mm": ((4.0, 6.0),),
    "blur_factor": ((0.8, 1.3),),
    "relaxation_jitter_sd": ((0.03, 0.09),),
    "misregistration_factor": ((0.3, 1.6),),
    "warp_rms_mm": ((1.5, 3.5),),
    "atrophy": ((0.0, 0.3),),
    "lesion_probability": ((0.2, 0.6),),
    "lesion_count": ((2.0, 8.0),),
    "t1_tr_ms": ((300.0, 550.0),),
    "t2_te_ms": ((180.0, 260.0),),
    "flair_te_ms": ((130.0, 190.0),),
})

# Shifted ranges: every field outside its training range (on one side, or either side), so the
# shifted held-out set is harder or merely different, never inside the training distribution.
SHIFTED_RANGES = VariationRanges({
    "snr_factor": ((0.4, 0.55),),
    "bias_strength": ((0.35, 0.45),),
    "in_plane_mm": ((1.9, 2.2),),
    "slice_mm": ((6.5, 7.5),),
    "blur_factor": ((1.4, 1.6),),
    "relaxation_jitter_sd": ((0.11, 0.14),),
    "misregistration_factor": ((1.8, 2.2),),
    "warp_rms_mm": ((4.0, 5.0),),
    "atrophy": ((0.35, 0.5),),
    "lesion_probability": ((1.0, 1.0),),
    "lesion_count": ((10.0, 14.0),),
    "t1_tr_ms": ((220.0, 270.0), (600.0, 700.0)),
    "t2_te_ms": ((140.0, 165.0), (280.0, 300.0)),
    "flair_te_ms": ((100.0, 120.0), (200.0, 220.0)),
})

RANGES = {"training": TRAINING_RANGES, "shifted": SHIFTED_RANGES}


def draw_variation(kind: str, rng: np.random.Generator) -> SubjectVariation:
    """The parameters of one subject for variation ``kind`` (nominal, training or shifted)."""
    if kind not in VARIATIONS:
        raise ValueError(f"variation must be one of {VARIATIONS}, got {kind!r}")
    return NOMINAL if kind == "nominal" else RANGES[kind].draw(rng)
