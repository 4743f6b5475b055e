"""On/off settings of the bundles, read the same way whatever way a user writes them.

``python -m monai.bundle run --resume false`` hands the config the *string* ``'false'`` (fire turns
only ``False`` into a bool), and any non-empty string is true in Python: ``--load_pretrain false``
would silently evaluate the trained network. Every switch in the bundle configs goes through
:func:`switch_on`, which accepts booleans, 0/1 and the usual words, and refuses anything else.
File settings that may be off (no pretraining checkpoint) go through :func:`optional_path`, other
settings that may be off (``--shortlist_k null``: exact all-pairs scoring) through :func:`optional_setting`.
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


NONE_WORDS = frozenset({"none", "null"})


def optional_setting(value: Any) -> Any:
    """None for None or the word none/null (any case), else `value` unchanged (its user checks it).

    ``python -m monai.bundle run --pretrained_checkpoint None`` never reaches the config: MONAI
    drops overrides whose value is None, so the default would be used instead. The word ``none``
    (or ``null``) passes through as a string and is read here as "off".
    """
    return None if value is None or (isinstance(value, str) and value.strip().lower() in NONE_WORDS) else value


def optional_path(value: Any, name: str) -> str | None:
    """A file setting that may be switched off (:func:`optional_setting`): None means "no file"."""
    value = optional_setting(value)
    if value is None:
        return None
    if isinstance(value, str) and not value.strip():
        raise ValueError(f"--{name} is empty; give a file, or none for no file")
    return str(value)
