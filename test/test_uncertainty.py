"""Several samples (``--samples N``): their mean as the output and their per-voxel spread as an uncertainty map,
written with the outputs in every layout that has a place for it (model/pipeline/enhancer.py, enhance_case.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from conftest import CONTRASTS, grand_challenge_paths, ulf_enc_paths, write_case
from model.cli.main import main
from model.config.settings import preset
from model.execution.budget import Throughput, candidates, choose_settings
from model.execution.plan import plan_case
from model.method.sampler import SAMPLERS, register_sampler
from model.pipeline.enhancer import SampleStatistics
from model.volumes.intensity import OUTPUT_CEILING

NOISE = 0.2  # network units: the spread of the test sampler's random half


@pytest.fixture
def half_random_sampler():
    """A sampler that returns its input on the volume's first half along x (every sample agrees: a deterministic
    denoiser there) and adds fresh noise from the seeded generator on the second half (samples differ)."""

    @register_sampler("half-random-test")
    def half_random(x0_lf, networks, schedule, generator, steps, hooks):
        out = x0_lf.clone()
        half = x0_lf.shape[2] // 2
        out[:, :, half:] += NOISE * torch.randn(out[:, :, half:].shape, generator=generator)
        return out

    yield "half-random-test"
    SAMPLERS.pop("half-random-test")


def read(path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path))).transpose(2, 1, 0)  # (x, y, z)


def run(sampler: str, *args: str, samples: int = 4) -> int:
    return main([*args, "--mode", "identity", "--sampler", sampler, "--samples", str(samples), "--quiet"])


def test_samples_write_the_mean_and_a_map_that_is_zero_where_samples_agree(tmp_path, half_random_sampler):
    inputs = write_case(ulf_enc_paths(tmp_path / "in", "SUB001"))
    assert run(half_random_sampler, "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out")) == 0
    enhanced = tmp_path / "out" / "SUB001" / "Enhanced"
    assert sorted(p.name for p in enhanced.iterdir()) == sorted(
        [f"SUB001_{c}.nii.gz" for c in CONTRASTS] + [f"SUB001_{c}_std.nii.gz" for c in CONTRASTS]
        + ["SUB001.enhancement.json"])
    for contrast in CONTRASTS:
        spread, given = read(enhanced / f"SUB001_{contrast}_std.nii.gz"), read(inputs[contrast])
        half = spread.shape[0] // 2
        assert spread.shape == given.shape
        assert np.all(spread[:half] == 0)  # every sample agrees there
        # fresh noise in every sample: they differ, except where all of them were clipped to the output range
        # (the mean then lies exactly on its bound)
        output = read(enhanced / f"SUB001_{contrast}.nii.gz")[half:]
        tol = 1e-4 * (output.max() - output.min())
        inside = (output > output.min() + tol) & (output < output.max() - tol)
        assert inside.mean() > 0.5 and np.all(spread[half:][inside] > 0)
    record = json.loads((enhanced / "SUB001.enhancement.json").read_text())
    assert record["samples"] == 4 and set(record["uncertainty"]) == set(CONTRASTS)


def test_one_sample_writes_no_map(tmp_path, half_random_sampler):
    write_case(ulf_enc_paths(tmp_path / "in", "SUB001"))
    assert run(half_random_sampler, "--input", str(tmp_path / "in"), "--output", str(tmp_path / "one"), samples=1) == 0
    names = sorted(p.name for p in (tmp_path / "one" / "SUB001" / "Enhanced").iterdir())
    assert not any("_std" in name for name in names)


def test_explicit_files_get_their_maps_beside_them(tmp_path, half_random_sampler):
    inputs = write_case({c: tmp_path / "in" / f"sub_{c}.nii.gz" for c in CONTRASTS})
    assert run(half_random_sampler, "--t1", str(inputs["T1"]), "--t2", str(inputs["T2"]), "--flair", str(inputs["FLAIR"]),
               "--output-dir", str(tmp_path / "out")) == 0
    assert {p.name for p in (tmp_path / "out").glob("*_std.nii.gz")} == {f"sub_{c}_std.nii.gz" for c in CONTRASTS}


def test_grand_challenge_writes_maps_only_to_configured_sockets(tmp_path, monkeypatch, half_random_sampler):
    write_case(grand_challenge_paths(tmp_path / "in"))
    assert run(half_random_sampler, "--input", str(tmp_path / "in"), "--output", str(tmp_path / "plain")) == 0
    assert len(list((tmp_path / "plain").rglob("*.mha"))) == 3  # no socket configured: no maps
    monkeypatch.setenv("ULF_UNCERTAINTY_SOCKET_T1", "t1-uncertainty")
    assert run(half_random_sampler, "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out")) == 0
    (spread,) = (tmp_path / "out" / "images" / "t1-uncertainty").glob("*.mha")
    values = read(spread)
    assert np.all(values[:values.shape[0] // 2] == 0) and values[values.shape[0] // 2:].max() > 0
    assert len(list((tmp_path / "out").rglob("*.mha"))) == 4


def test_a_map_that_cannot_be_written_refuses_the_case_before_any_output(tmp_path, half_random_sampler):
    write_case(ulf_enc_paths(tmp_path / "in", "SUB001"))
    (tmp_path / "out" / "SUB001" / "Enhanced" / "SUB001_FLAIR_std.nii.gz").mkdir(parents=True)  # in the way
    assert run(half_random_sampler, "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out")) != 0
    assert sorted(p.name for p in (tmp_path / "out" / "SUB001" / "Enhanced").iterdir()) == ["SUB001_FLAIR_std.nii.gz"]


def test_running_statistics_match_numpy():
    rng = np.random.default_rng(0)
    samples = [rng.normal(0.5, 0.4, (3, 5, 4, 2)).astype(np.float32) for _ in range(5)]
    stats = SampleStatistics()
    for sample in samples:
        stats.add(sample)
    clipped = np.clip(np.stack(samples), -1.0, OUTPUT_CEILING)
    np.testing.assert_allclose(stats.mean, clipped.mean(axis=0), rtol=0, atol=1e-6)
    np.testing.assert_allclose(stats.std, clipped.std(axis=0, ddof=1), rtol=0, atol=1e-6)
    one = SampleStatistics()
    one.add(samples[0])
    assert one.mean is samples[0] and one.std is None  # one sample: kept as it is, no spread


def test_the_plan_and_the_budget_count_every_sample():
    cpu, head = preset("cpu"), (197, 233, 189)
    one, four = plan_case(cpu, head), plan_case(cpu.updated(samples=4), head)
    assert four.unet_windows == 4 * one.unet_windows and four.bridge_windows == 4 * one.bridge_windows
    assert four.evaluations == 4 * one.evaluations
    options = candidates(cpu.updated(samples=4), [("minimum", cpu.updated(mode="bridge"))])
    assert [s.algorithm.samples for _, s in options] == [4, 4, 1]  # N samples first, then one sample
    rates = Throughput(unet=10.0, bridge=10.0)
    choice = choose_settings(cpu.updated(samples=4), head, rates, allowance=1.1 * rates.seconds(one) / 0.85,
                             ladder=[("minimum", cpu.updated(mode="bridge"))])
    assert choice.plan.samples in (1, 4) and choice.fits
    with pytest.raises(ValueError, match="--samples must be in 1..64"):
        cpu.updated(samples=0)
