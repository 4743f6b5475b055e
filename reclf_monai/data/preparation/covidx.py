"""COVIDx (3-class: normal / pneumonia / COVID-19) -> linear-classification datalist.

Protocol (MGCA ``preprocess/covidx.py``): the official test list is the test set; the official
training list is split 80 / 20 into training and validation by rows, with
``train_test_split(train_size=0.8, random_state=0)``. Rows, not patients, as in MGCA: one
patient's images can sit on both sides of that split. Class indices are MGCA's: normal 0,
pneumonia 1, COVID-19 2; the spelling of the class varies across releases and is matched
without regard to case.

Only the 3-class releases fit (COVIDx up to v9A, e.g. ``train_COVIDx9A.txt``); COVIDx CXR-2
and later are binary (positive / negative) and are refused with a clear error.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..datalist import write_datalist
from ..errors import DataError
from .files import find_missing, relative_path, require_folder
from .reporting import PreparationReport
from .splits import train_validation_split

CLASS_NAMES = ["normal", "pneumonia", "COVID-19"]
_CLASS_SPELLINGS = {"normal": 0, "pneumonia": 1, "covid-19": 2, "covid19": 2}
_BINARY_LABELS = {"positive", "negative"}
VALIDATION_FRACTION = 0.2
DATALIST_NAME = "covidx.json"

EXPECTED_LAYOUT = f"""expected layout (COVIDx from the COVID-Net project, a 3-class release):
  ROOT/train.txt, ROOT/test.txt   one image per line: patient_id filename class [source]
                                  (the patient id may hold a space, as in 'COVID 1' of the 7A/8A
                                  lists; class normal / pneumonia / COVID-19, any case; other list
                                  names with --train-list / --test-list, e.g. train_COVIDx9A.txt)
  ROOT/train/FILENAME, ROOT/test/FILENAME
writes OUTPUT/{DATALIST_NAME} (image, target, patient_id); target indexes class_names {CLASS_NAMES}"""


def read_image_list(path: Path) -> list[tuple[str, str, int]]:
    """(patient_id, filename, class index) per line of a COVIDx list file.

    Lines are ``patient_id filename class [source]``, split at white space. The 7A/8A lists have
    patient ids with a space (``COVID 1 COVID(1).png COVID-19 sirm``), so the fields are read from
    the end: the class is the last token or, when a source follows, the one before it; the file
    name is the token before the class; the patient id is all that comes before the file name.
    """
    if not path.is_file():
        others = sorted(p.name for p in path.parent.glob("*.txt")) if path.parent.is_dir() else []
        raise DataError(path, f"file not found (.txt files in that folder: {others or 'none'})")
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        known = set(_CLASS_SPELLINGS) | _BINARY_LABELS
        positions = [i for i in (len(fields) - 2, len(fields) - 1) if i >= 2 and fields[i].lower() in known]
        if not positions:
            raise DataError(path, f"line {number}: expected 'patient_id filename class [source]', got {line!r}")
        position = positions[0]  # a class before the last token means the last one is the source
        label = fields[position].lower()
        if label in _BINARY_LABELS:
            raise DataError(
                path,
                f"line {number}: class {fields[position]!r} belongs to a binary COVIDx release (CXR-2 or later); "
                "the 3-class protocol needs a normal / pneumonia / COVID-19 release such as COVIDx9A",
            )
        entries.append((" ".join(fields[: position - 1]), fields[position - 1], _CLASS_SPELLINGS[label]))
    if not entries:
        raise DataError(path, "no image lines")
    return entries


def prepare_covidx(
    root: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    train_list: str = "train.txt",
    test_list: str = "test.txt",
    seed: int = 0,
    skip_missing_images: bool = False,
) -> PreparationReport:
    """Write ``OUTPUT/covidx.json`` from a 3-class COVIDx release."""
    root = require_folder(root, "the COVIDx download")
    output_dir = Path(output_dir)
    train_path, test_path = root / train_list, root / test_list
    train_entries, test_entries = read_image_list(train_path), read_image_list(test_path)
    training, validation = train_validation_split(len(train_entries), VALIDATION_FRACTION, seed)
    sources = {
        "training": [(train_entries[i], root / "train") for i in training],
        "validation": [(train_entries[i], root / "train") for i in validation],
        "test": [(entry, root / "test") for entry in test_entries],
    }
    images = [folder / filename for rows in sources.values() for (_, filename, _), folder in rows]
    missing = find_missing(images, f"{train_path} and {test_path}", skip_missing_images)
    splits = {
        name: [
            {"image": relative_path(folder / filename, output_dir), "target": target, "patient_id": patient}
            for (patient, filename, target), folder in rows
            if folder / filename not in missing
        ]
        for name, rows in sources.items()
    }
    report = PreparationReport("covidx")
    report.outputs.append(write_datalist(output_dir / DATALIST_NAME, splits, class_names=CLASS_NAMES))
    report.counts.update(
        missing_images_skipped=len(missing),
        **{name: len(items) for name, items in splits.items()},
        **{f"test_{name}": sum(item["target"] == i for item in splits["test"]) for i, name in enumerate(CLASS_NAMES)},
    )
    return report
