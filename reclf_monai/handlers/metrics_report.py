"""Write evaluators' metrics to the bundle's ``metrics.json`` when they complete.

An evaluation workflow may run several evaluators (pretraining: validation and zero-shot;
retrieval: class and pair retrieval) into one file. They share one :class:`MetricsReport`, which
rewrites the file with every section added so far in this run: a run that evaluates part of a
bundle leaves only its own sections, never stale ones of an earlier run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional

from ignite.engine import Engine, Events

from reclf_monai.metrics.report import write_metrics_report


class MetricsReport:
    """One run's metrics file: ``{section: {metric: value}}``, written as sections arrive."""

    def __init__(self, path: str | os.PathLike):
        self.path = path
        self.sections: dict[str, Mapping[str, Any]] = {}

    def add(self, sections: Mapping[str, Mapping[str, Any]]) -> None:
        self.sections.update(sections)
        write_metrics_report(self.path, **self.sections)


class MetricsReportHandler:
    """Adds an engine's metrics to a report when the engine completes.

    Args:
        report: a :class:`MetricsReport` shared with other evaluators, or the file's path.
        section: the section for ``engine.state.metrics`` (e.g. ``test``, ``zero_shot``).
        summary: instead of `section`, ``summary(engine) -> {section: metrics}`` for metrics kept
            per item (grounding's per-group means, see :func:`~reclf_monai.metrics.grounding_report`).
        extra_sections: fixed sections written beside (e.g. how many images were evaluated).
    """

    def __init__(
        self,
        report: MetricsReport | str | os.PathLike,
        section: Optional[str] = None,
        summary: Optional[Callable[[Engine], Mapping[str, Mapping[str, Any]]]] = None,
        extra_sections: Optional[Mapping[str, Mapping[str, Any]]] = None,
    ):
        if (section is None) == (summary is None):
            raise ValueError("MetricsReportHandler: give a section for the engine's metrics or a summary, not both")
        self.report = report if isinstance(report, MetricsReport) else MetricsReport(report)
        self.section = section
        self.summary = summary
        self.extra_sections = dict(extra_sections or {})

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        sections = self.summary(engine) if self.summary is not None else {self.section: engine.state.metrics}
        self.report.add({**sections, **self.extra_sections})


def image_metadata(batch: Sequence[Mapping[str, Any]], key: str = "image") -> list[Any]:
    """Each decollated item's image metadata: MONAI ``MetricsSaver``'s ``batch_transform``, so that
    per-image metric rows name their files."""
    return [item[key].meta for item in batch]
