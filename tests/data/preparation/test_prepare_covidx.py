import json
import logging

import pytest
from dataset_layouts import COVIDX_TEST, COVIDX_TRAIN, covidx_list

from reclf_monai.data.errors import DataError
from reclf_monai.data.preparation.covidx import CLASS_NAMES, prepare_covidx, read_image_list
from reclf_monai.data.preparation.splits import train_validation_split


@pytest.fixture
def covidx(tmp_path):
    root = tmp_path / "COVIDx"
    for folder, entries in (("train", COVIDX_TRAIN), ("test", COVIDX_TEST)):
        (root / folder).mkdir(parents=True)
        (root / f"{folder}.txt").write_text(covidx_list(entries))
        for entry in entries:
            (root / folder / entry[1]).write_bytes(b"")
    return root


def test_three_classes_in_any_case(covidx):
    entries = read_image_list(covidx / "train.txt")
    assert [target for _, _, target in entries] == [0, 1, 2, 2, 1, 2, 0, 1, 0, 2]
    assert [target for _, _, target in read_image_list(covidx / "test.txt")] == [0, 2, 1]


@pytest.mark.parametrize(
    "line, entry",
    [
        ("7 g.png normal", ("7", "g.png", 0)),  # 3 tokens: no source (COVIDx up to v5)
        ("419639-003251 MIDRC-RICORD-1C-419639-003251-46647-0.png COVID-19 ricord",
         ("419639-003251", "MIDRC-RICORD-1C-419639-003251-46647-0.png", 2)),  # 4 tokens (9A)
        ("COVID 1 COVID(1).png COVID-19 sirm", ("COVID 1", "COVID(1).png", 2)),  # 5 tokens (7A/8A)
        ("COVID 1 COVID(1).png COVID-19", ("COVID 1", "COVID(1).png", 2)),  # patient with a space, no source
        ("  3   SARS-Fig8a-day0.jpeg\tpneumonia  ", ("3", "SARS-Fig8a-day0.jpeg", 1)),  # any white space
    ],
)  # fmt: skip
def test_list_lines_of_three_four_and_five_tokens(tmp_path, line, entry):
    path = tmp_path / "train_COVIDx8A.txt"
    path.write_text(f"{line}\n")
    assert read_image_list(path) == [entry]


def test_datalist_splits_and_targets(covidx, tmp_path):
    report = prepare_covidx(covidx, tmp_path / "out")
    content = json.loads((tmp_path / "out" / "covidx.json").read_text())
    assert content["class_names"] == CLASS_NAMES == ["normal", "pneumonia", "COVID-19"]
    assert [(i["image"], i["target"], i["patient_id"]) for i in content["test"]] == [
        ("../COVIDx/test/t1.png", 0, "20"), ("../COVIDx/test/COVID(70).png", 2, "COVID 70"),
        ("../COVIDx/test/t3.png", 1, "22")]  # fmt: skip
    training, validation = train_validation_split(len(COVIDX_TRAIN), 0.2, seed=0)
    assert [i["patient_id"] for i in content["validation"]] == [COVIDX_TRAIN[p][0] for p in validation]
    assert len(content["training"]) == 8 and len(content["validation"]) == 2
    assert {i["image"] for i in content["training"] + content["validation"]} == {
        f"../COVIDx/train/{entry[1]}" for entry in COVIDX_TRAIN}
    assert report.counts["test_COVID-19"] == 1 and report.counts["missing_images_skipped"] == 0


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
    (covidx / "test.txt").write_text(covidx_list(COVIDX_TEST))
    (covidx / "test" / "t3.png").unlink()
    with pytest.raises(DataError, match="t3.png: image not found"):
        prepare_covidx(covidx, tmp_path / "out")


def test_skipping_many_missing_images_warns_with_the_count(covidx, tmp_path, caplog):
    for name in ("COVID(6).png", "COVID(10).png"):
        (covidx / "train" / name).unlink()
    report = prepare_covidx(covidx, tmp_path / "out", skip_missing_images=True)
    assert report.counts["missing_images_skipped"] == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "2 of 13 images listed in" in warnings[0] and "(15.4%, more than 1%)" in warnings[0]
