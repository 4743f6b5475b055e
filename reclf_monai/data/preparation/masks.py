"""Segmentation masks as PNG files: 8-bit, 0 = background, 255 = finding, display orientation.

Masks have the size of their image (Rows x Columns of the DICOM) and are stored the way the
image is displayed, so the project's loader (:mod:`reclf_monai.data.image_loading`) returns
image and mask with the same (rows, columns) shape; it reads mask values unscaled and takes
values >= 0.5 as foreground, so 255 loads as 1.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

FOREGROUND = 255


def boxes_to_mask(boxes: Iterable[tuple[float, float, float, float]], shape: tuple[int, int]) -> np.ndarray:
    """Boolean mask of `shape` (rows, cols) covering every pixel touched by a box.

    Boxes are ``(x, y, width, height)`` in pixels with x along columns and y along rows
    (RSNA's ``stage_2_train_labels.csv`` convention); they are clipped to the image.
    """
    rows, cols = shape
    mask = np.zeros(shape, dtype=bool)
    for x, y, width, height in boxes:
        top, bottom = max(0, math.floor(y)), min(rows, math.ceil(y + height))
        left, right = max(0, math.floor(x)), min(cols, math.ceil(x + width))
        mask[top:bottom, left:right] = True
    return mask


def write_mask(path: str | os.PathLike, mask: np.ndarray) -> Path:
    """Write a 2D mask (non-zero = finding) as an 8-bit PNG holding 0 and 255."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.where(np.asarray(mask) != 0, FOREGROUND, 0).astype(np.uint8)).save(path)
    return path
