"""The random splits of the published protocols, reproduced exactly, and a draw by patient.

MGCA and GLoRIA split with scikit-learn's ``train_test_split`` and a fixed ``random_state``;
calling the same function on the same ordered ids gives the same partition, so a user of
these datalists evaluates on the images those papers evaluated on. Where their split by image
puts one patient on both sides, :func:`draw_groups` draws whole patients instead.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import train_test_split


def holdout_split(ids: Sequence[str], holdout_fraction: float, seed: int = 0) -> dict[str, str]:
    """Assign ids to training / validation / test with `holdout_fraction` each for the last two.

    MGCA/GLoRIA's rule: ``train_test_split(ids, test_size=2 * holdout_fraction,
    random_state=seed)`` takes the held-out part; splitting that in halves the same way gives
    test (first half) and validation (second half). Pass ids in the order those scripts see
    them (RSNA: sorted patient ids, as pandas ``groupby`` sorts).
    """
    ids = list(ids)
    if len(set(ids)) != len(ids):
        raise ValueError("ids must be unique")
    if len(ids) < 4:
        raise ValueError(f"need at least 4 ids to split, got {len(ids)}")
    training, held_out = train_test_split(ids, test_size=2 * holdout_fraction, random_state=seed)
    test, validation = train_test_split(held_out, test_size=0.5, random_state=seed)
    return {
        **{i: "training" for i in training},
        **{i: "validation" for i in validation},
        **{i: "test" for i in test},
    }


def sample_positions(count: int, size: int, seed: int) -> list[int]:
    """`size` distinct positions out of `count`, as pandas ``DataFrame.sample(n=size, random_state=seed)``
    and ``numpy.random.seed(seed); numpy.random.choice(count, size, replace=False)`` pick them."""
    if size > count:
        raise ValueError(f"cannot sample {size} of {count}")
    return np.random.RandomState(seed).choice(count, size=size, replace=False).tolist()


def train_validation_split(count: int, validation_fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """Positions of `count` rows for training and validation, as MGCA splits COVIDx:
    ``train_test_split(rows, train_size=1 - validation_fraction, random_state=seed)``."""
    training, validation = train_test_split(list(range(count)), train_size=1 - validation_fraction, random_state=seed)
    return training, validation


def draw_groups(item_groups: Sequence[str], size: int, seed: int) -> set[str]:
    """Groups (patients) drawn at random whose items (images) number exactly `size`.

    `item_groups` holds the group of each item. Groups are visited in a seeded random order
    (``RandomState(seed).permutation`` of the groups in order of first appearance) and taken
    whole while they fit, so no group is split between the draw and the rest; ValueError when
    no combination found that way makes exactly `size`.
    """
    sizes = Counter(item_groups)
    groups = list(sizes)
    chosen: set[str] = set()
    count = 0
    for index in np.random.RandomState(seed).permutation(len(groups)):
        if count == size:
            break
        if count + sizes[groups[index]] <= size:
            chosen.add(groups[index])
            count += sizes[groups[index]]
    if count != size:
        raise ValueError(f"whole groups make {count} items, not {size}")
    return chosen
