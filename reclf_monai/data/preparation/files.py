"""Image files of the official downloads: presence checks, look-up by name, DICOM sizes."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from ..errors import DataError

logger = logging.getLogger(__name__)
# Above this share of missing images, leaving them out is more likely a wrong folder or a misread
# list than a few images lost in the download, so the warning says so.
LARGE_MISSING_SHARE = 0.01


def require_folder(path: str | os.PathLike, what: str) -> Path:
    """`path` as a Path if it is a folder; DataError saying what was expected there otherwise."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(path, f"folder not found (expected {what})")
    return path


def relative_path(path: str | os.PathLike, start: str | os.PathLike) -> str:
    """`path` relative to folder `start`, with forward slashes, as datalists store it."""
    return Path(os.path.relpath(Path(path).absolute(), Path(start).absolute())).as_posix()


def find_missing(paths: Sequence[Path], listed_in: str | os.PathLike, skip_missing: bool) -> set[Path]:
    """The `paths` that do not exist, for images listed in table `listed_in`.

    Missing images are an error unless `skip_missing` (then they are logged and returned so
    the caller can leave them out and count them; a share above :data:`LARGE_MISSING_SHARE` gets
    a warning that names the count and the likely causes). If none of the images exists the
    folder is almost certainly wrong, so that is an error either way.
    """
    missing = {path for path in paths if not path.is_file()}
    if not missing:
        return missing
    example = sorted(missing)[0]
    summary = f"{len(missing)} of {len(paths)} images listed in {listed_in} are missing"
    if len(missing) == len(paths):
        raise DataError(example, f"image not found, and neither is any other: {summary}")
    if not skip_missing:
        raise DataError(example, f"image not found ({summary}; pass --skip-missing-images to leave them out)")
    share = len(missing) / len(paths)
    if share > LARGE_MISSING_SHARE:
        logger.warning(
            "%s (%.1f%%, more than %g%%); leaving them out as --skip-missing-images asks, but so many usually "
            "means a wrong folder or misread list lines (first: %s)",
            summary, 100 * share, 100 * LARGE_MISSING_SHARE, example,
        )  # fmt: skip
    else:
        logger.warning("%s; leaving them out (first: %s)", summary, example)
    return missing


def index_by_stem(folder: str | os.PathLike, suffix: str) -> dict[str, Path]:
    """Map file stem -> path for every file ending in `suffix` anywhere under `folder`."""
    index: dict[str, Path] = {}
    for directory, _, names in os.walk(folder):
        for name in names:
            if name.lower().endswith(suffix):
                path = Path(directory) / name
                stem = name[: -len(suffix)]
                if stem in index:
                    raise DataError(path, f"same name as {index[stem]}; cannot tell which image is {stem!r}")
                index[stem] = path
    return index


def dicom_shape(path: str | os.PathLike) -> tuple[int, int]:
    """(Rows, Columns) of a DICOM file, read from its header only."""
    try:
        header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Rows", "Columns"])
    except (InvalidDicomError, OSError) as err:
        raise DataError(path, f"cannot be read as DICOM ({err})") from err
    rows, cols = header.get("Rows"), header.get("Columns")
    if not rows or not cols:
        raise DataError(path, "DICOM header has no Rows/Columns")
    return int(rows), int(cols)
