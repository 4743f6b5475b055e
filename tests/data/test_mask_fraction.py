"""Segmentation label fractions: classes read from the masks (empty / not empty), nested and seeded."""

import numpy as np
import pytest
from PIL import Image

from reclf_monai.data import DataError, mask_fraction


@pytest.fixture
def items(tmp_path):
    """200 items; every 25th mask has a foreground pixel (8 non-empty), one of them a single pixel."""
    result = []
    for index in range(200):
        mask = np.zeros((6, 4), dtype=np.uint8)
        if index % 25 == 0:
            mask[index % 6, 1] = 255
        path = tmp_path / f"{index}.png"
        Image.fromarray(mask).save(path)
        result.append({"image": f"image_{index}.png", "label": str(path)})
    return result


def test_fractions_are_nested_seeded_and_hold_both_kinds(items):
    one, ten = (mask_fraction(items, fraction, seed=3) for fraction in (0.01, 0.1))
    assert [len(one), len(ten)] == [2, 20]
    assert [item["image"] for item in one] == [item["image"] for item in ten[:2]]
    assert sorted(item["mask_nonempty"] for item in one) == [0, 1]
    for subset in (one, ten):
        for item in subset:
            index = int(item["image"].split("_")[1].split(".")[0])
            assert item["mask_nonempty"] == int(index % 25 == 0)
    assert [item["image"] for item in mask_fraction(items, 0.1, seed=3)] == [item["image"] for item in ten]
    assert [item["image"] for item in mask_fraction(items, 0.1, seed=4)] != [item["image"] for item in ten]


def test_the_full_set_needs_no_mask_reading(items):
    broken = [{**item, "label": "/absent/mask.png"} for item in items]
    assert mask_fraction(broken, 1.0) == broken
    with pytest.raises(DataError, match="/absent/mask.png: file not found"):
        mask_fraction(broken, 0.1)
    with pytest.raises(ValueError, match="data_fraction must be in"):
        mask_fraction(items, 1.5)
