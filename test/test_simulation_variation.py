"""Per-subject simulator parameters (simulation/variation.py) and atrophy (simulation/atrophy.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from simulation import generate_subject, subject_variation
from simulation.atrophy import apply_atrophy
from simulation.geometry import Grid
from simulation.parameters import LOW_FIELD_ACQUISITION, LOW_FIELD_SEQUENCES, TISSUE_NAMES
from simulation.variation import NOMINAL, SHIFTED_RANGES, TRAINING_RANGES, SubjectVariation, draw_variation

FIELDS = [f.name for f in dataclasses.fields(SubjectVariation)]


def _inside(value: float, ranges) -> bool:
    return any(low <= value <= high for low, high in ranges)


@pytest.mark.parametrize("seed", range(20))
def test_training_draws_lie_inside_and_shifted_draws_outside_the_training_ranges(seed):
    training, shifted = subject_variation(seed, "training"), subject_variation(seed, "shifted")
    for name in FIELDS:
        assert _inside(getattr(training, name), TRAINING_RANGES.ranges[name]), name
        assert _inside(getattr(shifted, name), SHIFTED_RANGES.ranges[name]), name
        assert not _inside(getattr(shifted, name), TRAINING_RANGES.ranges[name]), name


def test_every_field_has_a_range_and_the_nominal_values_are_training_values():
    for ranges in (TRAINING_RANGES, SHIFTED_RANGES):
        assert set(ranges.ranges) == set(FIELDS)
    for name in FIELDS:  # the calibrated simulator is one of the training subjects, not an outlier
        assert _inside(getattr(NOMINAL, name), TRAINING_RANGES.ranges[name]), name


def test_draws_are_reproducible_and_differ_between_subjects():
    assert subject_variation(5, "training") == subject_variation(5, "training")
    assert subject_variation(5, "training") != subject_variation(6, "training")
    assert draw_variation("nominal", np.random.default_rng(0)) is NOMINAL
    with pytest.raises(ValueError, match="variation must be one of"):
        draw_variation("wild", np.random.default_rng(0))


def test_nominal_variation_applies_the_nominal_parameters_unchanged():
    assert NOMINAL.nominal
    assert NOMINAL.low_field_sequences() is LOW_FIELD_SEQUENCES
    assert all(NOMINAL.low_field_acquisition(c) is LOW_FIELD_ACQUISITION[c] for c in LOW_FIELD_ACQUISITION)


def test_a_drawn_variation_reaches_the_acquisition_and_sequences():
    v = dataclasses.replace(NOMINAL, snr_factor=0.5, in_plane_mm=2.0, slice_mm=7.0, t1_tr_ms=650.0, blur_factor=1.5)
    flair = v.low_field_acquisition("FLAIR")
    assert flair.voxel_mm == (2.1, 2.1, 7.0) and flair.snr == LOW_FIELD_ACQUISITION["FLAIR"].snr * 0.5
    assert flair.psf_factor == 1.5
    assert v.low_field_sequences()["T1"].tr == 650.0


def test_nominal_subject_is_unchanged_and_a_varied_one_differs_only_where_it_should():
    """variation=NOMINAL is the default simulator bit for bit; a varied subject has the same grid."""
    default = generate_subject(3, shape_scale=0.3)
    nominal = generate_subject(3, shape_scale=0.3, variation=NOMINAL)
    assert np.array_equal(default.low, nominal.low) and np.array_equal(default.high, nominal.high)
    shifted = generate_subject(3, shape_scale=0.3, variation=subject_variation(3, "shifted"))
    assert shifted.low.shape == default.low.shape and shifted.spacing == default.spacing
    assert not np.array_equal(shifted.low, default.low)
    assert np.isfinite(shifted.low).all() and np.isfinite(shifted.high).all()


def test_atrophy_turns_tissue_next_to_csf_into_csf_and_keeps_each_voxels_total():
    grid = Grid((24, 24, 24), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    fractions = np.zeros((24, 24, 24, len(TISSUE_NAMES)), dtype=np.float32)
    csf, gm, wm = (TISSUE_NAMES.index(n) for n in ("csf", "gm", "wm"))
    fractions[:12, ..., csf] = 1.0  # a CSF half and a tissue half
    fractions[12:, ..., gm] = 0.6
    fractions[12:, ..., wm] = 0.4
    before = fractions.copy()
    apply_atrophy(fractions, TISSUE_NAMES, 0.3, grid)
    np.testing.assert_allclose(fractions.sum(-1), before.sum(-1), atol=1e-6)
    assert fractions[12, 0, 0, csf] > 0.1  # next to the CSF: tissue lost
    assert fractions[23, 0, 0, csf] < 1e-3  # far from it: untouched
    assert fractions[..., csf].sum() > before[..., csf].sum()
    unchanged = fractions.copy()
    assert np.array_equal(apply_atrophy(unchanged, TISSUE_NAMES, 0.0, grid), fractions)
