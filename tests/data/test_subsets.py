"""Label-fraction subsets: reproducible, nested, every class present."""

import pytest

from reclf_monai.data import DataError
from reclf_monai.data.subsets import label_fraction


def multi_label_items(count=400):
    """Class 3 is rare (2 positives), class 0 common; some items have no class (all zeros)."""
    items = []
    for index in range(count):
        flags = [int(index % 2 == 0), int(index % 5 == 0), int(index % 7 == 0), int(index in (123, 321))]
        items.append({"image": f"{index}.png", "target": flags})
    return items


@pytest.mark.parametrize("label_key,items", [("target", multi_label_items()), ("label", [{"image": f"{i}", "label": i % 3 if i != 77 else 3} for i in range(400)])])
def test_subsets_are_nested_reproducible_and_cover_every_class(label_key, items):
    one, ten, full = (label_fraction(items, fraction, label_key, seed=5) for fraction in (0.01, 0.1, 1.0))
    images = [[item["image"] for item in subset] for subset in (one, ten, full)]
    assert len(images[0]) == 4 and len(images[1]) == 40 and sorted(images[2]) == sorted(item["image"] for item in items)
    assert images[0] == images[1][:4] and images[1] == images[2][:40]
    assert images[1] == [item["image"] for item in label_fraction(items, 0.1, label_key, seed=5)]
    assert images[1] != [item["image"] for item in label_fraction(items, 0.1, label_key, seed=6)]
    for subset in (one, ten):
        present = set()
        for item in subset:
            value = item[label_key]
            present |= {value} if isinstance(value, int) else {i for i, flag in enumerate(value) if flag}
        assert present == {0, 1, 2, 3}


def test_a_tiny_fraction_still_holds_one_positive_per_class():
    items = [{"image": str(i), "label": i % 5} for i in range(20)]
    subset = label_fraction(items, 0.01, "label")
    assert sorted(item["label"] for item in subset) == [0, 1, 2, 3, 4]


def test_bad_fraction_and_label_are_errors():
    with pytest.raises(ValueError, match="data_fraction"):
        label_fraction([{"image": "a", "label": 0}], 0.0, "label")
    with pytest.raises(DataError, match="'b.png'.*'label'"):
        label_fraction([{"image": "b.png"}], 0.5, "label")
