"""The ablation table command (bench/ablation.py): every configuration scored, identity exact (the raw input;
the clipped input on its own row), crops, resume, and no reuse across held-out sets or crops."""

import csv
import json

import numpy as np

from bench import ablation
from bench.case import centred_crop
from evaluation.metrics import challenge_metrics
from model.volumes.intensity import denormalise_contrasts, normalise_contrasts
from model.volumes.layouts import CONTRASTS
from simulation import generate_subject, subject_variation
from conftest import TEST_WINDOW

SEED, SCALE, CROP = 90_000, 0.4, (40, 44, 20)


def run(tiny_weights, out):
    return ablation.main(["--subjects", "1", "--subject-seed", str(SEED), "--shape-scale", str(SCALE), "--crop", *map(str, CROP),
                          "--preset", "smoke", "--window", *map(str, TEST_WINDOW), "--weights", str(tiny_weights), "--device", "cpu", "--out", str(out)])


def test_ablation_scores_every_configuration_and_resumes(tiny_weights, tmp_path):
    assert run(tiny_weights, tmp_path) == 0
    with open(tmp_path / "ablation.csv") as handle:
        rows = list(csv.DictReader(handle))
    labels = [c.label for c in ablation.CONFIGURATIONS]
    assert sorted({r["configuration"] for r in rows}) == sorted(labels)
    assert len(rows) == len(labels) * len(CONTRASTS)
    table = (tmp_path / "ablation.md").read_text()
    assert all(label in table for label in labels) and "Latent alignment at K" in table
    assert "PSNR over M, standard (Table 1's)" in table

    # identity: the raw low field itself, scored on the same crop; its own row: the low field through the
    # product's percentile clipping, normalised and written back
    subject = generate_subject(SEED, shape_scale=SCALE)
    box = centred_crop(subject.mask.shape, CROP)
    network_input, maps = normalise_contrasts(list(subject.low), list(CONTRASTS))
    clipped = denormalise_contrasts(network_input, maps)
    assert labels[:2] == ["1 identity", "1 identity, clipped (0.5th-99.5th percentiles)"]
    for i, contrast in enumerate(CONTRASTS):
        raw = challenge_metrics(subject.low[i][box], subject.high[i][box], subject.mask[box])
        row = next(r for r in rows if r["configuration"] == labels[0] and r["contrast"] == contrast)
        assert np.isclose(float(row["score"]), raw["score"], rtol=1e-6)
        assert np.isclose(float(row["psnr_masked_standard"]), raw["psnr_masked_standard"], rtol=1e-5)
        expected = challenge_metrics(clipped[i][box], subject.high[i][box], subject.mask[box])
        row = next(r for r in rows if r["configuration"] == labels[1] and r["contrast"] == contrast)
        assert np.isclose(float(row["score"]), expected["score"], rtol=1e-6)
        assert not np.isclose(expected["score"], raw["score"], rtol=1e-4)  # the two rows measure different things
    assert "scores the raw low-field input" in table
    enhanced = [float(r["score"]) for r in rows if r["configuration"] == "4 full (Algorithm 1)"]
    assert all(np.isfinite(enhanced))

    lines = (tmp_path / "ablation.jsonl").read_text().splitlines()
    assert len(lines) == len(labels) + 1 and json.loads(lines[0])["kind"] == "alignment"
    assert run(tiny_weights, tmp_path) == 0  # everything done already: nothing is run again
    assert (tmp_path / "ablation.jsonl").read_text().splitlines() == lines


def test_centred_crop_is_centred_and_clipped():
    assert centred_crop((10, 7, 5), (4, 9, 5)) == (slice(3, 7), slice(0, 7), slice(0, 5))
    assert centred_crop((10, 7, 5), None) == (slice(None),) * 3


def test_a_shifted_held_out_set_with_chosen_rows(tiny_weights, tmp_path):
    """--variation shifted scores the shifted subjects (identity row equals their own low field);
    --configurations runs only the rows asked for."""
    from simulation import subject_variation

    args = ["--subjects", "1", "--subject-seed", str(SEED), "--shape-scale", str(SCALE), "--crop", *map(str, CROP),
            "--preset", "smoke", "--window", *map(str, TEST_WINDOW), "--weights", str(tiny_weights), "--device", "cpu",
            "--variation", "shifted", "--configurations", "1", "2 bridge only", "--out", str(tmp_path)]
    assert ablation.main(args) == 0
    with open(tmp_path / "ablation.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted({r["configuration"] for r in rows}) == [
        "1 identity", "1 identity, clipped (0.5th-99.5th percentiles)", "2 bridge only", "2 bridge only, eq. 11 RemoveNoise"]
    assert "shifted simulator parameters" in (tmp_path / "ablation.md").read_text()
    subject = generate_subject(SEED, shape_scale=SCALE, variation=subject_variation(SEED, "shifted"))
    box = centred_crop(subject.mask.shape, CROP)
    expected = challenge_metrics(subject.low[0][box], subject.high[0][box], subject.mask[box])
    row = next(r for r in rows if r["configuration"] == "1 identity" and r["contrast"] == "T1")
    assert np.isclose(float(row["score"]), expected["score"], rtol=1e-6)


def test_another_held_out_set_or_crop_is_not_resumed_from_the_log(tiny_weights, tmp_path, caplog):
    """Identity rows logged for the shifted set or another crop are run again, not reused, and the table
    shows only the runs of the set and crop asked for."""
    base = ["--subjects", "1", "--subject-seed", str(SEED), "--shape-scale", str(SCALE), "--preset", "smoke",
            "--window", *map(str, TEST_WINDOW), "--weights", str(tiny_weights), "--device", "cpu",
            "--configurations", "1 identity", "--out", str(tmp_path)]
    lines = lambda: (tmp_path / "ablation.jsonl").read_text().splitlines()  # noqa: E731
    assert ablation.main([*base, "--crop", *map(str, CROP), "--variation", "training"]) == 0
    first = lines()
    assert ablation.main([*base, "--crop", *map(str, CROP), "--variation", "training"]) == 0
    assert lines() == first  # same set, same crop: reused
    with caplog.at_level("INFO"):
        assert ablation.main([*base, "--crop", *map(str, CROP), "--variation", "shifted"]) == 0
    assert len(lines()) == 2 * len(first)  # alignment and both identity rows again
    assert "variation ('training' -> 'shifted')" in caplog.text
    subject = generate_subject(SEED, shape_scale=SCALE, variation=subject_variation(SEED, "shifted"))
    box = centred_crop(subject.mask.shape, CROP)
    expected = np.mean([challenge_metrics(subject.low[i][box], subject.high[i][box], subject.mask[box])["score"]
                        for i in range(len(CONTRASTS))])
    with open(tmp_path / "ablation.csv") as handle:
        rows = [r for r in csv.DictReader(handle) if r["configuration"] == "1 identity"]
    assert len(rows) == len(CONTRASTS)  # only the shifted set's run
    assert np.isclose(np.mean([float(r["score"]) for r in rows]), expected, rtol=1e-6)
    caplog.clear()
    with caplog.at_level("INFO"):
        assert ablation.main([*base, "--crop", "40", "40", "20", "--variation", "shifted"]) == 0
    assert len(lines()) == 3 * len(first)
    assert "crop ([40, 44, 20] -> [40, 40, 20])" in caplog.text
