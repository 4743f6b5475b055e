"""One figure of a dict-valued ignite metric, as a metric of its own (a key metric, for example)."""

from __future__ import annotations

from ignite.metrics import Metric, MetricsLambda


def metric_entry(metric: Metric, key: str) -> MetricsLambda:
    """``metric``'s value under `key` (e.g. ``auc`` of a zero-shot metric returning several figures);
    a missing key fails naming the keys there are."""

    def pick(result):
        if key not in result:
            raise KeyError(f"{type(metric).__name__} gives {sorted(result)}, not {key!r}")
        return result[key]

    return MetricsLambda(pick, metric)
