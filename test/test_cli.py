"""process.py end to end in each layout, on small cases with tiny untrained networks."""

import json

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import TEST_WINDOW, grand_challenge_paths, ulf_enc_paths, write_case
from model.cli.main import main
from model.volumes.intensity import OUTPUT_CEILING, fit_intensity_map
from model.volumes.layouts import CONTRASTS, DEFAULT_OUTPUT_SLUGS

GEOMETRIES = {
    "oblique-1mm": {},
    "anisotropic": {"spacing": (0.9, 1.2, 2.5)},
}


def run_cli(*args, weights):
    window = [str(w) for w in TEST_WINDOW]
    return main([*map(str, args), "--weights", str(weights), "--preset", "smoke", "--window", *window, "--quiet"])


def assert_same_geometry(output_path, input_path):
    out, ref = sitk.ReadImage(str(output_path)), sitk.ReadImage(str(input_path))
    assert out.GetPixelID() == sitk.sitkFloat32
    assert out.GetSize() == ref.GetSize()
    # NIfTI stores geometry in float32 (qform/sform), so a re-written NIfTI header agrees to that precision;
    # MetaImage and NRRD carry it exactly.
    exact = not str(output_path).endswith(".nii.gz")
    for getter in ("GetSpacing", "GetOrigin", "GetDirection"):
        if exact:
            assert getattr(out, getter)() == getattr(ref, getter)(), getter
        else:
            np.testing.assert_allclose(getattr(out, getter)(), getattr(ref, getter)(), rtol=0, atol=1e-5)
    values = sitk.GetArrayViewFromImage(out)
    assert np.all(np.isfinite(values))
    reference = sitk.GetArrayViewFromImage(ref)
    # outputs lie in the input's intensity map's range [-1, OUTPUT_CEILING] (model/volumes/intensity.py)
    mapping = fit_intensity_map(reference)
    top = mapping.low + (OUTPUT_CEILING + 1) / 2 * (mapping.high - mapping.low)
    assert mapping.low - 1e-3 <= values.min() and values.max() <= top + 1e-3


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_grand_challenge_layout(tmp_path, tiny_weights, geometry):
    inputs = write_case(grand_challenge_paths(tmp_path / "input"), **GEOMETRIES[geometry])
    assert run_cli("--input", tmp_path / "input", "--output", tmp_path / "output", weights=tiny_weights) == 0
    for contrast in CONTRASTS:
        output = tmp_path / "output" / "images" / DEFAULT_OUTPUT_SLUGS[contrast] / inputs[contrast].name
        assert_same_geometry(output, inputs[contrast])


def test_grand_challenge_inputs_json_and_slug_overrides(tmp_path, tiny_weights, monkeypatch):
    slugs = {c: f"my-{c.lower()}" for c in CONTRASTS}
    paths = {c: tmp_path / "input" / "images" / slugs[c] / f"{c}.mha" for c in CONTRASTS}
    write_case(paths)
    (tmp_path / "input" / "inputs.json").write_text(json.dumps([
        # Grand Challenge gives the socket's folder; an explicit file is accepted too
        {"interface": {"slug": slugs[c], "relative_path": f"images/{slugs[c]}" + ("/T1.mha" if c == "T1" else "")},
         "value": None} for c in CONTRASTS
    ]))
    for c in CONTRASTS:
        monkeypatch.setenv(f"ULF_SOCKET_{c}", slugs[c])
        monkeypatch.setenv(f"ULF_OUTPUT_SOCKET_{c}", f"out-{c.lower()}")
    assert run_cli("--input", tmp_path / "input", "--output", tmp_path / "output", weights=tiny_weights) == 0
    for c in CONTRASTS:
        assert_same_geometry(tmp_path / "output" / "images" / f"out-{c.lower()}" / f"{c}.mha", paths[c])


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_ulf_enc_layout(tmp_path, tiny_weights, geometry):
    cases = {s: write_case(ulf_enc_paths(tmp_path / "in", s), **GEOMETRIES[geometry]) for s in ("POCEMR001", "POCEMR002")}
    (tmp_path / "in" / "README.txt").write_text("stray file")
    (tmp_path / "in" / "notes").mkdir()
    assert run_cli("--input", tmp_path / "in", "--output", tmp_path / "out", weights=tiny_weights) == 0
    for subject, inputs in cases.items():
        for c in CONTRASTS:
            assert_same_geometry(tmp_path / "out" / subject / "Enhanced" / f"{subject}_{c}.nii.gz", inputs[c])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["POCEMR001", "POCEMR002"]


def test_explicit_files_keep_their_names(tmp_path, tiny_weights):
    inputs = write_case({c: tmp_path / f"sub_{c.lower()}.nrrd" for c in CONTRASTS}, dtype=np.int16)
    args = ["--t1", inputs["T1"], "--t2", inputs["T2"], "--flair", inputs["FLAIR"], "--output-dir", tmp_path / "out"]
    assert run_cli(*args, weights=tiny_weights) == 0
    for c in CONTRASTS:
        assert_same_geometry(tmp_path / "out" / inputs[c].name, inputs[c])


def test_same_seed_is_bit_identical_and_another_seed_differs(tmp_path, tiny_weights):
    inputs = write_case({c: tmp_path / f"{c}.mha" for c in CONTRASTS})
    files = ["--t1", inputs["T1"], "--t2", inputs["T2"], "--flair", inputs["FLAIR"]]
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        assert run_cli(*files, "--output-dir", tmp_path / name, "--seed", seed, weights=tiny_weights) == 0
    read = lambda name: sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / name / "T1.mha")))  # noqa: E731
    assert np.array_equal(read("a"), read("b"))
    assert not np.array_equal(read("a"), read("c"))


def test_identity_mode_returns_the_input_and_needs_no_weights(tmp_path):
    inputs = write_case({c: tmp_path / f"{c}.nii.gz" for c in CONTRASTS})
    files = ["--t1", inputs["T1"], "--t2", inputs["T2"], "--flair", inputs["FLAIR"], "--output-dir", tmp_path / "out"]
    assert main([*map(str, files), "--mode", "identity", "--weights", str(tmp_path / "none"), "--quiet"]) == 0
    for c in CONTRASTS:
        original = sitk.GetArrayFromImage(sitk.ReadImage(str(inputs[c])))
        enhanced = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out" / f"{c}.nii.gz")))
        low, high = np.percentile(original, [0.5, 99.5])
        np.testing.assert_allclose(enhanced, np.clip(original, low, high), rtol=1e-5, atol=1e-3)


def test_mismatched_grids_are_refused_without_output(tmp_path, tiny_weights, caplog):
    inputs = write_case({c: tmp_path / f"{c}.mha" for c in CONTRASTS})
    write_case({"T1": tmp_path / "shifted_T1.mha", "T2": tmp_path / "x2.mha", "FLAIR": tmp_path / "x3.mha"},
               origin=(0.0, 0.0, 0.0))
    code = run_cli("--t1", tmp_path / "shifted_T1.mha", "--t2", inputs["T2"], "--flair", inputs["FLAIR"],
                   "--output-dir", tmp_path / "out", weights=tiny_weights)
    assert code == 2
    assert "co-registered" in caplog.text and "origin" in caplog.text
    assert not (tmp_path / "out").exists()


def test_bad_options_are_reported(tmp_path, tiny_weights, caplog):
    inputs = write_case({c: tmp_path / f"{c}.mha" for c in CONTRASTS})
    code = run_cli("--t1", inputs["T1"], "--t2", inputs["T2"], "--output-dir", tmp_path / "o", weights=tiny_weights)
    assert code == 2 and "need all of --t1, --t2, --flair" in caplog.text
    code = run_cli("--t1", inputs["T1"], "--t2", inputs["T2"], "--flair", inputs["FLAIR"], "--output-dir",
                   tmp_path / "o", "--overlap", "1.5", weights=tiny_weights)
    assert code == 2 and "--overlap must be in [0, 1)" in caplog.text
