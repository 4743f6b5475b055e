"""The repository the tests check: its root folder, and its scripts imported as modules."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str) -> ModuleType:
    """scripts/NAME.py as a module (the repository root is on the tests' path)."""
    return importlib.import_module(f"scripts.{name}")
