"""A log line now and then on a long training run: where it is, how fast it goes, when the epoch
and the run should end.

MONAI's ``StatsHandler`` logs each iteration's loss but no rate or end time, and ignite's tqdm
``ProgressBar`` redraws a terminal line, which a log file or a notebook cell keeps as clutter. This
handler logs plain lines through the ``logging`` module instead, at most every `interval_seconds`.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from ignite.engine import Engine, Events


def duration_text(seconds: float) -> str:
    """ "1 h 2 min", "3 min 5 s" or "42 s": how every progress line and report of the project says a time."""
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


class TrainingProgress:
    """Log "epoch E/N: I/M iterations at S s each; the epoch ends in ..., training in ..." from the
    iterations timed in the current epoch (the first iteration of an epoch, which waits for the
    data loader to start, is left out of the rate once a second one is timed).

    Args:
        interval_seconds: the least time between two lines (the last iteration of an epoch is
            always logged).
        logger_name: the logger the lines go to (the bundles' logging.conf shows INFO).
        clock: seconds as a float (tests pass a fake one).
    """

    def __init__(
        self, interval_seconds: float = 30.0, logger_name: str = "reclf.progress", clock: Callable[[], float] = time.monotonic
    ):
        if interval_seconds < 0:
            raise ValueError(f"interval_seconds must not be negative, got {interval_seconds}")
        self.interval_seconds = interval_seconds
        self.logger = logging.getLogger(logger_name)
        self.clock = clock
        self.epoch_start = self.first_done = self.last_line = 0.0

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self.epoch_started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def epoch_started(self, engine: Engine) -> None:
        self.epoch_start = self.last_line = self.clock()
        self.first_done = 0.0

    def __call__(self, engine: Engine) -> None:
        now = self.clock()
        state = engine.state
        per_epoch = state.epoch_length
        done = (state.iteration - 1) % per_epoch + 1
        if done == 1:
            self.first_done = now
        last = done == per_epoch
        if not last and now - self.last_line < self.interval_seconds:
            return
        self.last_line = now
        # after the first iteration, time the rest: the first one also waits for the loader's start
        timed, since = (done - 1, self.first_done) if done > 1 else (1, self.epoch_start)
        rate = (now - since) / timed
        epoch_left = rate * (per_epoch - done)
        run_left = epoch_left + rate * per_epoch * (state.max_epochs - state.epoch)
        self.logger.info(
            "epoch %d/%d: %d/%d iterations at %.2f s each; the epoch ends in %s, training in %s (validation not counted)",
            state.epoch, state.max_epochs, done, per_epoch, rate, duration_text(epoch_left), duration_text(run_left),
        )  # fmt: skip
