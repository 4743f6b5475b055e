"""SIIM-ACR Pneumothorax Segmentation (stage 1) -> segmentation datalist with mask PNGs.

Protocol (GLoRIA / MGCA code): 70 / 15 / 15 split with ``train_test_split(random_state=0)``;
for segmentation training, all positive images plus as many negatives drawn at random
(MGCA ``SIIMImageDataset``), validation and test keep every image. Two deliberate
differences: MGCA splits the *rows* of ``train-rle.csv``, so an image with several rows can
land in two splits; here the unit is the image (sorted ImageIds), and the rows of one image
are merged (union of their masks). The negatives are drawn once, with the seed, instead of at
every run.

Masks: the competition's column-major relative RLE (:mod:`.rle`) decoded onto the DICOM's
Rows x Columns grid, written in display orientation.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..datalist import write_datalist
from ..errors import DataError
from .files import dicom_shape, find_missing, index_by_stem, relative_path, require_folder
from .masks import write_mask
from .reporting import PreparationReport, progress
from .rle import EMPTY_MARKER, decode_rle
from .splits import holdout_split, sample_positions
from .tables import read_table

RLE_TABLE = "train-rle.csv"
IMAGE_FOLDER = "dicom-images-train"
CLASS_NAMES = ["Normal", "Pneumothorax"]
HOLDOUT = 0.15
DATALIST_NAME = "siim_pneumothorax.json"
MASK_FOLDER = "masks/siim_pneumothorax"

EXPECTED_LAYOUT = f"""expected layout (SIIM-ACR Pneumothorax Segmentation, stage 1 training data):
  ROOT/{RLE_TABLE}            ImageId, EncodedPixels (relative column-major RLE, -1 = no
                                 pneumothorax; several rows for an image are merged)
  ROOT/{IMAGE_FOLDER}/**/IMAGEID.dcm   (any depth; ImageId = file name without .dcm)
writes OUTPUT/{DATALIST_NAME} (image, label = mask PNG, target) and
       OUTPUT/{MASK_FOLDER}/IMAGEID.png (0 / 255, DICOM size, display orientation);
target is an index into class_names {CLASS_NAMES}"""


def read_encodings(table: Path) -> dict[str, list[str]]:
    """ImageId -> its RLE strings (``-1`` rows dropped, so a negative image has none)."""
    encodings: dict[str, list[str]] = {}
    for row in read_table(table, ["ImageId", "EncodedPixels"]):
        if not row["ImageId"]:
            raise DataError(table, "a row has an empty ImageId")
        runs = encodings.setdefault(row["ImageId"], [])
        if row["EncodedPixels"] not in (EMPTY_MARKER, ""):
            runs.append(row["EncodedPixels"])
    return encodings


def decode_image_mask(encodings: list[str], shape: tuple[int, int], table: Path, image_id: str) -> np.ndarray:
    """Union of the masks of one image's RLE rows."""
    mask = np.zeros(shape, dtype=bool)
    for rle in encodings:
        try:
            mask |= decode_rle(rle, shape)
        except ValueError as err:
            raise DataError(table, f"ImageId {image_id}: {err}") from None
    return mask


def prepare_siim_pneumothorax(
    root: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    seed: int = 0,
    balance_training: bool = True,
    skip_missing_images: bool = False,
) -> PreparationReport:
    """Write the SIIM segmentation datalist and the decoded masks."""
    root = require_folder(root, "the SIIM-ACR Pneumothorax download")
    output_dir = Path(output_dir)
    table = root / RLE_TABLE
    encodings = read_encodings(table)
    dicoms = index_by_stem(require_folder(root / IMAGE_FOLDER, "the training DICOMs"), ".dcm")
    image_ids = sorted(encodings)
    split = holdout_split(image_ids, HOLDOUT, seed)
    images = {image_id: dicoms.get(image_id, root / IMAGE_FOLDER / f"{image_id}.dcm") for image_id in image_ids}
    missing = find_missing(list(images.values()), table, skip_missing_images)

    splits: dict[str, list[dict]] = {name: [] for name in ("training", "validation", "test")}
    for image_id in progress(image_ids, "writing SIIM masks"):
        if images[image_id] in missing:
            continue
        mask = decode_image_mask(encodings[image_id], dicom_shape(images[image_id]), table, image_id)
        mask_path = write_mask(output_dir / MASK_FOLDER / f"{image_id}.png", mask)
        splits[split[image_id]].append(
            {
                "image": relative_path(images[image_id], output_dir),
                "label": relative_path(mask_path, output_dir),
                "target": int(mask.any()),
            }
        )

    negatives_dropped = 0
    if balance_training:
        training = splits["training"]
        negatives = [i for i, item in enumerate(training) if item["target"] == 0]
        positive_count = len(training) - len(negatives)
        if len(negatives) > positive_count:
            kept = {negatives[i] for i in sample_positions(len(negatives), positive_count, seed)}
            negatives_dropped = len(negatives) - positive_count
            splits["training"] = [item for i, item in enumerate(training) if item["target"] == 1 or i in kept]

    report = PreparationReport("siim_pneumothorax")
    report.outputs.append(
        write_datalist(output_dir / DATALIST_NAME, splits, class_names=CLASS_NAMES, balanced_training=balance_training)
    )
    kept_images = [image_id for image_id in image_ids if images[image_id] not in missing]
    report.counts.update(
        images=len(image_ids),
        positive=sum(bool(encodings[i]) for i in kept_images),
        multi_row_images=sum(len(encodings[i]) > 1 for i in image_ids),
        missing_images_skipped=len(missing),
        training_negatives_dropped=negatives_dropped,
        **{name: len(items) for name, items in splits.items()},
    )
    return report
