"""The foreign simulator (simulation/foreign/): determinism, the benchmarks' subject layout, a noisier and
blurrier 64 mT side, plausible contrasts, independence from the training simulator's code, and the
benchmarks' ``variation="foreign"``. Every subject here is a 2.5 mm one (shape_scale 0.4)."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from simulation import LABEL_NAMES, generate_subject
from simulation.foreign import generate_foreign_subject
from simulation.foreign.parameters import HIGH_FIELD, LOW_FIELD, TISSUES
from simulation.foreign.tissues import relaxation_table

SEED, SCALE = 90_000, 0.4
T1, T2, FLAIR = range(3)
CSF, GM, WM, LESION = (LABEL_NAMES.index(name) for name in ("csf", "gm", "wm", "lesion"))
PACKAGE = Path(__file__).resolve().parent.parent / "simulation" / "foreign"
# The training simulator's modules the foreign one must not use (its signal, numbers, acquisition, geometry
# of subjects, lesions, atrophy, per-subject parameters and generation); only the anatomy loader, the grid
# helpers and the subject *type* (with its label names) may be shared.
FORBIDDEN = {"simulation.signal", "simulation.parameters", "simulation.acquisition", "simulation.deformation",
             "simulation.variation", "simulation.lesions", "simulation.atrophy", "simulation.dataset", "simulation.cli"}
ALLOWED_NAMES = {"simulation.subject": {"SimulatedSubject", "LABEL_NAMES"}, "simulation.anatomy": {"load_template"},
                 "simulation": set()}


@pytest.fixture(scope="module")
def subject():
    """A foreign 2.5 mm subject with lesions."""
    return generate_foreign_subject(SEED, shape_scale=SCALE, lesions=True)


def median(volume: np.ndarray, where: np.ndarray) -> float:
    return float(np.median(volume[where]))


def test_same_seed_same_subject_bit_for_bit(subject):
    again = generate_foreign_subject(SEED, shape_scale=SCALE, lesions=True)
    for name in ("high", "low", "mask", "labels"):
        assert np.array_equal(getattr(subject, name), getattr(again, name)), name
    assert (subject.spacing, subject.origin, subject.direction) == (again.spacing, again.origin, again.direction)
    other = generate_foreign_subject(SEED + 1, shape_scale=SCALE, lesions=True)
    assert not np.array_equal(subject.high, other.high) and not np.array_equal(subject.mask, other.mask)
    with pytest.raises(ValueError):
        generate_foreign_subject(-1, shape_scale=SCALE)


def test_layout_matches_the_training_simulator(subject):
    """Same grid, shapes and dtypes as a training-simulator subject at the same scale; a plausible brain."""
    training = generate_subject(3, shape_scale=SCALE, lesions=False)
    for name in ("high", "low", "mask", "labels"):
        ours, theirs = getattr(subject, name), getattr(training, name)
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype, name
    assert (subject.spacing, subject.origin, subject.direction) == (training.spacing, training.origin, training.direction)
    assert np.isfinite(subject.high).all() and np.isfinite(subject.low).all()
    assert subject.high.min() >= 0 and subject.low.min() >= 0
    assert set(np.unique(subject.mask)) == {0, 1} and subject.labels.max() < len(LABEL_NAMES)
    brain_litres = subject.mask.sum() * np.prod(subject.spacing) / 1e6
    assert 1.2 < brain_litres < 2.4
    assert subject.lesions and (subject.labels == LESION).any()
    head = subject.labels > 0
    assert (head & (subject.mask == 0)).sum() > 0.3 * subject.mask.sum(), "no head around the brain"


def _noise(volume: np.ndarray, region: np.ndarray) -> float:
    """In-plane local noise in ``region``: the SD of the residual from a 3x3 in-plane mean, over the region's mean."""
    residual = volume - ndimage.uniform_filter(volume, size=(3, 3, 1))
    return float(residual[region].std() / volume[region].mean())


def _noise_floor(volume: np.ndarray, air: np.ndarray, white: np.ndarray) -> float:
    """The Rician noise floor: the mean of the air around the head over the white matter's median."""
    return float(volume[air].mean() / np.median(volume[white]))


def _through_plane_detail(volume: np.ndarray) -> float:
    """The share of the power along z (the 64 mT slice axis) above 60 % of the grid's Nyquist frequency."""
    power = np.abs(np.fft.rfft(volume - volume.mean(), axis=2)) ** 2
    spectrum = power.sum(axis=(0, 1))
    return float(spectrum[int(0.6 * (spectrum.size - 1)):].sum() / spectrum.sum())


def test_the_low_field_side_is_noisier_and_blurrier(subject):
    """Noise: the air's Rician floor (about 7-10x the 3 T one here) and the local in-plane residual in deep white
    matter (about 2-5x, partly anatomy at this scale); blur: the power along z above 60 % of Nyquist (5 mm
    slices on a 2.5 mm grid: under a tenth of the 3 T share)."""
    white = ndimage.binary_erosion(subject.labels == WM, iterations=1)
    air = ~ndimage.binary_dilation(subject.labels > 0, iterations=5)
    air[:, :, :8] = False  # the neck leaves the field of view at the bottom
    assert white.sum() > 500 and air.sum() > 0.2 * air.size
    for contrast in (T1, T2, FLAIR):
        high, low = subject.high[contrast], subject.low[contrast]
        assert _noise_floor(low, air, white) > 3.0 * _noise_floor(high, air, white), contrast
        assert _noise(low, white) > 1.3 * _noise(high, white), contrast
        assert _through_plane_detail(low) < 0.3 * _through_plane_detail(high), contrast


def test_contrasts_are_ordered_as_on_scanners(subject):
    """3 T: T1w WM > GM > CSF; T2w CSF brightest, then GM, then WM; FLAIR CSF darkest, lesions brighter
    than WM. 64 mT: the same orderings (weaker on T1w)."""
    brain = subject.mask > 0
    csf, gm, wm, lesion = ((subject.labels == label) & brain for label in (CSF, GM, WM, LESION))
    for volumes in (subject.high, subject.low):
        t1, t2, flair = volumes
        assert median(t1, wm) > median(t1, gm) > median(t1, csf)
        assert median(t2, csf) > median(t2, gm) > median(t2, wm)
        assert median(flair, csf) < min(median(flair, gm), median(flair, wm))
        assert median(flair, lesion) > median(flair, wm) and median(t2, lesion) > median(t2, wm)


def test_pure_tissue_signals_follow_the_foreign_sequences():
    """At the k-space centre: the FLAIRs null CSF to within 5 % of WM, the 64 mT T1w-IR keeps CSF dark and
    grey/white contrast weaker than the 3 T MPRAGE's."""
    from simulation.foreign.sequences import centre_signals

    high, low = relaxation_table("3T"), relaxation_table("64mT")
    s3 = {c: centre_signals(high, HIGH_FIELD[c]) for c in HIGH_FIELD}
    s64 = {c: centre_signals(low, LOW_FIELD[c]) for c in LOW_FIELD}
    for signals in (s3, s64):
        assert abs(signals["FLAIR"]["csf"]) < 0.05 * signals["FLAIR"]["wm"]
    assert abs(s64["T1"]["csf"]) < 0.3 * s64["T1"]["gm"]
    assert s64["T1"]["gm"] / s64["T1"]["wm"] > s3["T1"]["gm"] / s3["T1"]["wm"]
    assert 250 < low["wm"].t1 < low["gm"].t1 < 500 < 3000 < low["csf"].t1  # the Cole-Cole law's 64 mT T1s


def test_foreign_values_are_not_the_training_simulators():
    from simulation.parameters import TISSUES as TRAINING_TISSUES

    low = relaxation_table("64mT")
    for name, tissue in TISSUES.items():
        theirs = TRAINING_TISSUES[name]
        assert tissue.t1_3t != theirs.t1_3t and tissue.t2_3t != theirs.t2_3t, name
        assert abs(low[name].t1 - theirs.t1_64mt) > 5, name


def _imports(path: Path) -> list[tuple[str, set[str]]]:
    """(module, imported names) of every import in ``path`` (relative imports resolved inside the package)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.extend((alias.name, set()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                module = ".".join(["simulation", "foreign"][: 3 - node.level] + ([module] if module else []))
            found.append((module, {alias.name for alias in node.names}))
    return found


def test_the_package_does_not_import_the_training_simulators_code():
    files = sorted(PACKAGE.glob("*.py"))
    assert len(files) >= 5
    for path in files:
        for module, names in _imports(path):
            assert module not in FORBIDDEN, f"{path.name} imports {module}"
            if module in ALLOWED_NAMES:
                assert names <= ALLOWED_NAMES[module], f"{path.name} imports {names - ALLOWED_NAMES[module]} from {module}"
            elif module.startswith("simulation") and not module.startswith("simulation.foreign"):
                assert module == "simulation.geometry", f"{path.name} imports {module}"
        assert len(path.read_text().splitlines()) <= 300, path.name


def test_bench_cases_from_the_foreign_simulator(subject):
    from bench.case import add_variation, simulated_case, simulated_subject

    case = simulated_case(SEED, SCALE, crop=(40, 44, 20), variation="foreign")
    assert case.raw_input is not None and case.raw_input.shape == (3, 40, 44, 20) == case.high.shape
    assert case.mask.any() and case.network_input.min() >= -1 and case.network_input.max() <= 1
    assert "foreign" in case.name
    whole = simulated_subject(SEED, SCALE, "foreign")
    assert np.array_equal(whole.high, generate_foreign_subject(SEED, shape_scale=SCALE).high)
    parser = argparse.ArgumentParser()
    add_variation(parser)
    assert parser.parse_args(["--variation", "foreign"]).variation == "foreign"


def test_the_calibration_reports_the_foreign_set():
    from bench.calibrate import SETS, table

    assert SETS == {"ordinary": "training", "shifted": "shifted", "foreign": "foreign"}
    cell = {"score": 0.6, "ssim": 0.5, "psnr": 18.0}
    block = {"identity": {name: cell for name in SETS},
             "configurations": [{"label": "bridge", "score": 0.6, "sets": {name: cell for name in SETS},
                                 "full_head_windows": {"diffusion": 0, "bridge": 10}}]}
    lines = table(block).splitlines()
    assert "foreign: score / SSIM / PSNR" in lines[0]
    assert len({line.count("|") for line in lines}) == 1  # every row has the header's columns
