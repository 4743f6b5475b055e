"""Label-fraction subsets for segmentation, where an item's class is "mask empty" or "mask not empty".

:func:`~reclf_monai.data.subsets.label_fraction` needs a class per item. A segmentation datalist
has masks, not classes, and what must not go missing from a 1 % subset is either kind of image:
those with something to segment and those without (SIIM and RSNA negatives, IU-Phantom reports
with no drawn finding), or a model could score by always predicting one of them. The class is
read from the mask file itself, so it holds for every dataset whatever other fields it carries.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .image_loading import read_display_intensities
from .subsets import label_fraction

MASK_CLASS_KEY = "mask_nonempty"

logger = logging.getLogger("reclf.data")


def mask_is_nonempty(path) -> int:
    """1 if the mask has a foreground pixel (stored value >= 0.5, as the bundles binarise it), else 0."""
    return int(bool(np.any(read_display_intensities(path) >= 0.5)))


def mask_fraction(items: Sequence[Mapping], fraction: float, seed: int = 0, label_key: str = "label", workers: int = 2) -> list[dict]:
    """The `fraction` subset of segmentation `items`: nested, reproducible, with empty and non-empty masks.

    :func:`label_fraction` with the classes 0 (empty mask) and 1 (non-empty), each item marked
    under ``mask_nonempty``. At 1.0 every item is returned as given, without reading the masks
    (the same set label_fraction would return).
    """
    fraction = float(fraction)
    if fraction == 1.0:
        return [dict(item) for item in items]
    if not 0 < fraction < 1:
        raise ValueError(f"data_fraction must be in (0, 1], got {fraction}")
    with ThreadPoolExecutor(max_workers=max(1, int(workers))) as pool:
        classes = list(pool.map(mask_is_nonempty, [item[label_key] for item in items]))
    marked = [{**item, MASK_CLASS_KEY: value} for item, value in zip(items, classes)]
    subset = label_fraction(marked, fraction, MASK_CLASS_KEY, seed)
    logger.info(
        "data_fraction %s: %d of %d training items (%d with a non-empty mask, %d in all)",
        fraction, len(subset), len(items), sum(item[MASK_CLASS_KEY] for item in subset), sum(classes),
    )
    return subset
