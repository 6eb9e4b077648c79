"""``python -m bench.denoising_gate``: is the diffusion network a better denoiser than a classical one?

Algorithm 1 re-noises its running clean estimate to level t and takes the network's one-step
clean estimate ``x0_hat = (x_t - sqrt(1 - abar_t) eps_theta(x_t, t)) / sqrt(abar_t)`` (docs/method.md: the two operators):
at every level it visits, the network is a denoiser of Gaussian noise of standard deviation
``sigma_t = sqrt((1 - abar_t) / abar_t)`` (in clean-image units). If a Gaussian blur or total
variation removes that noise better, or if the noisy input itself is closer to the clean image, the
chain adds noise instead of detail. This command is the training campaign's compass: for a weights
folder it prints, per t, the SSIM and PSNR of the network's one-step estimate on held-out 3 T crops
beside three baselines:

- **do nothing**: the network's own input rescaled to the clean scale, ``x_t / sqrt(abar_t)`` (the
  one-step estimate of a network that predicts eps = 0);
- **the best Gaussian filter** and **the best total-variation denoiser**, each at its best setting per
  image (an oracle choice in their favour), chosen separately for SSIM and for PSNR: each metric is
  reported at the setting that maximises it. Both grids start at 0 (do nothing), so the best
  classical denoiser is never worse than the noisy input.

The network **passes** at t when its mean SSIM beats all three: the best Gaussian, the best TV and
doing nothing.

Data: held-out simulated subjects (seeds from :data:`HELD_OUT_SEED`, never in a training set), the
3 T volume normalised over the whole head as inference normalises, then a centred crop. Metrics on
the [-1, 1] scale: 3D SSIM (scikit-image, data range 2, 7-voxel window) over the crop and PSNR
``10 log10(4 / MSE)``, averaged over subjects and contrasts; the same noise draw for every denoiser.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from skimage.metrics import structural_similarity
from skimage.restoration import denoise_tv_chambolle

from bench.case import HELD_OUT_SEED, add_variation, centred_crop, simulated_subject
from model.volumes.intensity import normalise_contrasts
from model.volumes.layouts import CONTRASTS
from model.method.operators import add_noise, estimate_x0
from model.cli.options import DEFAULT_WEIGHTS
from model.method.schedule import NoiseSchedule, cosine_schedule
from model.weights.manifest import load_network, load_schedule

DEFAULT_TIMESTEPS = (1, 5, 10, 25, 50, 100, 200, 400)  # the `cpu` chain's 25, 10, 1 and the levels above
DEFAULT_CROP = (96, 96, 48)
# 0 is "do nothing" in both grids. Below sigma 0.25 scipy's kernel (radius int(4 sigma + 0.5)) is the
# identity or within 1e-4 of it, so the Gaussian's small end starts there. The large ends reach past
# the oracle choices at t = 400 on the default crops.
GAUSSIAN_SIGMAS = (0.0, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.8, 1.0, 1.3, 1.7, 2.2, 3.0)  # voxels
TV_WEIGHTS = (0.0, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.007, 0.01, 0.015, 0.02, 0.03, 0.04, 0.07, 0.1,
              0.15, 0.25, 0.4, 0.6, 1.0, 1.5, 2.5)  # skimage's Chambolle weight, [-1, 1] images

Denoiser = Callable[[np.ndarray, float], np.ndarray]  # (noisy image in x0 units, setting) -> estimate


@dataclass(frozen=True)
class Score:
    ssim: float
    psnr: float


@dataclass(frozen=True)
class Best:
    """A classical denoiser's best SSIM and best PSNR over its settings, each at its own setting."""

    score: Score
    ssim_setting: float
    psnr_setting: float


def held_out_crops(count: int, first_seed: int, crop: Sequence[int], variation: str,
                   shape_scale: float = 1.0) -> list[np.ndarray]:
    """``count`` held-out subjects' normalised 3 T volumes (3, X, Y, Z), centred crops."""
    crops = []
    for seed in range(first_seed, first_seed + count):
        subject = simulated_subject(seed, shape_scale, variation)
        high, _ = normalise_contrasts(list(subject.high), [f"held-out {seed} 3T {c}" for c in CONTRASTS])
        crops.append(np.ascontiguousarray(high[(slice(None), *centred_crop(high.shape[1:], crop))]))
    return crops


def score(estimate: np.ndarray, clean: np.ndarray) -> Score:
    """SSIM and PSNR of one (X, Y, Z) estimate on the [-1, 1] scale."""
    estimate = np.clip(estimate, -1.0, 1.0)
    mse = float(np.mean((estimate - clean) ** 2))
    ssim = float(structural_similarity(estimate, clean, data_range=2.0, win_size=7))
    return Score(ssim, 10.0 * np.log10(4.0 / max(mse, 1e-12)))


def noise_level(t: int, schedule: NoiseSchedule) -> float:
    """``sigma_t`` of x_t / sqrt(abar_t) in clean-image units."""
    abar = schedule.alpha_bar_at(t)
    return float(np.sqrt((1.0 - abar) / abar))


def noised(clean: np.ndarray, noise: np.ndarray, t: int, schedule: NoiseSchedule) -> torch.Tensor:
    """``x_t`` (1, 3, X, Y, Z): ``clean`` (3, X, Y, Z) noised to t with ``noise`` (eq. 10)."""
    return add_noise(torch.from_numpy(clean)[None], torch.from_numpy(noise)[None], t, schedule)


def do_nothing(x_t: torch.Tensor, t: int, schedule: NoiseSchedule) -> np.ndarray:
    """The noisy input on the clean scale, ``x_t / sqrt(abar_t)`` (3, X, Y, Z): the one-step estimate
    with eps = 0, computed exactly as a network's estimate is, so a network that predicts no noise
    scores the same to the last bit."""
    return estimate_x0(x_t, torch.zeros_like(x_t), t, schedule)[0].numpy()


def network_estimates(network: torch.nn.Module, x_t: torch.Tensor, t: int, schedule: NoiseSchedule) -> np.ndarray:
    """The network's one-step clean estimate (3, X, Y, Z) from ``x_t`` (1, 3, X, Y, Z) at level t."""
    with torch.no_grad():
        predicted = network(x_t, torch.full((1,), t, dtype=torch.long)).float()
    return estimate_x0(x_t, predicted, t, schedule)[0].numpy()


def best_classical(noisy: np.ndarray, clean: np.ndarray, denoise: Denoiser, settings: Sequence[float]) -> Best:
    """``denoise`` on one (X, Y, Z) noisy image at every one of ``settings``: the best SSIM and the best
    PSNR, each at the setting that maximises it (the first such setting on a tie)."""
    found = [(score(denoise(noisy, s), clean), s) for s in settings]
    by_ssim = max(found, key=lambda pair: pair[0].ssim)
    by_psnr = max(found, key=lambda pair: pair[0].psnr)
    return Best(Score(by_ssim[0].ssim, by_psnr[0].psnr), by_ssim[1], by_psnr[1])


def gaussian(noisy: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur of ``sigma`` voxels; sigma 0 returns the noisy image (do nothing)."""
    return noisy.copy() if sigma == 0 else ndimage.gaussian_filter(noisy, sigma)


def total_variation(noisy: np.ndarray, weight: float) -> np.ndarray:
    """Chambolle's TV denoiser; weight 0 returns the noisy image (do nothing)."""
    return noisy.copy() if weight == 0 else denoise_tv_chambolle(noisy, weight=weight)


CLASSICAL: dict[str, tuple[Denoiser, Sequence[float]]] = {
    "gaussian": (gaussian, GAUSSIAN_SIGMAS),
    "tv": (total_variation, TV_WEIGHTS),
}


def gate_table(networks: dict[str, torch.nn.Module], crops: list[np.ndarray], timesteps: Sequence[int],
               schedule: NoiseSchedule, seed: int = 0,
               classical: dict[str, tuple[Denoiser, Sequence[float]]] | None = None) -> list[dict]:
    """One row per t: sigma_t and the mean SSIM and PSNR of each network, of doing nothing (``input``)
    and of each classical denoiser (``gaussian``, ``tv``) at its best setting per image, chosen
    separately for SSIM and for PSNR.

    ``networks``: name -> epsilon-network; every network and denoiser sees the same noise draws.
    ``classical``: name -> (denoiser, settings), default :data:`CLASSICAL`.
    ``<denoiser>_ssim_settings`` / ``<denoiser>_psnr_settings``: the chosen setting per image (subject-major,
    then contrast), to show where in its grid each oracle choice fell.
    ``passes_<name>``: the network's SSIM beats the best of the classical denoisers and doing nothing at that t.
    """
    classical = CLASSICAL if classical is None else classical
    rows = []
    for t in timesteps:
        sums: dict[str, list[float]] = {}
        settings: dict[str, list[float]] = {}
        for index, clean in enumerate(crops):
            noise = np.random.default_rng([seed, t, index]).standard_normal(clean.shape).astype(np.float32)
            x_t = noised(clean, noise, t, schedule)
            noisy = do_nothing(x_t, t, schedule)
            estimates = {name: network_estimates(net, x_t, t, schedule) for name, net in networks.items()}
            for channel in range(clean.shape[0]):
                found = {name: score(estimate[channel], clean[channel]) for name, estimate in estimates.items()}
                found["input"] = score(noisy[channel], clean[channel])
                for name, (denoise, grid) in classical.items():
                    best = best_classical(noisy[channel], clean[channel], denoise, grid)
                    found[name] = best.score
                    settings.setdefault(f"{name}_ssim_settings", []).append(best.ssim_setting)
                    settings.setdefault(f"{name}_psnr_settings", []).append(best.psnr_setting)
                for name, value in found.items():
                    sums.setdefault(f"{name}_ssim", []).append(value.ssim)
                    sums.setdefault(f"{name}_psnr", []).append(value.psnr)
        row: dict = {"t": t, "sigma": noise_level(t, schedule)}
        row.update({key: float(np.mean(values)) for key, values in sums.items()})
        row.update({key: [float(v) for v in values] for key, values in settings.items()})
        bar = max(row[f"{name}_ssim"] for name in [*classical, "input"])
        for name in networks:
            row[f"passes_{name}"] = bool(row[f"{name}_ssim"] > bar)
        rows.append(row)
    return rows


def markdown(rows: list[dict], names: Sequence[str]) -> str:
    """The gate as a markdown table: SSIM (PSNR dB) per denoiser, and whether each network passes.

    Four decimals of SSIM and two of PSNR: at small t the margins are thousandths or less."""
    columns = list(names) + ["gaussian", "tv", "input"]
    titles = [f"`{n}`" for n in names] + ["best Gaussian", "best TV", "do nothing"]
    lines = ["| t | σ_t | " + " | ".join(titles) + " | " + " | ".join(f"`{n}` passes" for n in names) + " |",
             "|---|---|" + "---|" * (len(columns) + len(names))]
    for r in rows:
        cells = [f"{r[c + '_ssim']:.4f} ({r[c + '_psnr']:.2f})" for c in columns]
        verdicts = ["yes" if r[f"passes_{n}"] else "no" for n in names]
        lines.append(f"| {r['t']} | {r['sigma']:.3f} | " + " | ".join(cells) + " | " + " | ".join(verdicts) + " |")
    return "\n".join(lines)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.denoising_gate", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, nargs="+", default=[DEFAULT_WEIGHTS],
                   help="weights folder(s), compared on the same crops and noise (default: the shipped weights)")
    p.add_argument("--timesteps", type=int, nargs="+", default=list(DEFAULT_TIMESTEPS))
    p.add_argument("--subjects", type=int, default=2, help="held-out simulated subjects")
    p.add_argument("--subject-seed", type=int, default=HELD_OUT_SEED, help="first held-out subject's seed")
    add_variation(p)
    p.add_argument("--crop", type=int, nargs=3, default=list(DEFAULT_CROP), metavar=("X", "Y", "Z"))
    p.add_argument("--shape-scale", type=float, default=1.0)
    p.add_argument("--json", type=Path, help="also write the rows as JSON here")
    return p.parse_args(argv)


def _name(path: Path, paths: Sequence[Path]) -> str:
    """A short column name for a weights folder: its folder name, or its parent's when names repeat."""
    names = [p.resolve().name for p in paths]
    return path.resolve().name if names.count(path.resolve().name) == 1 else path.resolve().parent.name


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    try:
        networks = {_name(path, arguments.weights): load_network(path, "diffusion") for path in arguments.weights}
        schedules = {load_schedule(path).num_timesteps for path in arguments.weights}
    except Exception as error:  # noqa: BLE001 - WeightsError and OSError alike: one line
        print(f"error: {error}", file=sys.stderr)
        return 3
    if len(schedules) > 1:
        print(f"error: the weights folders use different schedules (T = {sorted(schedules)})", file=sys.stderr)
        return 3
    schedule = cosine_schedule(schedules.pop())
    bad = [t for t in arguments.timesteps if not 1 <= t <= schedule.num_timesteps]
    if bad:
        print(f"error: --timesteps must lie in 1..{schedule.num_timesteps}, got {bad}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    crops = held_out_crops(arguments.subjects, arguments.subject_seed, arguments.crop, arguments.variation, arguments.shape_scale)
    rows = gate_table(networks, crops, arguments.timesteps, schedule)
    print(f"denoising gate: {', '.join(f'{n} = {p}' for n, p in zip(networks, arguments.weights))}; "
          f"{arguments.subjects} held-out subjects ({arguments.variation}), crop {'x'.join(map(str, arguments.crop))}, "
          f"{time.perf_counter() - start:.0f} s; SSIM (PSNR dB) of the one-step estimate; each classical "
          f"metric at its own best setting per image; passes: SSIM above the best Gaussian, the best TV "
          f"and doing nothing")
    print(markdown(rows, list(networks)))
    if arguments.json:
        arguments.json.parent.mkdir(parents=True, exist_ok=True)
        arguments.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
