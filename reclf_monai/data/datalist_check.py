"""Check every item of a datalist at once, with the readers and tokeniser that training uses.

Training stops at the first bad file it meets (a truncated PNG, a missing DICOM), one failed start
per bad file; on MIMIC-CXR (about 377,000 images) that is hours each time. Checking all items
first lists every bad one in a single pass, and :func:`drop_unreadable_items` lets a run go on
without them, keeping a record.

The check runs in threads, not processes, because real chest X-rays spend their time where the
GIL is released: Pillow decoding and torch resizing. Measured on 2 cores, 60 JPEGs of 2048x2560
(MIMIC-CXR-JPG size) took 2.0-2.3 s in 1 thread, 1.4-1.6 s in 2 threads and 2.5-2.7 s in 2 forked
processes. Tiny images are the opposite case: 400 PNGs of 64x80 took 0.7 s in 1 thread,
0.9-1.2 s in 2 threads (MONAI's per-item Python holds the GIL) and 0.6 s in 2 forked processes;
lists of such images check in seconds anyway. Processes also cost more to start: with
``forkserver`` or ``spawn`` each imports torch, MONAI and transformers (5 s for the 400 PNGs),
and forking a training process is unsafe (here forked workers hung when the parent had already
run torch's OpenMP threads).
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from reclf_monai.bundle_switches import switch_on

from .errors import DataError
from .image_loading import chest_xray_transforms
from .tokenization import DEFAULT_MAX_LENGTH, TokenizeReportd

logger = logging.getLogger(__name__)

# Items per task handed to a worker: at most this many, so that 377,000 items make few futures and
# the progress bar still moves; fewer for short lists, so that every worker gets some.
_MAX_BLOCK_SIZE = 64
_BLOCKS_PER_WORKER = 4


@dataclass(frozen=True)
class BadItem:
    """An item training cannot use: where it is in the datalist, its image file and why."""

    split: str
    index: int
    image: str | None
    reason: str


@dataclass(frozen=True)
class DatalistCheck:
    """The outcome of checking one split: how many items were checked and which are bad."""

    split: str
    checked: int
    bad_items: tuple[BadItem, ...]


class _ItemChecker:
    """The training pipeline's image and report steps, built once and shared by the worker threads."""

    def __init__(self, image_size: int, tokenizer: str | os.PathLike | None, max_length: int):
        self.load_image = chest_xray_transforms(image_key="image", image_size=image_size)
        self.tokenize_report = TokenizeReportd(key="report", tokenizer=tokenizer, max_length=max_length)
        # Load the tokenizer and set its padding and truncation here, in one thread: a bad tokenizer
        # folder fails once, up front, and the threads then only read the shared tokenizer.
        self.tokenize_report({"report": "warm-up"})

    def problems(self, item) -> list[str]:
        if not isinstance(item, Mapping):
            return [f"item is not an object ({type(item).__name__})"]
        if "image" not in item and "report" not in item:
            return ["item has neither 'image' nor 'report'"]
        problems = []
        if "image" in item:
            problems += _failure_of(self.load_image, {"image": item["image"]})
        if "report" in item:
            problems += _failure_of(self.tokenize_report, {"report": item["report"]})
        return problems

    def problems_of_block(self, block: Sequence) -> list[list[str]]:
        return [self.problems(item) for item in block]


def _failure_of(step, data: dict) -> list[str]:
    """Run one step on `data`; any exception, not only DataError, is one item's problem, not the run's."""
    try:
        step(data)
    except Exception as error:
        return [_describe(error)]
    return []


def _describe(error: BaseException) -> str:
    """The problem in words: a DataError's own text, else the original exception's type and message.

    MONAI wraps an exception raised inside a transform in ``RuntimeError("applying transform ...")``,
    which names the transform, not the problem; the original is its ``__cause__``.
    """
    while not isinstance(error, DataError) and isinstance(error, RuntimeError) and error.__cause__ is not None:
        error = error.__cause__
    if isinstance(error, DataError):
        return error.problem
    return f"{type(error).__name__}: {error}"


def check_datalist_items(
    items: Sequence[Mapping],
    split: str = "training",
    image_size: int = 224,
    tokenizer: str | os.PathLike | None = None,
    max_length: int = DEFAULT_MAX_LENGTH,
    workers: int | None = None,
) -> DatalistCheck:
    """Run every item of one split through the training readers and tokeniser; list the bad ones.

    `items` are as :func:`~reclf_monai.data.load_datalist` returns them (absolute image paths).
    An item needs an `image`, a `report` or both; each present one must load (image through
    :func:`chest_xray_transforms` at `image_size`) or tokenise (non-empty text, through
    :class:`TokenizeReportd` with `tokenizer` and `max_length`). A bad item never stops the check:
    its reason names the problem, and both are given when image and report are bad. `workers`
    threads (default: one per CPU) share the work; a progress bar goes to stderr.
    """
    checker = _ItemChecker(image_size, tokenizer, max_length)
    workers = workers or os.cpu_count() or 1
    block_size = max(1, min(_MAX_BLOCK_SIZE, math.ceil(len(items) / (workers * _BLOCKS_PER_WORKER))))
    blocks = [items[start : start + block_size] for start in range(0, len(items), block_size)]
    problems: list[list[str]] = []
    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        tqdm(total=len(items), desc=f"checking {split}", unit="item", file=sys.stderr) as progress,
    ):
        for block_problems in pool.map(checker.problems_of_block, blocks):
            problems += block_problems
            progress.update(len(block_problems))
    bad_items = tuple(
        BadItem(split, index, _image_path(item), "; ".join(found))
        for index, (item, found) in enumerate(zip(items, problems))
        if found
    )
    return DatalistCheck(split, len(items), bad_items)


def _image_path(item) -> str | None:
    image = item.get("image") if isinstance(item, Mapping) else None
    if isinstance(image, (str, os.PathLike)):
        return os.fspath(image)
    return None if image is None else repr(image)


def readable_items(
    items: Sequence[Mapping],
    split: str,
    report_folder: str | os.PathLike,
    enabled: Any = True,
    image_size: int = 224,
    tokenizer: str | os.PathLike | None = None,
    max_length: int = DEFAULT_MAX_LENGTH,
    workers: int | None = None,
) -> list[Mapping]:
    """The bundles' datalist step: `items` unchanged when `enabled` (a bundle switch, e.g.
    ``--skip_unreadable_items``) is off, else :func:`drop_unreadable_items` with its report at
    ``report_folder/unreadable_items_<split>.json``. Why here: the configs wire, not decide."""
    if not switch_on(enabled, "skip_unreadable_items"):
        return list(items)
    report_file = Path(report_folder) / f"unreadable_items_{split}.json"
    return drop_unreadable_items(items, split, report_file, image_size, tokenizer, max_length, workers)


def drop_unreadable_items(
    items: Sequence[Mapping],
    split: str,
    report_file: str | os.PathLike,
    image_size: int = 224,
    tokenizer: str | os.PathLike | None = None,
    max_length: int = DEFAULT_MAX_LENGTH,
    workers: int | None = None,
) -> list[Mapping]:
    """Return the items of `split` that training can read, so that a few bad files do not stop a run.

    The bad ones are written to `report_file` as JSON: ``{"split", "checked", "dropped", "items":
    [{"index", "image", "reason"}, ...]}`` (index: position in `items`). The file is written even
    when nothing is dropped, so that it always belongs to this run and says the check happened.
    The number dropped is logged by the ``reclf_monai.data.datalist_check`` logger. If every item
    is bad, a :class:`DataError` naming the report is raised: training on nothing is a mistake.
    """
    check = check_datalist_items(items, split, image_size, tokenizer, max_length, workers)
    report_file = Path(report_file)
    report_file.parent.mkdir(parents=True, exist_ok=True)
    bad_entries = [{key: value for key, value in asdict(bad).items() if key != "split"} for bad in check.bad_items]
    report = {"split": split, "checked": check.checked, "dropped": len(bad_entries), "items": bad_entries}
    # Under torchrun every rank checks and writes the same report: a private temporary file renamed
    # into place means readers never see a half-written or interleaved file.
    temporary = report_file.with_name(f"{report_file.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(report, indent=1))
    os.replace(temporary, report_file)
    if items and len(check.bad_items) == len(items):
        raise DataError(report_file, f"all {len(items)} items of split {split!r} are unreadable; see this report")
    if check.bad_items:
        logger.warning(
            "split %r: dropped %d of %d items that cannot be read (listed in %s)",
            split, len(check.bad_items), check.checked, report_file,
        )
    else:
        logger.info("split %r: all %d items readable (report: %s)", split, check.checked, report_file)
    bad_indexes = {bad.index for bad in check.bad_items}
    return [item for index, item in enumerate(items) if index not in bad_indexes]
