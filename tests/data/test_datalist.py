import json

import pytest

from reclf_monai.data.datalist import load_datalist, split_by_group, write_datalist
from reclf_monai.data.errors import DataError


def test_write_then_load_resolves_image_and_label_paths(tmp_path):
    items = [{"image": "images/a.png", "label": "masks/a.png", "report": "No effusion.", "target": [0, 1]}]
    path = write_datalist(tmp_path / "sub" / "datalist.json", {"training": items, "validation": [], "test": []},
                          class_names=["A", "B"])
    assert json.loads(path.read_text())["class_names"] == ["A", "B"]
    loaded = load_datalist(path, "training")
    assert loaded[0]["image"] == str(tmp_path / "sub" / "images" / "a.png")
    assert loaded[0]["label"] == str(tmp_path / "sub" / "masks" / "a.png")
    assert loaded[0]["report"] == "No effusion."
    assert loaded[0]["target"] == [0, 1]
    assert not list((tmp_path / "sub").glob("*.tmp"))


def test_write_rejects_item_without_image(tmp_path):
    with pytest.raises(DataError, match="item 1 has no 'image'"):
        write_datalist(tmp_path / "d.json", {"training": [{"image": "a.png"}, {"report": "x"}]})


@pytest.mark.parametrize(
    "content, problem",
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"training": []}), "no split 'test'"),
        (json.dumps({"test": {"image": "a"}}), "not a list"),
        (json.dumps({"test": [{"report": "x"}]}), "item 0 of split 'test' has no 'image' key"),
    ],
)
def test_load_bad_datalist_names_file_and_problem(tmp_path, content, problem):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(DataError, match=problem) as info:
        load_datalist(path, "test")
    assert str(path) in str(info.value)


def test_load_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_datalist(tmp_path / "absent.json")


def test_split_by_group_is_reproducible_complete_and_proportional():
    groups = [f"r{i}" for i in range(1000)] * 2  # every group appears twice
    first = split_by_group(groups, {"training": 0.7, "validation": 0.1, "test": 0.2}, seed=3)
    again = split_by_group(reversed(groups), {"training": 0.7, "validation": 0.1, "test": 0.2}, seed=3)
    other = split_by_group(groups, {"training": 0.7, "validation": 0.1, "test": 0.2}, seed=4)
    assert first == again
    assert first != other
    assert set(first) == set(groups)
    counts = {name: list(first.values()).count(name) for name in ("training", "validation", "test")}
    assert counts == {"training": 700, "validation": 100, "test": 200}


def test_split_by_group_rejects_zero_fractions():
    with pytest.raises(ValueError):
        split_by_group(["a"], {"training": 0})
