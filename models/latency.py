"""A job's own latency as quantiles over its recent records (pure Python).

Flink's Python metrics have no histogram; a job keeps its last ``size`` latencies here and
publishes p50 and p99 as last-value metrics (``operators.metrics.LatencyMetrics``), which
`onair top` and Prometheus read under one name for every job.
"""

from __future__ import annotations

import numpy as np


class LatencyWindow:
    """The last ``size`` observations in a ring; quantiles over them."""

    def __init__(self, size: int = 2048):
        self.values = np.zeros(size, dtype=np.float64)
        self.count = 0

    def add(self, value: float) -> None:
        self.values[self.count % len(self.values)] = value
        self.count += 1

    def quantiles(self, *qs: float) -> list[float] | None:
        """The ``qs`` (in [0, 1]) of the window, or None before the first observation."""
        if not self.count:
            return None
        seen = self.values[:min(self.count, len(self.values))]
        return [float(v) for v in np.quantile(seen, qs)]
