"""Label-fraction subsets (1 % / 10 % / 100 %) that are reproducible, nested and cover every class.

The linear-classification and segmentation protocols (GLoRIA, MGCA) train on a fraction of the
training labels. Published repositories draw each fraction independently, so a 1 % result may
rest on images the 10 % run never saw, and a class may get no positive at all. Here every
fraction is a prefix of one seeded ordering of the training items: the 1 % subset lies inside
the 10 % one, the same seed gives the same subset on any machine, and the ordering starts with
one positive of every class (rarest class first) so even the smallest subset has them all.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np

from .errors import DataError

logger = logging.getLogger("reclf.data")


def item_classes(item: Mapping, label_key: str) -> set[int]:
    """The positive classes of an item: ``label_key`` holds a class index or a multi-hot list."""
    value = item.get(label_key)
    if isinstance(value, bool) or value is None:
        raise DataError(None, f"item {item.get('image', '?')!r}: {label_key!r} must be a class index or a multi-hot list, got {value!r}")
    if isinstance(value, (int, np.integer)):
        return {int(value)}
    return {index for index, flag in enumerate(value) if flag}


def fraction_order(items: Sequence[Mapping], label_key: str, seed: int = 0) -> tuple[list[int], int]:
    """Item indices in subset order and how many lead it: one positive per class first (rarest
    class first), then the rest in a seeded random order."""
    rng = np.random.default_rng(seed)
    shuffled = [int(index) for index in rng.permutation(len(items))]
    classes_of = {index: item_classes(items[index], label_key) for index in shuffled}
    counts: dict[int, int] = {}
    for classes in classes_of.values():
        for name in classes:
            counts[name] = counts.get(name, 0) + 1
    first: list[int] = []
    covered: set[int] = set()
    for name in sorted(counts, key=lambda name: (counts[name], name)):
        if name in covered:
            continue
        index = next(index for index in shuffled if name in classes_of[index] and index not in first)
        first.append(index)
        covered |= classes_of[index]
    chosen = set(first)
    return first + [index for index in shuffled if index not in chosen], len(first)


def label_fraction(items: Sequence[Mapping], fraction: float, label_key: str, seed: int = 0) -> list[dict]:
    """The first ``ceil(fraction * N)`` items of :func:`fraction_order` (at least one per class).

    `fraction` in (0, 1]; 1.0 returns every item (in subset order). Logs how many items it kept.
    """
    fraction = float(fraction)
    if not 0 < fraction <= 1:
        raise ValueError(f"data_fraction must be in (0, 1], got {fraction}")
    order, covering = fraction_order(items, label_key, seed)
    size = max(math.ceil(fraction * len(order)), covering)
    logger.info("data_fraction %g (seed %d): %d of %d items, the first %d cover every class", fraction, seed, size, len(order), covering)
    return [dict(items[index]) for index in order[:size]]
