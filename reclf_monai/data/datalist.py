"""Datalists in MONAI decathlon format: one JSON file with `training` / `validation` / `test`.

Every dataset, real or demo, is written in this format so that one loader serves every bundle.
Reading goes through :func:`monai.data.load_decathlon_datalist`, which resolves `image` and
`label` paths relative to the datalist's folder.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from monai.data import load_decathlon_datalist

from .errors import DataError

SPLITS = ("training", "validation", "test")


def write_datalist(path: str | os.PathLike, splits: Mapping[str, Sequence[Mapping]], **extra) -> Path:
    """Write `splits` (split name -> items) as a datalist JSON; `extra` adds top-level keys.

    Paths in items are written as given: keep them relative to the datalist's folder.
    The file is written to a temporary name first, so an interrupted write never leaves a
    truncated datalist behind.
    """
    path = Path(path)
    for name, items in splits.items():
        for index, item in enumerate(items):
            if "image" not in item:
                raise DataError(path, f"split {name!r} item {index} has no 'image' key")
    path.parent.mkdir(parents=True, exist_ok=True)
    content = {**extra, **{name: list(items) for name, items in splits.items()}}
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(content, indent=1))
    os.replace(tmp, path)
    return path


def load_datalist(path: str | os.PathLike, split: str = "training", base_dir: str | os.PathLike | None = None) -> list[dict]:
    """Read one split with absolute `image` / `label` paths; clear errors for a bad file or split."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "datalist file not found")
    try:
        content = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(path, f"not valid JSON ({err})") from err
    if split not in content:
        raise DataError(path, f"no split {split!r}; has {sorted(k for k in content if isinstance(content[k], list))}")
    if not isinstance(content[split], list):
        raise DataError(path, f"split {split!r} is not a list")
    if any(not isinstance(item, dict) or "image" not in item for item in content[split]):
        raise DataError(path, f"every item of split {split!r} needs an 'image' key")
    return load_decathlon_datalist(path, is_segmentation=True, data_list_key=split, base_dir=base_dir)


def split_by_group(
    groups: Iterable[str], fractions: Mapping[str, float], seed: int = 0
) -> dict[str, str]:
    """Assign each group id (e.g. a report or patient id) to a split, reproducibly.

    Splitting by group keeps all images of one report/patient in one split. Fractions are
    normalised; the last split takes the remainder so no group is lost to rounding.
    """
    ids = sorted(set(groups))
    random.Random(seed).shuffle(ids)
    total = sum(fractions.values())
    if total <= 0:
        raise ValueError(f"split fractions must sum to a positive number, got {dict(fractions)}")
    names = list(fractions)
    assignment: dict[str, str] = {}
    start = 0
    for position, name in enumerate(names):
        if position == len(names) - 1:
            stop = len(ids)
        else:
            stop = start + round(len(ids) * fractions[name] / total)
        for group in ids[start:stop]:
            assignment[group] = name
        start = stop
    return assignment
