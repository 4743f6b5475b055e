"""Reading the CSV tables that come with the official downloads.

Official tables differ in small ways that break naive readers: PhysioNet ships MIMIC tables
gzipped (``.csv.gz``), SIIM's header is ``ImageId, EncodedPixels`` (space after the comma) and
its values carry leading spaces. Column names and values are therefore stripped, and a
missing column is reported with the file name and the columns that are there.
"""

from __future__ import annotations

import csv
import gzip
import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import DataError


def locate_table(folder: str | os.PathLike, name: str) -> Path:
    """Path of table `name` in `folder`, plain or gzipped (``name.gz``); DataError if neither."""
    folder = Path(folder)
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(folder / name, f"file not found (also looked for {name}.gz)")


def read_table(
    path: str | os.PathLike, required: Sequence[str], optional: Sequence[str] = ()
) -> list[dict[str, str]]:
    """Rows of a CSV file (plain or ``.gz``) as dicts holding the `required` and `optional` columns.

    Values are stripped strings ("" for a blank cell or an absent optional column). Only the
    named columns are kept, which keeps large tables (MIMIC: 377k rows) small in memory.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise DataError(path, "file is empty; expected a header row")
            header = [name.strip() for name in header]
            missing = [name for name in required if name not in header]
            if missing:
                raise DataError(path, f"missing column(s) {missing}; the file has {header}")
            wanted = [*required, *(name for name in optional if name not in required)]
            positions = {name: header.index(name) for name in wanted if name in header}
            absent = {name: "" for name in wanted if name not in positions}
            rows = [
                {**{name: row[i].strip() if i < len(row) else "" for name, i in positions.items()}, **absent}
                for row in reader
                if row
            ]
    except (UnicodeDecodeError, OSError, csv.Error) as err:
        raise DataError(path, f"cannot be read as CSV ({err})") from err
    return rows
