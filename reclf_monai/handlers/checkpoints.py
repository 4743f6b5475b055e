"""Resuming: find the last checkpoint ``CheckpointSaver`` wrote; keep the LR schedule's horizon."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ignite.engine import Engine, Events

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


class ResumeScheduleHorizon:
    """After a resume, give the LR scheduler this run's horizon again.

    Schedulers such as MONAI's ``WarmupCosineSchedule`` keep ``t_total`` and ``warmup_steps`` in
    their saved state, so a run resumed with a larger ``max_epochs`` would otherwise follow the old
    schedule past its end. Attach after the ``CheckpointLoader`` (both run on ``STARTED``).
    """

    def __init__(self, lr_scheduler, **horizon: int):
        self.lr_scheduler = lr_scheduler
        self.horizon = horizon

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine) -> None:
        for name, value in self.horizon.items():
            setattr(self.lr_scheduler, name, value)
