"""The denoising gate (bench/denoising_gate.py) on known denoisers: the identity and an oracle."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from bench.denoising_gate import gate_table, markdown, noise_level, score
from model.schedule import cosine_schedule

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
    """Knows the clean image, so it predicts the true noise: a perfect denoiser."""

    def __init__(self, clean: list[np.ndarray]):
        super().__init__()
        self.clean = [torch.from_numpy(c)[None] for c in clean]

    def forward(self, x, t):
        abar = SCHEDULE.alpha_bar_at(int(t[0]))
        clean = min(self.clean, key=lambda c: float((x - abar ** 0.5 * c).abs().mean()))
        return ((x - abar ** 0.5 * clean) / (1 - abar) ** 0.5).float()


def test_a_network_that_predicts_no_noise_scores_as_the_noisy_input_and_fails(crops):
    rows = gate_table({"zero": ZeroNoise(), "oracle": Oracle(crops)}, crops, [50, 200], SCHEDULE)
    for row in rows:
        assert row["zero_ssim"] == pytest.approx(row["input_ssim"], abs=1e-5)
        assert row["zero_psnr"] == pytest.approx(row["input_psnr"], abs=1e-3)
        assert not row["passes_zero"]
        assert row["oracle_ssim"] > 0.999 and row["passes_oracle"]  # a perfect denoiser passes
    assert rows[0]["input_ssim"] > rows[1]["input_ssim"]  # more noise at t = 200
    table = markdown(rows, ["zero", "oracle"])
    assert "| 50 |" in table and "`oracle` passes" in table


def test_noise_level_is_sigma_over_alpha():
    abar = SCHEDULE.alpha_bar_at(400)
    assert noise_level(400, SCHEDULE) == pytest.approx(((1 - abar) / abar) ** 0.5)
    image = np.zeros((8, 8, 8), np.float32)
    assert score(image, image).ssim == pytest.approx(1.0)
