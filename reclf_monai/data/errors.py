"""One exception type for bad input data, so callers can catch it and users see the file."""

from __future__ import annotations

import os


class DataError(ValueError):
    """Bad input data: the message always names the offending file (or item) and the problem."""

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)
