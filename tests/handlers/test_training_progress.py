"""TrainingProgress: a log line now and then with the rate and the time left, from a fake clock."""

from __future__ import annotations

import logging

import pytest
from ignite.engine import Engine

from reclf_monai.handlers import TrainingProgress
from reclf_monai.handlers.training_progress import duration_text


class FakeClock:
    """Seconds that the test's engine step moves on."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_lines_give_the_rate_and_the_time_left_at_most_every_interval(caplog):
    clock = FakeClock()
    durations = iter([10.0] + [2.0] * 5 + [10.0] + [2.0] * 5)  # each epoch's first iteration waits for the loader

    def step(engine, batch):
        clock.now += next(durations)

    engine = Engine(step)
    TrainingProgress(interval_seconds=5, clock=clock).attach(engine)
    with caplog.at_level(logging.INFO, logger="reclf.progress"):
        engine.run(range(6), max_epochs=2)
    lines = [record.getMessage() for record in caplog.records if record.name == "reclf.progress"]
    assert (
        lines
        == [
            # iteration 1 took 10 s: alone, it is the rate
            "epoch 1/2: 1/6 iterations at 10.00 s each; the epoch ends in 50 s, training in 1 min 50 s (validation not counted)",
            # then 2 s each, the first one left out: 3 more iterations since the last line (6 s >= 5)
            "epoch 1/2: 4/6 iterations at 2.00 s each; the epoch ends in 4 s, training in 16 s (validation not counted)",
            "epoch 1/2: 6/6 iterations at 2.00 s each; the epoch ends in 0 s, training in 12 s (validation not counted)",  # the last, always
            "epoch 2/2: 1/6 iterations at 10.00 s each; the epoch ends in 50 s, training in 50 s (validation not counted)",
            "epoch 2/2: 4/6 iterations at 2.00 s each; the epoch ends in 4 s, training in 4 s (validation not counted)",
            "epoch 2/2: 6/6 iterations at 2.00 s each; the epoch ends in 0 s, training in 0 s (validation not counted)",
        ]
    )


def test_durations_read_as_a_person_would_say_them():
    assert [duration_text(seconds) for seconds in (42, 185, 3720)] == ["42 s", "3 min 5 s", "1 h 2 min"]
    with pytest.raises(ValueError, match="interval_seconds must not be negative"):
        TrainingProgress(interval_seconds=-1)
