"""RSNA Pneumonia Detection Challenge (stage 2) -> classification and segmentation datalists.

Protocol (GLoRIA / MGCA code): one item per patient (one image each); Target 1 if the patient
has at least one box. Patient ids are sorted (pandas ``groupby`` order) and split with
``train_test_split(random_state=0)``:

* classification: 70 / 15 / 15 (``test_size=0.3``, then halves);
* segmentation (and MGCA's detection): ``test_size=5337 * 2``, i.e. 16,010 / 5,337 / 5,337 of
  the 26,684 patients, the split G2D reports; written here as a fraction (0.2 + 0.2), which
  gives the same counts and the same partition for 26,684 ids.

Boxes become rectangular masks the size of the DICOM (every pixel a box touches); negative
patients get an empty mask, as in MGCA's segmentation data.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..datalist import write_datalist
from ..errors import DataError
from .files import dicom_shape, find_missing, relative_path, require_folder
from .masks import boxes_to_mask, write_mask
from .reporting import PreparationReport, progress
from .splits import holdout_split
from .tables import read_table

LABEL_TABLE = "stage_2_train_labels.csv"
IMAGE_FOLDER = "stage_2_train_images"
CLASS_NAMES = ["Normal", "Pneumonia"]
CLASSIFICATION_HOLDOUT = 0.15
SEGMENTATION_HOLDOUT = 0.2
CLASSIFICATION_DATALIST = "rsna_pneumonia_classification.json"
SEGMENTATION_DATALIST = "rsna_pneumonia_segmentation.json"
MASK_FOLDER = "masks/rsna_pneumonia"

EXPECTED_LAYOUT = f"""expected layout (RSNA Pneumonia Detection Challenge, stage 2, from Kaggle):
  ROOT/{LABEL_TABLE}     patientId, x, y, width, height, Target (one row per box;
                                      one row with blank box and Target 0 for negatives)
  ROOT/{IMAGE_FOLDER}/PATIENTID.dcm
writes OUTPUT/{CLASSIFICATION_DATALIST} (image, target),
       OUTPUT/{SEGMENTATION_DATALIST} (image, label = mask PNG, target) and
       OUTPUT/{MASK_FOLDER}/PATIENTID.png (0 / 255, DICOM size, display orientation);
target is an index into class_names {CLASS_NAMES} ("Normal" = Target 0)"""


def read_boxes(table: Path) -> dict[str, list[tuple[float, float, float, float]]]:
    """Patient id -> its boxes ``(x, y, width, height)`` (empty for Target 0), in table order."""
    boxes: dict[str, list[tuple[float, float, float, float]]] = {}
    for row in read_table(table, ["patientId", "x", "y", "width", "height", "Target"]):
        patient = boxes.setdefault(row["patientId"], [])
        if row["Target"] == "0":
            continue
        if row["Target"] != "1":
            raise DataError(table, f"patientId {row['patientId']}: Target is {row['Target']!r}, expected 0 or 1")
        try:
            patient.append(tuple(float(row[name]) for name in ("x", "y", "width", "height")))
        except ValueError:
            problem = f"patientId {row['patientId']}: Target 1 needs numeric x, y, width, height"
            raise DataError(table, problem) from None
    return boxes


def prepare_rsna_pneumonia(
    root: str | os.PathLike, output_dir: str | os.PathLike, *, seed: int = 0, skip_missing_images: bool = False
) -> PreparationReport:
    """Write the RSNA classification and segmentation datalists and the box masks."""
    root = require_folder(root, "the RSNA Pneumonia Detection Challenge download")
    output_dir = Path(output_dir)
    table = root / LABEL_TABLE
    boxes = read_boxes(table)
    patients = sorted(boxes)
    # Split all listed patients first, so that missing files do not move anyone between splits.
    classification_split = holdout_split(patients, CLASSIFICATION_HOLDOUT, seed)
    segmentation_split = holdout_split(patients, SEGMENTATION_HOLDOUT, seed)
    images = {patient: root / IMAGE_FOLDER / f"{patient}.dcm" for patient in patients}
    missing = find_missing(list(images.values()), table, skip_missing_images)

    classification = {name: [] for name in ("training", "validation", "test")}
    segmentation = {name: [] for name in ("training", "validation", "test")}
    for patient in progress(patients, "writing RSNA masks"):
        if images[patient] in missing:
            continue
        mask = boxes_to_mask(boxes[patient], dicom_shape(images[patient]))
        mask_path = write_mask(output_dir / MASK_FOLDER / f"{patient}.png", mask)
        item = {"image": relative_path(images[patient], output_dir), "target": int(bool(boxes[patient]))}
        classification[classification_split[patient]].append(item)
        segmentation[segmentation_split[patient]].append({**item, "label": relative_path(mask_path, output_dir)})

    report = PreparationReport("rsna_pneumonia")
    report.outputs.append(write_datalist(output_dir / CLASSIFICATION_DATALIST, classification, class_names=CLASS_NAMES))
    report.outputs.append(write_datalist(output_dir / SEGMENTATION_DATALIST, segmentation, class_names=CLASS_NAMES))
    report.counts.update(
        patients=len(patients),
        positive=sum(bool(boxes[p]) for p in patients if images[p] not in missing),
        boxes=sum(len(b) for b in boxes.values()),
        missing_images_skipped=len(missing),
        **{f"classification_{name}": len(items) for name, items in classification.items()},
        **{f"segmentation_{name}": len(items) for name, items in segmentation.items()},
    )
    return report
