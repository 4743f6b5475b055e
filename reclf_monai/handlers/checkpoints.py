"""A training run's checkpoint folder: claimed without losing an earlier run's checkpoints; resuming
from the last checkpoint ``CheckpointSaver`` wrote, keeping the LR schedule's horizon and the best
model."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ignite.engine import Engine, Events

from reclf_monai.bundle_switches import switch_on
from reclf_monai.data.errors import DataError
from reclf_monai.networks.checkpoints import read_torch_file

_EPOCH = re.compile(r"epoch=(\d+)")
# What the training bundles' CheckpointSavers write: the best model and the per-epoch checkpoints.
TRAINING_CHECKPOINTS = ("model.pt", "*checkpoint_epoch=*.pt")
logger = logging.getLogger("reclf.checkpoint")


def claim_checkpoint_folder(directory: str | os.PathLike, overwrite: Any = False, resume: Any = None) -> str:
    """Make `directory` ready for a training run; returns it.

    A new or empty folder is used as it is. One holding an earlier run's checkpoints is refused
    with an error naming it, unless the run resumes from them (`resume`, where the bundle offers
    resuming; None where it does not) or `overwrite` is on: then they are deleted first, so the
    folder never mixes two runs. Why: a new run would otherwise silently replace ``model.pt``.
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    earlier = sorted({path for pattern in TRAINING_CHECKPOINTS for path in folder.glob(pattern)})
    if not earlier or (resume is not None and switch_on(resume, "resume")):
        return str(folder)
    if switch_on(overwrite, "overwrite"):
        for path in earlier:
            logger.warning("--overwrite: deleting %s of an earlier run", path)
            path.unlink(missing_ok=True)  # another rank may have deleted it first
        return str(folder)
    ways = ("resume it with --resume true, " if resume is not None else "") + "replace them with --overwrite true, or give another --ckpt_dir"
    names = ", ".join(path.name for path in earlier)
    raise FileExistsError(f"{folder}: holds checkpoints of an earlier run ({names}); {ways}")


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


class BestModelRecord:
    """Keep the best model across a resume: ``model.pt`` is replaced only by a better validation.

    MONAI's key-metric ``CheckpointSaver`` keeps the best score in memory only, so after a resume
    its first validation would overwrite ``model.pt`` even when worse. Attach this record to the
    validation evaluator and put it in that saver's ``save_dict`` as ``best_model`` (with
    ``key_metric_save_state=True``): ``model.pt`` then records its key metric and epoch. When
    resuming, :meth:`restore` gives the saver and the evaluator that best score back and logs it.
    """

    def __init__(self, model_file: str | os.PathLike, name: str = "reclf.checkpoint"):
        self.model_file = Path(model_file)
        self.logger = logging.getLogger(name)
        self.evaluator: Engine | None = None

    def attach(self, evaluator: Engine) -> None:
        self.evaluator = evaluator

    def _evaluator_state(self):
        if self.evaluator is None:
            raise RuntimeError("BestModelRecord must be attached to the validation evaluator first")
        return self.evaluator.state

    def state_dict(self) -> dict:
        state = self._evaluator_state()
        return {"metric_name": state.key_metric_name, "metric": float(state.best_metric), "epoch": int(state.best_metric_epoch)}

    def load_state_dict(self, record: Mapping) -> None:
        state = self._evaluator_state()
        state.best_metric = record["metric"]
        state.best_metric_epoch = record["epoch"]

    def restore(self, saver) -> None:
        """Read ``model_file`` (if it exists yet) and restore the best score into `saver` and the evaluator."""
        if not self.model_file.is_file():
            self.logger.info("%s does not exist yet: the next validation writes it", self.model_file)
            return
        checkpoint = read_torch_file(self.model_file)
        if not isinstance(checkpoint, Mapping) or not {"checkpointer", "best_model"} <= set(checkpoint):
            raise DataError(
                self.model_file,
                "holds no best-model record ('checkpointer' and 'best_model' entries), so a resumed run could not "
                "tell whether a validation beats it; move the file aside to start the best-model selection anew",
            )
        saver.load_state_dict(checkpoint["checkpointer"])
        record = checkpoint["best_model"]
        self.load_state_dict(record)
        self.logger.info(
            "%s holds the best model so far: %s %.4f at epoch %d; a later validation replaces it only when better",
            self.model_file,
            record["metric_name"],
            record["metric"],
            record["epoch"],
        )
