"""On/off settings of the bundles, read the same way whatever way a user writes them.

``python -m monai.bundle run --resume false`` hands the config the *string* ``'false'`` (fire turns
only ``False`` into a bool), and any non-empty string is true in Python: ``--load_pretrain false``
would silently evaluate the trained network. Every switch in the bundle configs goes through
:func:`switch_on`, which accepts booleans, 0/1 and the usual words, and refuses anything else.
"""

from __future__ import annotations

from typing import Any

ON_WORDS = frozenset({"true", "yes", "on", "1"})
OFF_WORDS = frozenset({"false", "no", "off", "0"})


def switch_on(value: Any, name: str) -> bool:
    """True or False for a switch given as a bool, 0/1 or a word (true/false, yes/no, on/off, any case)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ON_WORDS | OFF_WORDS:
        return value.strip().lower() in ON_WORDS
    raise ValueError(f"--{name} must be true or false (or yes/no, on/off, 1/0), got {value!r}")
