import json

import pytest

from reclf_monai.data.errors import DataError
from reclf_monai.data.preparation.covidx import CLASS_NAMES, prepare_covidx, read_image_list
from reclf_monai.data.preparation.splits import train_validation_split

# (patient_id, filename, class, source); the source column is absent in older releases.
TRAIN = [
    ("1", "a.png", "normal", "rsna"),
    ("2", "b.png", "pneumonia", "rsna"),
    ("3", "SARS-10.1148rg.242035193-g04mr34g0-Fig8a-day0.jpeg", "COVID-19", "cohen"),
    ("4", "d.jpg", "covid-19", "actualmed"),
    ("5", "e.png", "Pneumonia", "sirm"),
    ("6", "scan with space.png", "NORMAL", "ricord"),
    ("7", "g.png", "normal", None),
    ("8", "h.png", "pneumonia", "rsna"),
    ("9", "i.png", "normal", "rsna"),
    ("10", "j.png", "COVID-19", "cohen"),
]
TEST = [("20", "t1.png", "normal", "rsna"), ("21", "t2.png", "COVID-19", "cohen"), ("22", "t3.png", "pneumonia", "rsna")]


def lines(entries):
    """The list file's text, ending in a blank line as some releases do."""
    return "\n".join(" ".join(field for field in entry if field) for entry in entries) + "\n\n"


@pytest.fixture
def covidx(tmp_path):
    root = tmp_path / "COVIDx"
    for folder, entries in (("train", TRAIN), ("test", TEST)):
        (root / folder).mkdir(parents=True)
        (root / f"{folder}.txt").write_text(lines(entries))
        for entry in entries:
            (root / folder / entry[1]).write_bytes(b"")
    return root


def test_three_classes_any_case_and_file_names_with_spaces(covidx):
    entries = read_image_list(covidx / "train.txt")
    assert [target for _, _, target in entries] == [0, 1, 2, 2, 1, 0, 0, 1, 0, 2]
    assert entries[5] == ("6", "scan with space.png", 0)
    assert entries[6] == ("7", "g.png", 0)  # no source column


def test_datalist_splits_and_targets(covidx, tmp_path):
    report = prepare_covidx(covidx, tmp_path / "out")
    content = json.loads((tmp_path / "out" / "covidx.json").read_text())
    assert content["class_names"] == CLASS_NAMES == ["normal", "pneumonia", "COVID-19"]
    assert [(i["image"], i["target"]) for i in content["test"]] == [
        ("../COVIDx/test/t1.png", 0), ("../COVIDx/test/t2.png", 2), ("../COVIDx/test/t3.png", 1)]
    training, validation = train_validation_split(len(TRAIN), 0.2, seed=0)
    assert [i["patient_id"] for i in content["validation"]] == [str(p + 1) for p in validation]
    assert len(content["training"]) == 8 and len(content["validation"]) == 2
    assert {i["image"] for i in content["training"] + content["validation"]} == {
        f"../COVIDx/train/{entry[1]}" for entry in TRAIN}
    assert report.counts["test_COVID-19"] == 1


def test_binary_release_is_refused_with_an_explanation(covidx, tmp_path):
    (covidx / "train.txt").write_text("1 a.png positive bimcv\n")
    with pytest.raises(DataError, match="binary COVIDx release"):
        prepare_covidx(covidx, tmp_path / "out")


def test_missing_list_names_the_file_and_the_lists_there(covidx, tmp_path):
    with pytest.raises(DataError, match=r"train_COVIDx9A.txt: file not found \(.txt files in that folder: \['test.txt', 'train.txt'\]"):
        prepare_covidx(covidx, tmp_path / "out", train_list="train_COVIDx9A.txt")


def test_malformed_line_and_missing_image(covidx, tmp_path):
    (covidx / "test.txt").write_text("20 t1.png\n")
    with pytest.raises(DataError, match="line 1: expected 'patient_id filename class"):
        prepare_covidx(covidx, tmp_path / "out")
    (covidx / "test.txt").write_text(lines(TEST))
    (covidx / "test" / "t2.png").unlink()
    with pytest.raises(DataError, match="t2.png: image not found"):
        prepare_covidx(covidx, tmp_path / "out")
