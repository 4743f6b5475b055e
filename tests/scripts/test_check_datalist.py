import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from repository import ROOT
from sample_files import real_chest_dicom

from reclf_monai.data import (
    DataError,
    check_datalist_items,
    datalist_splits,
    drop_unreadable_items,
    load_datalist,
    readable_items,
)

SIZE = 32
REPORT = "Heart size normal. No pleural effusion."

# Index in the training split -> what the reason must say. Indexes 0, 6 and 7 are good items.
EXPECTED_REASONS = {
    1: r"unreadable or corrupt image \(.*truncated",
    2: r"file not found",
    3: r"unreadable or corrupt image \(cannot identify image file",
    4: r"report under key 'report' is empty",
    5: r"neither 'image' nor 'report'",
    8: r"cannot decode DICOM pixel data",
    9: r"^TypeError: .*; report under key 'report' is not text \(int\)$",  # not a DataError, and both faults
}
GOOD_TRAINING = {0, 6, 7}


def write_png(path: Path, seed: int) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture(scope="module")
def datalist(tmp_path_factory) -> Path:
    """A datalist whose training split mixes good items with one of each kind of bad item."""
    folder = tmp_path_factory.mktemp("data")
    images = folder / "images"
    images.mkdir()
    for seed in range(4):
        write_png(images / f"good{seed}.png", seed)
    truncated = write_png(images / "truncated.png", 9)
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    (images / "text.png").write_text("this is not an image")
    dicom = real_chest_dicom().read_bytes()
    (images / "truncated.dcm").write_bytes(dicom[: len(dicom) // 2])
    training = [
        {"image": "images/good0.png", "report": REPORT},
        {"image": "images/truncated.png", "report": REPORT},
        {"image": "images/missing.png", "report": REPORT},
        {"image": "images/text.png", "report": REPORT},
        {"image": "images/good1.png", "report": "   "},
        {"target": 1},
        {"report": REPORT},
        {"image": str(real_chest_dicom()), "report": REPORT},
        {"image": "images/truncated.dcm"},
        {"image": 7, "report": 42},
    ]
    validation = [{"image": f"images/good{seed}.png", "report": REPORT} for seed in (2, 3)]
    path = folder / "datalist.json"
    path.write_text(json.dumps({"training": training, "validation": validation, "class_names": ["A", "B"]}))
    return path


def training_items(datalist: Path) -> list[dict]:
    return load_datalist(datalist, "training", required_keys=())


def test_check_lists_each_bad_item_with_its_problem(datalist):
    items = training_items(datalist)
    check = check_datalist_items(items, "training", image_size=SIZE, workers=2)
    assert check.split == "training" and check.checked == len(items)
    reasons = {bad.index: bad.reason for bad in check.bad_items}
    assert set(reasons) == set(EXPECTED_REASONS), reasons
    for index, pattern in EXPECTED_REASONS.items():
        assert re.search(pattern, reasons[index]), (index, reasons[index])
    images = {bad.index: bad.image for bad in check.bad_items}
    assert images[2] == str(datalist.parent / "images" / "missing.png")
    assert images[5] is None
    assert all(bad.split == "training" for bad in check.bad_items)


def test_check_of_good_items_finds_nothing(datalist):
    items = load_datalist(datalist, "validation")
    check = check_datalist_items(items, "validation", image_size=SIZE, workers=1)
    assert (check.checked, check.bad_items) == (2, ())


def run_script(*arguments: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "scripts" / "check_datalist.py"), *arguments]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300)


@pytest.mark.end_to_end
def test_script_prints_every_bad_item_and_exits_1(datalist):
    result = run_script(str(datalist), "--image_size", str(SIZE), "--workers", "2")
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    for index in EXPECTED_REASONS:
        assert any(line.startswith(f"training[{index}] ") for line in lines), (index, result.stdout)
    for name in ("truncated.png", "missing.png", "text.png", "good1.png", "truncated.dcm"):
        assert str(datalist.parent / "images" / name) in result.stdout
    assert "good0.png" not in result.stdout and "RG1_UNCI" not in result.stdout
    assert lines[-1] == "checked 12 items, 7 bad (training 7 of 10, validation 0 of 2)"


def load_script_main():
    """The script's `main`, for the cases below that need no process of their own (the test above
    runs the script itself)."""
    from scripts import check_datalist

    return check_datalist.main


def test_script_exits_0_when_the_chosen_splits_are_good(datalist, capsys):
    assert load_script_main()([str(datalist), "--split", "validation", "--image_size", str(SIZE), "--workers", "1"]) == 0
    assert capsys.readouterr().out.splitlines() == ["checked 2 items, 0 bad (validation 0 of 2)"]


def test_script_exits_2_naming_a_missing_datalist(tmp_path, capsys):
    assert load_script_main()([str(tmp_path / "missing.json")]) == 2
    assert capsys.readouterr().err.strip() == f"check_datalist: {tmp_path / 'missing.json'}: datalist file not found"


@pytest.mark.parametrize(
    "content, arguments, problem",
    [
        ("{not json", [], "not valid JSON"),
        ("[1, 2]", [], "top level is a JSON list"),
        (json.dumps({"training": [{"report": REPORT}]}), ["--split", "test"], "no split 'test'; has ['training']"),
    ],
)
def test_script_exits_2_on_an_unusable_datalist(tmp_path, capsys, content, arguments, problem):
    path = tmp_path / "datalist.json"
    path.write_text(content)
    assert load_script_main()([str(path), *arguments]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"check_datalist: {path}: ") and problem in error and "\n" not in error


def test_drop_keeps_the_good_items_and_reports_the_bad(datalist, tmp_path, caplog):
    items = training_items(datalist)
    report_file = tmp_path / "out" / "unreadable_items_training.json"
    with caplog.at_level(logging.WARNING, logger="reclf_monai.data.datalist_check"):
        kept = drop_unreadable_items(items, "training", report_file, image_size=SIZE, workers=2)
    assert kept == [items[index] for index in sorted(GOOD_TRAINING)]
    report = json.loads(report_file.read_text())
    assert (report["split"], report["checked"], report["dropped"]) == ("training", 10, len(EXPECTED_REASONS))
    assert [entry["index"] for entry in report["items"]] == sorted(EXPECTED_REASONS)
    assert set(report["items"][0]) == {"index", "image", "reason"}
    assert "dropped 7 of 10" in caplog.text


@pytest.mark.parametrize("switch", ["false", False, "off"])
def test_readable_items_switched_off_keeps_every_item_and_writes_no_report(datalist, tmp_path, switch):
    items = training_items(datalist)
    assert readable_items(items, "training", tmp_path, switch, image_size=SIZE, workers=1) == items
    assert list(tmp_path.iterdir()) == []


def test_readable_items_switched_on_drops_the_bad_and_reports_them_beside_the_run(datalist, tmp_path):
    items = training_items(datalist)
    kept = readable_items(items, "training", tmp_path, "true", image_size=SIZE, workers=2)
    assert kept == [items[index] for index in sorted(GOOD_TRAINING)]
    assert json.loads((tmp_path / "unreadable_items_training.json").read_text())["dropped"] == len(EXPECTED_REASONS)
    with pytest.raises(ValueError, match="--skip_unreadable_items must be true or false"):
        readable_items(items, "training", tmp_path, "sometimes")


def test_drop_writes_an_empty_report_when_all_items_are_good(datalist, tmp_path):
    items = load_datalist(datalist, "validation")
    report_file = tmp_path / "unreadable_items_validation.json"
    assert drop_unreadable_items(items, "validation", report_file, image_size=SIZE, workers=1) == items
    assert json.loads(report_file.read_text()) == {"split": "validation", "checked": 2, "dropped": 0, "items": []}


def test_drop_raises_when_every_item_is_bad(datalist, tmp_path):
    items = [item for index, item in enumerate(training_items(datalist)) if index in EXPECTED_REASONS]
    report_file = tmp_path / "unreadable_items_training.json"
    with pytest.raises(DataError, match="all 7 items of split 'training' are unreadable") as info:
        drop_unreadable_items(items, "training", report_file, image_size=SIZE, workers=2)
    assert info.value.path == str(report_file)
    assert json.loads(report_file.read_text())["dropped"] == 7


def test_datalist_splits_are_the_lists_of_items(datalist, tmp_path):
    assert datalist_splits(datalist) == ["training", "validation"]  # not class_names
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"test": [], "seed": 3}))
    assert datalist_splits(empty) == ["test"]
