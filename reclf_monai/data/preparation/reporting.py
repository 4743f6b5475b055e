"""Progress and the one-line statistics summary every preparation ends with."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate `items` with a progress bar on stderr (long loops: image checks, mask writing)."""
    return iter(tqdm(items, desc=description, total=total, unit="img", mininterval=2.0, leave=False))


@dataclass
class PreparationReport:
    """What one preparation wrote and the counts behind it (kept in order of insertion)."""

    dataset: str
    outputs: list[Path] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def statistics_line(self) -> str:
        counts = " ".join(f"{name}={value}" for name, value in self.counts.items())
        return f"{self.dataset}: {counts}"
