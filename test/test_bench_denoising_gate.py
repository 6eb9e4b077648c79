"""The denoising gate (bench/denoising_gate.py) on known denoisers: the identity, an oracle, and
estimates built to separate the gate's rules (do nothing as a baseline, PSNR at its own best setting)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from bench.denoising_gate import (
    GAUSSIAN_SIGMAS,
    TV_WEIGHTS,
    best_classical,
    do_nothing,
    gate_table,
    gaussian,
    markdown,
    noise_level,
    noised,
    score,
    total_variation,
)
from model.method.schedule import cosine_schedule

SCHEDULE = cosine_schedule(1000)


@pytest.fixture(scope="module")
def crops() -> list[np.ndarray]:
    """Two smooth random 'images' in [-1, 1], (3, 24, 24, 16)."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(2):
        field = ndimage.gaussian_filter(rng.standard_normal((3, 24, 24, 16)), (0, 2, 2, 2))
        out.append(np.clip(field / np.abs(field).max(), -1, 1).astype(np.float32))
    return out


class ZeroNoise(torch.nn.Module):
    """Predicts no noise: its clean estimate is x_t / sqrt(abar_t), the noisy input itself."""

    def forward(self, x, t):
        return torch.zeros_like(x)


class Oracle(torch.nn.Module):
    """Knows the clean image, so it can predict the true noise times ``factor``: 1 is a perfect
    denoiser; a negative factor adds noise (its estimate is clean + (1 - factor) sigma_t eps)."""

    def __init__(self, clean: list[np.ndarray], factor: float = 1.0):
        super().__init__()
        self.clean = [torch.from_numpy(c)[None] for c in clean]
        self.factor = factor

    def forward(self, x, t):
        abar = SCHEDULE.alpha_bar_at(int(t[0]))
        clean = min(self.clean, key=lambda c: float((x - abar ** 0.5 * c).abs().mean()))
        return (self.factor * (x - abar ** 0.5 * clean) / (1 - abar) ** 0.5).float()


# Heavy classical settings only: at t = 1 every one of them is far worse than the noisy input.
COARSE = {"gaussian": (gaussian, (2.2,)), "tv": (total_variation, (0.4,))}


def test_a_network_that_predicts_no_noise_scores_as_the_noisy_input_and_fails(crops):
    rows = gate_table({"zero": ZeroNoise(), "oracle": Oracle(crops)}, crops, [50, 200], SCHEDULE)
    for row in rows:
        assert row["zero_ssim"] == row["input_ssim"]  # the same array: do nothing is x_t / sqrt(abar_t)
        assert row["zero_psnr"] == row["input_psnr"]
        assert not row["passes_zero"]
        assert row["oracle_ssim"] > 0.999 and row["passes_oracle"]  # a perfect denoiser passes
    assert rows[0]["input_ssim"] > rows[1]["input_ssim"]  # more noise at t = 200
    table = markdown(rows, ["zero", "oracle"])
    assert "| 50 |" in table and "`oracle` passes" in table


def test_do_nothing_is_a_column_and_the_noisy_input_on_the_clean_scale(crops):
    clean = crops[0]
    noise = np.random.default_rng(1).standard_normal(clean.shape).astype(np.float32)
    x_t = noised(clean, noise, 25, SCHEDULE)
    nothing = do_nothing(x_t, 25, SCHEDULE)
    assert np.allclose(nothing, clean + noise_level(25, SCHEDULE) * noise, atol=1e-5)
    rows = gate_table({"zero": ZeroNoise()}, crops, [1], SCHEDULE, classical=COARSE)
    header = markdown(rows, ["zero"]).splitlines()[0]
    assert header.split(" | ")[1:6] == ["σ_t", "`zero`", "best Gaussian", "best TV", "do nothing"]
    assert "input_ssim" in rows[0] and "input_psnr" in rows[0]


def test_a_denoiser_that_returns_the_noisy_input_cannot_pass_even_when_the_classical_ones_are_worse(crops):
    worse = Oracle(crops, factor=-0.05)  # x0_hat = clean + 1.05 sigma_t eps: a little worse than the input
    rows = gate_table({"zero": ZeroNoise(), "worse": worse, "oracle": Oracle(crops)}, crops, [1, 5], SCHEDULE,
                      classical=COARSE)
    for row in rows:
        assert max(row["gaussian_ssim"], row["tv_ssim"]) < row["input_ssim"]  # the coarse grids lose to the input
        assert row["worse_ssim"] > max(row["gaussian_ssim"], row["tv_ssim"])  # beats both classical ...
        assert row["worse_ssim"] < row["input_ssim"]  # ... but not doing nothing
        assert not row["passes_worse"] and not row["passes_zero"]
        assert row["passes_oracle"]
        assert "| no | no | yes |" in markdown([row], ["zero", "worse", "oracle"])


def test_the_default_grids_start_at_do_nothing_so_the_best_classical_is_never_below_the_input(crops):
    assert GAUSSIAN_SIGMAS[0] == 0 and TV_WEIGHTS[0] == 0
    assert list(GAUSSIAN_SIGMAS) == sorted(GAUSSIAN_SIGMAS) and list(TV_WEIGHTS) == sorted(TV_WEIGHTS)
    assert min(s for s in GAUSSIAN_SIGMAS if s > 0) < 0.4 and min(w for w in TV_WEIGHTS if w > 0) < 0.01
    image = crops[0][0]
    assert np.array_equal(gaussian(image, 0.0), image) and np.array_equal(total_variation(image, 0.0), image)
    rows = gate_table({}, crops, [1, 25], SCHEDULE)
    for row in rows:
        for name in ("gaussian", "tv"):
            assert row[f"{name}_ssim"] >= row["input_ssim"] and row[f"{name}_psnr"] >= row["input_psnr"]
            assert len(row[f"{name}_ssim_settings"]) == len(row[f"{name}_psnr_settings"]) == 6  # 2 subjects x 3


def test_best_classical_takes_ssim_and_psnr_each_at_its_own_best_setting():
    rng = np.random.default_rng(0)
    field = ndimage.gaussian_filter(rng.standard_normal((16, 16, 16)), 2)
    clean = np.clip(field / np.abs(field).max(), -1, 1).astype(np.float32)
    noise = rng.standard_normal(clean.shape).astype(np.float32)
    outputs = {1.0: clean + 0.015, 2.0: clean + 0.02 * noise, 3.0: clean + 0.1 * noise}  # offset: PSNR; noise: SSIM
    scores = {s: score(out, clean) for s, out in outputs.items()}
    assert scores[1.0].psnr > scores[2.0].psnr and scores[2.0].ssim > scores[1.0].ssim  # the construction holds
    best = best_classical(clean, clean, lambda _, s: outputs[s], list(outputs))
    assert (best.ssim_setting, best.psnr_setting) == (2.0, 1.0)
    assert best.score.ssim == scores[2.0].ssim and best.score.psnr == scores[1.0].psnr


def test_the_gate_reports_each_classical_psnr_at_its_psnr_maximising_setting(crops):
    grid = (0.7, 0.8, 0.9, 1.0, 1.1)  # Gaussian sigmas around the oracle choices at t = 100 on these crops
    t = 100
    row = gate_table({}, crops, [t], SCHEDULE, classical={"gaussian": (gaussian, grid),
                                                          "tv": (total_variation, (0.0,))})[0]
    psnrs, ssims = [], []
    for index, clean in enumerate(crops):  # recompute the oracle choices from the same noise draws
        noise = np.random.default_rng([0, t, index]).standard_normal(clean.shape).astype(np.float32)
        noisy = do_nothing(noised(clean, noise, t, SCHEDULE), t, SCHEDULE)
        for channel in range(3):
            found = [score(gaussian(noisy[channel], s), clean[channel]) for s in grid]
            psnrs.append(max(found, key=lambda s: s.psnr))
            ssims.append(max(found, key=lambda s: s.ssim))
            assert row["gaussian_psnr_settings"][3 * index + channel] == grid[int(np.argmax([s.psnr for s in found]))]
            assert row["gaussian_ssim_settings"][3 * index + channel] == grid[int(np.argmax([s.ssim for s in found]))]
    assert row["gaussian_psnr"] == pytest.approx(np.mean([s.psnr for s in psnrs]))
    assert row["gaussian_ssim"] == pytest.approx(np.mean([s.ssim for s in ssims]))
    assert row["gaussian_psnr_settings"] != row["gaussian_ssim_settings"]  # here the two oracle choices differ
    assert row["gaussian_psnr"] > np.mean([s.psnr for s in ssims])  # above the PSNR at the SSIM-chosen settings
    assert row["tv_psnr"] == row["input_psnr"]  # a grid of only "do nothing" is the noisy input


def test_noise_level_is_sigma_over_alpha():
    abar = SCHEDULE.alpha_bar_at(400)
    assert noise_level(400, SCHEDULE) == pytest.approx(((1 - abar) / abar) ** 0.5)
    image = np.zeros((8, 8, 8), np.float32)
    assert score(image, image).ssim == pytest.approx(1.0)
