"""Pay the image decode once: small lossless copies of a datalist's images, and a datalist for them.

A full-size MIMIC-CXR JPEG (about 2,500 x 3,000 pixels) costs some 69 ms to decode and resize to
224 px on one core; a 512-px copy of it about 15x less. Training reads every image once per epoch,
so a GPU fed from full-size files waits on the CPU. :func:`write_resized_copies` writes each image
once, as the training pipeline sees it before its own resize: read with
:func:`~reclf_monai.data.read_image_2d` (display orientation, bone bright, DICOM LUTs applied,
intensities stretched to [0, 1]), its longest side reduced by area averaging (the interpolation
:func:`~reclf_monai.data.chest_xray_transforms` uses) to `longest_side`, stored as a 16-bit PNG
(so 12/16-bit DICOMs keep their depth). The pipeline stretches intensities per image again, so a
copy trains like its original up to the two-step resize and 16-bit rounding: for a real 1955 x
1841 DICOM, a 512-px copy and its original give 224-px inputs that differ by 0.006 on average
(intensities in [0, 1]). Keep `longest_side` at twice the training image size or more; the two
resizes may round the short side one pixel differently.

The new datalist keeps every item and top-level entry as it was, with `image` pointing at the
copy and `original_image` at the file it came from. Copies already written are reused, so an
interrupted run resumes; the datalist is written last, and only when every image was readable.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from monai.transforms import Resize
from PIL import Image
from tqdm import tqdm

from ..datalist import datalist_splits, write_datalist
from ..errors import DataError
from ..image_loading import read_image_2d


def resized_copy(source: str | os.PathLike, target: str | os.PathLike, longest_side: int) -> None:
    """Write `source` as a 16-bit PNG whose longest side is at most `longest_side`."""
    target = Path(target)
    image = read_image_2d(source)
    if max(image.shape) > longest_side:
        image = np.asarray(Resize(longest_side, size_mode="longest", mode="area")(image[None]))[0]
    pixels = np.round(np.clip(image, 0.0, 1.0) * 65535).astype(np.uint16)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    Image.fromarray(pixels).save(partial, format="PNG")
    partial.replace(target)


def _copy_or_error(job: tuple[str, str, int]) -> str | None:
    """A worker's job: None when done, else what went wrong (the error names the file)."""
    source, target, longest_side = job
    try:
        resized_copy(source, target, longest_side)
    except DataError as error:
        return str(error)
    return None


def _copy_name(source: Path, datalist_folder: Path) -> Path:
    """Where a source's copy goes under ``images/``: its path relative to the datalist's folder
    (absolute paths elsewhere keep their full path), so that equal file names in different folders
    cannot collide."""
    try:
        relative = source.relative_to(datalist_folder)
    except ValueError:
        relative = Path(*source.parts[1:])
    name = relative.name[: -len(".nii.gz")] if relative.name.lower().endswith(".nii.gz") else relative.stem
    return Path("images") / relative.parent / f"{name}.png"


def write_resized_copies(
    datalist: str | os.PathLike,
    output_dir: str | os.PathLike,
    longest_side: int = 512,
    keys: Sequence[str] = ("image",),
    workers: int = 1,
    progress: bool = True,
) -> Path:
    """Copies of every image under `keys` in every split of `datalist`, and ``output_dir/datalist.json``
    pointing at them; returns that datalist's path. Unreadable images stop the run with one
    DataError listing them (the copies made so far are kept for the next run)."""
    datalist, output_dir = Path(datalist).resolve(), Path(output_dir).resolve()
    if longest_side < 1:
        raise ValueError(f"longest_side must be a positive number of pixels, got {longest_side}")
    split_names = datalist_splits(datalist)  # a clear error for a missing or malformed datalist
    content = json.loads(datalist.read_text())
    splits = {name: [dict(item) for item in content[name]] for name in split_names}
    jobs: dict[Path, Path] = {}  # source -> copy, each source once however often it is listed
    for items in splits.values():
        for item in items:
            for key in keys:
                if item.get(key):
                    source = (datalist.parent / item[key]).resolve()
                    target = jobs.setdefault(source, output_dir / _copy_name(source, datalist.parent))
                    item[f"original_{key}"], item[key] = str(source), str(target.relative_to(output_dir))
    pending = [(str(source), str(target), longest_side) for source, target in jobs.items() if not target.exists()]
    print(f"[resize] {len(jobs)} images, {len(jobs) - len(pending)} already copied, {len(pending)} to write (longest side {longest_side} px)", flush=True)
    with ProcessPoolExecutor(max(1, workers)) as pool:
        outcomes = pool.map(_copy_or_error, pending, chunksize=16)
        errors = [error for error in tqdm(outcomes, total=len(pending), disable=not progress, desc="resize") if error]
    if errors:
        shown = "\n  ".join(errors[:20])
        raise DataError(datalist, f"{len(errors)} image(s) could not be copied; no datalist written:\n  {shown}" + ("\n  ..." if len(errors) > 20 else ""))
    extra = {key: value for key, value in content.items() if key not in splits}
    return write_datalist(output_dir / "datalist.json", splits, **extra)
