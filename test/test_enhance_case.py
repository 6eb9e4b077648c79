"""One case through load -> (identity) -> write: the output grid is always the input grid."""

import numpy as np
import SimpleITK as sitk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model.pipeline.enhance_case import load_case, outputs_of
from model.volumes.layouts import CONTRASTS, Case


def rotation(angles):
    """A proper rotation matrix (row-major, 9 values) from three angles."""
    a, b, c = angles
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return tuple((rz @ ry @ rx).ravel())


geometries = st.fixed_dictionaries({
    "size": st.tuples(*[st.integers(3, 24)] * 3),
    "spacing": st.tuples(*[st.sampled_from([0.5, 0.8, 1.0, 1.0, 1.3, 2.5])] * 3),
    "origin": st.tuples(*[st.floats(-200, 200, allow_nan=False)] * 3),
    # no subnormal angles: SimpleITK resamples a direction built from one (9.5e-296 rad) to an empty volume
    "angles": st.tuples(*[st.floats(-np.pi, np.pi, allow_nan=False, allow_subnormal=False)] * 3),
    "dtype": st.sampled_from([np.uint8, np.int16, np.float32, np.float64]),
})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(geometry=geometries)
def test_output_grid_equals_input_grid(tmp_path, geometry):
    rng = np.random.default_rng(0)
    inputs = {}
    for contrast in CONTRASTS:
        values = (rng.random(geometry["size"][::-1]) * 200 + 1).astype(geometry["dtype"])
        image = sitk.GetImageFromArray(values)
        image.SetSpacing(geometry["spacing"])
        image.SetOrigin(geometry["origin"])
        image.SetDirection(rotation(geometry["angles"]))
        inputs[contrast] = tmp_path / f"{contrast}.mha"
        sitk.WriteImage(image, str(inputs[contrast]))
    case = Case("c", inputs, {c: tmp_path / "out" / f"{c}.mha" for c in CONTRASTS})
    loaded = load_case(case)
    assert all(s >= 1 for s in loaded.network_input.shape[1:])
    for contrast, output in outputs_of(loaded, loaded.network_input).items():
        reference = sitk.ReadImage(str(inputs[contrast]))
        assert output.GetSize() == reference.GetSize()
        assert output.GetSpacing() == reference.GetSpacing()
        assert output.GetOrigin() == reference.GetOrigin()
        assert output.GetDirection() == reference.GetDirection()
        assert output.GetPixelID() == sitk.sitkFloat32
        assert np.all(np.isfinite(sitk.GetArrayViewFromImage(output)))
