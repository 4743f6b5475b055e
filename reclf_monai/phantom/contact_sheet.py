"""A contact sheet of IU-Phantom: a grid of images with finding outlines and report excerpts.

Used by the demo to show what the corpus looks like. Items are chosen to cover many finding
types: first one image per zero-shot class, then images with types not shown yet, then normals.
"""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy.ndimage import binary_erosion

from ..data.datalist import SPLITS
from ..data.errors import DataError
from .zero_shot_classes import ZERO_SHOT_CLASSES, single_class

OUTLINE_COLOUR = (255, 64, 32)
TEXT_LINES = 4


def choose_items(items: Sequence[dict], count: int) -> list[dict]:
    """Up to `count` items covering as many finding types as possible (deterministic)."""
    ordered = sorted(items, key=lambda item: item["uid"])
    chosen: list[dict] = []
    for name in ZERO_SHOT_CLASSES:
        match = next((item for item in ordered if single_class(item.get("classes", [])) == name and item not in chosen), None)
        if match is not None and len(chosen) < count:
            chosen.append(match)
    shown = {t for item in chosen for t in item.get("classes", [])}
    for item in ordered:
        new = set(item.get("classes", [])) - shown
        if len(chosen) < count and new and item not in chosen:
            chosen.append(item)
            shown |= new
    for item in ordered:
        if len(chosen) < count and not item.get("classes") and item not in chosen:
            chosen.append(item)
    return chosen[:count]


def _tile(folder: Path, item: dict, size: int, font) -> Image.Image:
    image = Image.open(folder / item["image"]).convert("L").resize((size, size), Image.BILINEAR)
    tile = np.repeat(np.asarray(image)[..., None], 3, axis=2)
    if item.get("label"):
        mask = np.asarray(Image.open(folder / item["label"]).convert("L").resize((size, size), Image.NEAREST)) > 127
        tile[mask & ~binary_erosion(mask)] = OUTLINE_COLOUR
    line_height = 12
    canvas = Image.new("RGB", (size, size + line_height * (TEXT_LINES + 1) + 4), "white")
    canvas.paste(Image.fromarray(tile), (0, 0))
    draw = ImageDraw.Draw(canvas)
    findings = ", ".join(item.get("classes", [])) or "normal"
    draw.text((3, size + 2), textwrap.shorten(findings, width=size // 6), fill=(160, 0, 0), font=font)
    lines = textwrap.wrap(item.get("report", ""), width=size // 6)[:TEXT_LINES]
    for row, line in enumerate(lines, start=1):
        draw.text((3, size + 2 + row * line_height), line, fill="black", font=font)
    return canvas


def make_contact_sheet(datalist: str | os.PathLike, output: str | os.PathLike, count: int = 12, columns: int = 4, tile_size: int = 224) -> Path:
    """Write a PNG grid of `count` images of the datalist (all splits) to `output`."""
    datalist = Path(datalist)
    try:
        content = json.loads(datalist.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(datalist, f"cannot read datalist ({err})") from err
    items = [item for split in SPLITS for item in content.get(split, [])]
    if not items:
        raise DataError(datalist, "datalist has no items")
    chosen = choose_items(items, count)
    font = ImageFont.load_default()
    tiles = [_tile(datalist.parent, item, tile_size, font) for item in chosen]
    rows = -(-len(tiles) // columns)
    width, height = tiles[0].size
    sheet = Image.new("RGB", (columns * width + (columns + 1) * 4, rows * height + (rows + 1) * 4), (90, 90, 90))
    for index, tile in enumerate(tiles):
        row, column = divmod(index, columns)
        sheet.paste(tile, (4 + column * (width + 4), 4 + row * (height + 4)))
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(output)
    return output
