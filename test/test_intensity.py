"""Robust per-contrast intensity mapping."""

import numpy as np
import pytest

from model.errors import InputError
from model.volumes.intensity import fit_intensity_map


def test_maps_percentiles_to_the_unit_range_and_back():
    volume = np.linspace(0, 1000, 10_001, dtype=np.float32)
    mapping = fit_intensity_map(volume)
    assert mapping.low == pytest.approx(5.0) and mapping.high == pytest.approx(995.0)
    normalised = mapping.to_network(volume)
    assert normalised.min() == -1 and normalised.max() == 1
    inside = (volume >= mapping.low) & (volume <= mapping.high)
    np.testing.assert_allclose(mapping.from_network(normalised)[inside], volume[inside], rtol=1e-5, atol=1e-3)


def test_a_hot_voxel_does_not_squeeze_the_range():
    volume = np.random.default_rng(0).random(100_000).astype(np.float32) * 100
    volume[0] = 1e9
    mapping = fit_intensity_map(volume)
    assert mapping.high < 101


def test_integer_and_negative_volumes_work():
    volume = np.arange(-500, 500, dtype=np.int16)
    mapping = fit_intensity_map(volume)
    assert mapping.to_network(volume).dtype == np.float32 and mapping.low < 0


def test_mostly_constant_volume_falls_back_to_min_max():
    volume = np.zeros(10_000, np.float32)
    volume[:3] = 50
    mapping = fit_intensity_map(volume)
    assert (mapping.low, mapping.high) == (0.0, 50.0)


@pytest.mark.parametrize("value", [0.0, 3.5])
def test_constant_volumes_are_refused(value):
    with pytest.raises(InputError, match=f"constant \\({value:g} everywhere\\)"):
        fit_intensity_map(np.full(100, value, np.float32), "T1")


def test_targets_keep_the_bright_tail_up_to_the_ceiling_and_outputs_are_guarded_there():
    from model.volumes.intensity import OUTPUT_CEILING

    volume = np.linspace(0, 1000, 10_001, dtype=np.float32)
    mapping = fit_intensity_map(volume)
    target = mapping.to_network(volume, ceiling=OUTPUT_CEILING)
    # 1000 lies (1000 - 995) / 990 * 2 = 0.0101 above 1: kept, not clipped at 1
    assert target.max() == pytest.approx(1.0 + 10 / 990, abs=1e-5)
    back = mapping.from_network(np.array([-3.0, 1.1, 9.0], np.float32))
    top = (OUTPUT_CEILING + 1) / 2 * (mapping.high - mapping.low) + mapping.low
    np.testing.assert_allclose(back, [mapping.low, (2.1 / 2) * 990 + 5, top], rtol=1e-5)
