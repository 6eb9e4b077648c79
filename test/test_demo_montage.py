"""The demo's comparison picture: one column per volume set, written atomically."""

import numpy as np
from PIL import Image

from demo.montage import save_comparison


def test_comparison_has_one_column_per_volume_set(tmp_path):
    rng = np.random.default_rng(0)
    mask = np.zeros((20, 24, 16), dtype=np.uint8)
    mask[5:15, 6:18, 4:12] = 1
    columns = [(label, rng.uniform(0, 1, (3, *mask.shape)).astype(np.float32)) for label in ("a", "b", "c", "d")]
    three = Image.open(save_comparison(columns[:3], mask, tmp_path / "three.png")).size
    four = Image.open(save_comparison(columns, mask, tmp_path / "four.png")).size
    assert four[1] == three[1] and four[0] > three[0]  # same rows, one more column
    assert sorted(p.name for p in tmp_path.iterdir()) == ["four.png", "three.png"]  # no partial files left
