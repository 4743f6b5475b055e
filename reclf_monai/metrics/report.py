"""Write evaluators' metrics to one JSON file and print them as a short table."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger("reclf.evaluate")


def _scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Keep scalar metrics (ignite also stores dict-valued metrics whole; their keys are already there)."""
    result = {}
    for name, value in metrics.items():
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, (int, float)):
            result[name] = float(value)
    return result


def write_metrics_report(path: str | os.PathLike, **sections: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Write ``{section: {metric: value}}`` to `path` (JSON) and log one line per section."""
    report = {name: _scalars(metrics) for name, metrics in sections.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=True))
    for name, metrics in report.items():
        logger.info("%s: %s", name, ", ".join(f"{key}={value:.4f}" for key, value in sorted(metrics.items())))
    logger.info("metrics written to %s", path)
    return report
