"""CheXpert-v1.0 -> linear-classification datalist and the CheXpert 5x200 evaluation set.

Protocol (GLoRIA / MGCA code, which G2D and later papers reuse):

* **5x200**: from the frontal images of ``train.csv`` (blank labels read as 0), for each of
  the five competition classes, the images where that class is 1 and every other observation
  except "No Finding" is 0 (so the five classes are mutually exclusive and nothing else is
  positive or uncertain); 200 per class drawn with seed 0 exactly as ``DataFrame.sample(n=200,
  random_state=0)`` draws them. Their ``Path`` values are written to a CSV.
* **Splits**: CheXpert's test labels are not public, so the official ``valid.csv`` (expert
  consensus labels) is the **test** set.
* **Views**: frontal only by default (MGCA's ``img_type="Frontal"``).
* **Uncertain labels (-1)**: a per-class mapping, :data:`UNCERTAIN_POLICIES`; blank -> 0.

Where we depart from MGCA: its script removes only the 5x200 *images* from training and draws
5,000 single images for validation from all views, before the view filter (and, dropping the
drawn positions as row labels, lets training and validation overlap). So one patient's images
land in training and validation, and 5x200 patients have images in training. Here training
and validation are split **by patient** (the ``patientNNNNN`` folder of each path); every
patient with a 5x200 image is left out of both, so zero-shot and retrieval on 5x200 never
test on a patient the encoder was trained on; and the validation set is exactly
``validation_size`` images of the kept views, from whole patients drawn with the seed after
the view filter (:func:`~.splits.draw_groups`). The 5x200 draw itself is MGCA's.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path, PurePosixPath

from ..datalist import write_datalist
from ..errors import DataError
from .files import find_missing, relative_path, require_folder
from .reporting import PreparationReport
from .splits import draw_groups, sample_positions
from .tables import read_table

OBSERVATIONS = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
    "Fracture", "Support Devices",
)  # fmt: skip
COMPETITION_CLASSES = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")
# Value an uncertain (-1) label becomes, per competition class.
UNCERTAIN_POLICIES = {
    # U-Ones where the CheXpert paper found it best (Atelectasis, Edema), U-Zeros elsewhere.
    "u-ones-ae": {"Atelectasis": 1.0, "Cardiomegaly": 0.0, "Consolidation": 0.0, "Edema": 1.0, "Pleural Effusion": 0.0},
    # What the GLoRIA and MGCA code does (CHEXPERT_UNCERTAIN_MAPPINGS): also U-Ones for Pleural Effusion.
    "gloria-mgca": {"Atelectasis": 1.0, "Cardiomegaly": 0.0, "Consolidation": 0.0, "Edema": 1.0, "Pleural Effusion": 1.0},
    "u-ones": dict.fromkeys(COMPETITION_CLASSES, 1.0),
    "u-zeros": dict.fromkeys(COMPETITION_CLASSES, 0.0),
}
SAMPLE_RULES = {
    # The 5x200 rule of the GLoRIA/MGCA code: every observation but "No Finding" is checked.
    "mgca": tuple(name for name in OBSERVATIONS if name != "No Finding"),
    # Looser: only the five competition classes are checked.
    "competition": COMPETITION_CLASSES,
}
VIEW_COLUMN = "Frontal/Lateral"
CLASSIFICATION_DATALIST = "chexpert_classification.json"
FIVE_BY_200_DATALIST = "chexpert_5x200.json"
FIVE_BY_200_IDS = "chexpert_5x200_ids.csv"
_PATIENT_FOLDER = re.compile(r"patient\d+")

EXPECTED_LAYOUT = f"""expected layout (CheXpert-v1.0 or CheXpert-v1.0-small from Stanford):
  ROOT/train.csv   Path, Sex, Age, Frontal/Lateral, AP/PA, No Finding, ... (14 observations:
                   1.0 positive, 0.0 negative, -1.0 uncertain, blank not mentioned)
  ROOT/valid.csv   same columns (used as the test set)
  ROOT/train/patientNNNNN/studyN/viewN_frontal.jpg, ROOT/valid/...
  (Path cells start with the download's folder name, e.g. CheXpert-v1.0-small/train/...;
  that first part stands for ROOT, whatever ROOT is called)
writes OUTPUT/{CLASSIFICATION_DATALIST} (target: 5 floats, class_names),
       OUTPUT/{FIVE_BY_200_DATALIST} (split 'test'; target: class index) and
       OUTPUT/{FIVE_BY_200_IDS} (Path, class of every 5x200 image)"""


def _image_path(root: Path, listed: str) -> Path:
    """Image file for a ``Path`` cell: the part from ``train/`` or ``valid/`` on, under `root`."""
    parts = PurePosixPath(listed.replace("\\", "/")).parts
    if parts and parts[0] not in ("train", "valid", "test"):
        parts = parts[1:]
    return root.joinpath(*parts)


def _patient(row: dict[str, str], path: Path) -> str:
    """The patient of a row: the ``patientNNNNN`` folder in its ``Path`` cell."""
    for part in PurePosixPath(row["Path"].replace("\\", "/")).parts:
        if _PATIENT_FOLDER.fullmatch(part):
            return part
    problem = "no patientNNNNN folder in the path, so no patient to split by"
    raise DataError(path, f"row with Path {row['Path']}: {problem}")


def _label(row: dict[str, str], column: str, path: Path) -> float:
    """One observation as 1.0 / 0.0 / -1.0; a blank cell (not mentioned) reads as 0.0."""
    text = row[column]
    try:
        value = float(text) if text else 0.0
    except ValueError:
        value = None
    if value not in (1.0, 0.0, -1.0):
        raise DataError(path, f"row with Path {row['Path']}: {column} is {text!r}, expected 1.0, 0.0, -1.0 or blank")
    return value


def _targets(row: dict[str, str], path: Path, uncertain: dict[str, float]) -> list[float]:
    values = [_label(row, name, path) for name in COMPETITION_CLASSES]
    return [uncertain[name] if value == -1.0 else value for name, value in zip(COMPETITION_CLASSES, values)]


def sample_five_by_200(
    rows: list[dict[str, str]], path: Path, per_class: int = 200, seed: int = 0, rule: str = "mgca"
) -> list[tuple[dict[str, str], str]]:
    """The 5x200 draw from `rows` of `path` (train.csv): (row, class) pairs, class by class."""
    checked = SAMPLE_RULES[rule]
    frontal = [row for row in rows if row[VIEW_COLUMN] == "Frontal"]
    labels = [{name: _label(row, name, path) for name in checked} for row in frontal]
    chosen = []
    for name in COMPETITION_CLASSES:
        candidates = [
            row for row, values in zip(frontal, labels)
            if values[name] == 1.0 and all(values[other] == 0.0 for other in checked if other != name)
        ]  # fmt: skip
        if len(candidates) < per_class:
            raise DataError(
                path, f"only {len(candidates)} frontal images have {name} as their only positive label; need {per_class}"
            )
        chosen += [(candidates[i], name) for i in sample_positions(len(candidates), per_class, seed)]
    return chosen


def _draw_validation_patients(
    rows: list[dict[str, str]], patient_of: dict[str, str], size: int, seed: int, path: Path
) -> set[str]:
    """Patients whose `rows` (images of the kept views) make exactly `size` validation images."""
    available = f"{len(rows)} images of the kept views belong to patients without a 5x200 image"
    if size >= len(rows):
        raise DataError(path, f"{available}, too few for {size} validation images")
    try:
        return draw_groups([patient_of[row["Path"]] for row in rows], size, seed)
    except ValueError as err:
        problem = f"{available}, but whole patients do not make {size} validation images ({err})"
        raise DataError(path, problem) from err


def prepare_chexpert(
    root: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    uncertain: str = "u-ones-ae",
    per_class: int = 200,
    sample_rule: str = "mgca",
    validation_size: int = 5000,
    frontal_only: bool = True,
    seed: int = 0,
    skip_missing_images: bool = False,
) -> PreparationReport:
    """Write the CheXpert classification datalist, the 5x200 datalist and the 5x200 id list."""
    if uncertain not in UNCERTAIN_POLICIES:
        raise ValueError(f"unknown uncertain-label policy {uncertain!r}; choose from {sorted(UNCERTAIN_POLICIES)}")
    root = require_folder(root, "the CheXpert-v1.0 download")
    output_dir = Path(output_dir)
    columns = ["Path", VIEW_COLUMN, *SAMPLE_RULES["mgca"]]
    train_csv, valid_csv = root / "train.csv", root / "valid.csv"
    train_rows = read_table(train_csv, columns)
    test_rows = read_table(valid_csv, columns)

    patient_of = {row["Path"]: _patient(row, train_csv) for row in train_rows}
    shared = {_patient(row, valid_csv) for row in test_rows} & set(patient_of.values())
    if shared:
        problem = f"patient {sorted(shared)[0]} also has images in {train_csv} ({len(shared)} such patient(s))"
        raise DataError(valid_csv, f"{problem}: the test set must not share patients with training")

    five_by_200 = sample_five_by_200(train_rows, train_csv, per_class, seed, sample_rule)
    held_out = {patient_of[row["Path"]] for row, _ in five_by_200}
    kept = [row for row in train_rows if not frontal_only or row[VIEW_COLUMN] == "Frontal"]
    remaining = [row for row in kept if patient_of[row["Path"]] not in held_out]
    validation_patients = _draw_validation_patients(remaining, patient_of, validation_size, seed, train_csv)
    sources = {
        "training": [row for row in remaining if patient_of[row["Path"]] not in validation_patients],
        "validation": [row for row in remaining if patient_of[row["Path"]] in validation_patients],
        "test": [row for row in test_rows if not frontal_only or row[VIEW_COLUMN] == "Frontal"],
    }

    images = {row["Path"]: _image_path(root, row["Path"]) for rows in sources.values() for row in rows}
    images.update({row["Path"]: _image_path(root, row["Path"]) for row, _ in five_by_200})
    missing = find_missing(list(images.values()), f"{train_csv} and {valid_csv}", skip_missing_images)

    policy = UNCERTAIN_POLICIES[uncertain]
    splits = {
        name: [
            {"image": relative_path(images[row["Path"]], output_dir),
             "target": _targets(row, valid_csv if name == "test" else train_csv, policy)}
            for row in rows if images[row["Path"]] not in missing
        ]
        for name, rows in sources.items()
    }  # fmt: skip
    evaluation = [
        {"image": relative_path(images[row["Path"]], output_dir), "target": COMPETITION_CLASSES.index(name)}
        for row, name in five_by_200
        if images[row["Path"]] not in missing
    ]

    report = PreparationReport("chexpert")
    class_names = list(COMPETITION_CLASSES)
    report.outputs.append(
        write_datalist(output_dir / CLASSIFICATION_DATALIST, splits, class_names=class_names, uncertain_policy=uncertain)
    )
    report.outputs.append(write_datalist(output_dir / FIVE_BY_200_DATALIST, {"test": evaluation}, class_names=class_names))
    ids_path = output_dir / FIVE_BY_200_IDS
    with ids_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Path", "class"])
        writer.writerows((row["Path"], name) for row, name in five_by_200)
    report.outputs.append(ids_path)
    report.counts.update(
        train_csv_images=len(train_rows),
        five_by_200=len(evaluation),
        five_by_200_patients=len(held_out),
        five_by_200_patient_images_left_out=len(kept) - len(remaining) - len(five_by_200),
        missing_images_skipped=len(missing),
        **{name: len(items) for name, items in splits.items()},
        training_patients=len({patient_of[row["Path"]] for row in sources["training"]}),
        validation_patients=len(validation_patients),
    )
    return report
