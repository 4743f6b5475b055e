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


def load_datalist(
    path: str | os.PathLike,
    split: str = "training",
    base_dir: str | os.PathLike | None = None,
    required_keys: Sequence[str | Sequence[str]] = ("image",),
) -> list[dict]:
    """Read one split with absolute `image` / `label` paths; clear errors for a bad file or split.

    Every item must hold each entry of `required_keys`; an entry that is a sequence of keys asks
    for at least one of them (inference takes ``[("image", "report")]``: images, reports or both).
    """
    path = Path(path)
    content = _read_datalist_json(path)
    if split not in content:
        raise DataError(path, f"no split {split!r}; has {sorted(_split_names(content))}")
    if not isinstance(content[split], list):
        raise DataError(path, f"split {split!r} is not a list")
    for index, item in enumerate(content[split]):
        if not isinstance(item, dict):
            raise DataError(path, f"item {index} of split {split!r} is not an object")
        for required in required_keys:
            alternatives = (required,) if isinstance(required, str) else tuple(required)
            if not any(key in item for key in alternatives):
                raise DataError(path, f"item {index} of split {split!r} has no {' or '.join(map(repr, alternatives))} key")
    return load_decathlon_datalist(path, is_segmentation=True, data_list_key=split, base_dir=base_dir)


def datalist_splits(path: str | os.PathLike) -> list[str]:
    """Names of the splits a datalist holds, in file order, for tools that go through all of them."""
    return _split_names(_read_datalist_json(Path(path)))


def _split_names(content: Mapping) -> list[str]:
    """Top-level lists that are empty or hold items; lists of names such as `class_names` are no split."""
    return [
        key
        for key, value in content.items()
        if isinstance(value, list) and (not value or any(isinstance(entry, dict) for entry in value))
    ]


def _read_datalist_json(path: Path) -> dict:
    if not path.is_file():
        raise DataError(path, "datalist file not found")
    try:
        content = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(path, f"not valid JSON ({err})") from err
    if not isinstance(content, dict):
        raise DataError(path, f"top level is a JSON {type(content).__name__}; expected an object of splits")
    return content


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


def mark_duplicate_reports(items: Sequence[Mapping], report_key: str = "report", group_key: str = "report_group") -> list[dict]:
    """Copies of `items` with `group_key`: the index of the first item whose report text is the same.

    Retrieval counts an identical report as a correct match (in the IU collection 949 of 3,927
    reports share their exact text with another), so each item needs to know its twins. Texts are
    compared exactly, as written in the datalist.
    """
    first_index: dict[str, int] = {}
    marked = []
    for index, item in enumerate(items):
        if report_key not in item:
            raise DataError(item.get("image"), f"item {index} has no {report_key!r} to compare with other reports")
        marked.append({**item, group_key: first_index.setdefault(item[report_key], index)})
    return marked


def items_with(items: Sequence[Mapping], key: str, index_key: str = "item_index") -> list[dict]:
    """Copies of the items that hold `key`, each with its position in `items` under `index_key`.

    Inference embeds the images and the reports of a datalist in separate passes (an item may have
    either or both); the position lets the outputs be matched back to the datalist's items.
    """
    return [{**item, index_key: index} for index, item in enumerate(items) if key in item]


def keep_keys(items: Sequence[Mapping], keys: Sequence[str]) -> list[dict]:
    """Copies of the items with only `keys` (those present): inference on a datalist that also holds
    labels reads the images alone, as it would for a user's image-only list."""
    return [{key: item[key] for key in keys if key in item} for item in items]


def image_or_split(image_file: str | os.PathLike | None, datalist: str | os.PathLike, split: str) -> list[dict]:
    """The items to run inference on: the one image a user named (``--image_file``), else a split
    of the datalist (see :func:`load_datalist`)."""
    return [{"image": os.fspath(image_file)}] if image_file else load_datalist(datalist, split)
