"""Find the checkpoint to resume from among what MONAI's ``CheckpointSaver`` wrote."""

from __future__ import annotations

import os
import re
from pathlib import Path

_EPOCH = re.compile(r"epoch=(\d+)")


def last_checkpoint(directory: str | os.PathLike, required: bool = False, pattern: str = "*checkpoint_epoch=*.pt") -> str | None:
    """Path of the highest-epoch checkpoint in `directory` matching `pattern`.

    ``CheckpointSaver(save_interval=N, epoch_level=True)`` names files ``..._checkpoint_epoch=E.pt``.
    Returns None when there is none, unless `required` (resuming), which raises FileNotFoundError.
    """
    candidates = [(int(m.group(1)), path) for path in Path(directory).glob(pattern) if (m := _EPOCH.search(path.name))]
    if candidates:
        return str(max(candidates)[1])
    if required:
        raise FileNotFoundError(f"{directory}: no checkpoint matching {pattern!r} to resume from")
    return None
