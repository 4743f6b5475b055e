"""Find the checkpoint to resume from among what MONAI's ``CheckpointSaver`` wrote."""

from __future__ import annotations

import os
import re
from pathlib import Path

_EPOCH = re.compile(r"epoch=(\d+)")


def last_checkpoint(directory: str | os.PathLike, pattern: str = "*checkpoint_epoch=*.pt") -> str | None:
    """Path of the highest-epoch checkpoint in `directory` matching `pattern`, or None if there is none.

    ``CheckpointSaver(save_interval=N, epoch_level=True)`` names files ``..._checkpoint_epoch=E.pt``.
    """
    candidates = [(int(m.group(1)), path) for path in Path(directory).glob(pattern) if (m := _EPOCH.search(path.name))]
    return str(max(candidates)[1]) if candidates else None
