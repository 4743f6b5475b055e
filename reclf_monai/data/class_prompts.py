"""Class prompts files: ``{"class name": ["prompt", ...], ...}``, several prompts per class.

Zero-shot classification describes each class by prompts that take the place of reports
(IU-Phantom's ``prompts.json`` and ``prompts_laterality.json``, or a file written for real data).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from .errors import DataError


def read_class_prompts(path: str | os.PathLike, class_names: Optional[Sequence[str]] = None) -> dict[str, list[str]]:
    """The prompts of `class_names` (default: every class in the file, in file order), in that
    order; DataError naming the file for a missing file, another format or a class without prompts."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "prompts file not found")
    try:
        prompts = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(path, f"not valid JSON ({error})") from error
    if not isinstance(prompts, dict) or not all(
        isinstance(texts, list) and texts and all(isinstance(text, str) and text.strip() for text in texts) for texts in prompts.values()
    ):
        raise DataError(path, 'expected {"class name": ["prompt", ...], ...} with at least one non-empty prompt per class')
    names = list(prompts) if class_names is None else list(class_names)
    missing = [name for name in names if name not in prompts]
    if missing:
        raise DataError(path, f"no prompts for classes {missing}; the file has {list(prompts)}")
    return {name: list(prompts[name]) for name in names}
