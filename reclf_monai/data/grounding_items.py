"""Datalist items for phrase grounding: one (image, phrase) per item, and each phrase's region.

Sources:

- IU-Phantom items list their drawn findings (`findings`: type, side, bbox, ...): one phrase per
  finding, built from its type and side ("left pleural effusion"; radiological side words are the
  patient's). Its region is the finding's box intersected with the item's finding mask (`label`,
  the union of all findings), so a box keeps only the pixels that were drawn.
- Datalists with a mask per item and one finding kind (RSNA Pneumonia boxes): every item with the
  same phrase (e.g. "pneumonia"); the region is the whole mask.
- Items that already hold a `phrase` (inference on chosen images).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from .errors import DataError
from .heatmap_files import heatmap_file_stem
from .image_loading import read_display_intensities

PHRASE_KEY = "phrase"
GROUP_KEY = "group"

logger = logging.getLogger("reclf.grounding")


def finding_phrase(finding: Mapping) -> str:
    """"left pleural effusion" for type Pleural Effusion, side left; the type alone without a side."""
    words = [finding["side"], finding["type"]] if finding.get("side") else [finding["type"]]
    return " ".join(words).lower()


def finding_group(finding: Mapping) -> str:
    """The reporting group of a finding: its type and side, e.g. "Pleural Effusion (left)"."""
    return f"{finding['type']} ({finding['side']})" if finding.get("side") else finding["type"]


def phrase_items(items: Sequence[Mapping], phrase: Optional[str] = None) -> list[dict]:
    """One item per (image, phrase), numbered by `item_index` in this list.

    With `phrase`, every item gets it (group: the phrase). Otherwise an item's own `phrase` is
    used, or one item per entry of its `findings` (with `finding` and `bbox` from the record);
    an item with neither is a DataError naming its image.
    """
    expanded = []
    for index, item in enumerate(items):
        if phrase is not None or PHRASE_KEY in item:
            text = phrase if phrase is not None else item[PHRASE_KEY]
            expanded.append({**item, PHRASE_KEY: text, GROUP_KEY: item.get(GROUP_KEY, text)})
        elif "findings" in item:
            for finding in item["findings"]:
                record = {**item, PHRASE_KEY: finding_phrase(finding), GROUP_KEY: finding_group(finding)}
                record["bbox"] = finding.get("bbox")
                expanded.append(record)
        else:
            raise DataError(item.get("image"), f"item {index} has no phrase and no findings: give a phrase (e.g. --phrase pneumonia)")
    for number, item in enumerate(expanded):
        item["item_index"] = number
    return expanded


def grounding_items(items: Sequence[Mapping], region_dir: str | os.PathLike, mask_key: str = "label", region_key: str = "region") -> list[dict]:
    """The items of :func:`phrase_items` that have a region, each with the region's mask file under
    `region_key` and its share of the image under `region_fraction`.

    An item with a `bbox` ([x0, y0, x1, y1], pixels, x1/y1 exclusive) gets the box intersected with
    its mask, written as a 0/255 PNG in `region_dir`; an item without one uses its mask as it is.
    Items whose region is empty (a finding drawn without a box; a negative RSNA image) are left
    out and counted in the log. Items are renumbered (`item_index`) in the returned list.
    """
    region_dir = Path(region_dir)
    kept, skipped = [], 0
    for item in items:
        if mask_key not in item:
            raise DataError(item.get("image"), f"no {mask_key!r} mask to ground the phrase {item.get(PHRASE_KEY)!r} against")
        mask = read_display_intensities(item[mask_key]) >= 0.5  # foreground as chest_xray_transforms reads masks
        if "bbox" in item:
            region = _box_region(item, mask)
            if region is None:
                skipped += 1
                continue
            region_dir.mkdir(parents=True, exist_ok=True)
            path = region_dir / f"{heatmap_file_stem(item['item_index'], item['image'], item[PHRASE_KEY])}_region.png"
            Image.fromarray(region.astype(np.uint8) * 255).save(path)
            kept.append({**item, region_key: str(path), "region_fraction": float(region.mean())})
        else:
            if not mask.any():
                skipped += 1
                continue
            kept.append({**item, region_key: str(item[mask_key]), "region_fraction": float(mask.mean())})
    for number, item in enumerate(kept):
        item["item_index"] = number
    logger.info("grounding: %d phrases with a region; %d without one left out (no box, or an empty mask)", len(kept), skipped)
    return kept


def _box_region(item: Mapping, mask: np.ndarray) -> Optional[np.ndarray]:
    """The mask inside the item's box, or None for no box or nothing drawn inside it."""
    if item["bbox"] is None:
        return None
    x0, y0, x1, y1 = (int(value) for value in item["bbox"])
    region = np.zeros_like(mask)
    region[y0:y1, x0:x1] = mask[y0:y1, x0:x1]
    return region if region.any() else None
