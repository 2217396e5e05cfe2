"""A job's own latency as quantiles over its recent records (pure Python).

Flink's Python metrics have no histogram; a job keeps its latencies of the last
``horizon_s`` seconds (at most ``size`` of them) here and publishes p50 and p99 as last-value
metrics (``operators.metrics.LatencyMetrics``), which `onair top` and Prometheus read under
one name for every job.
"""

from __future__ import annotations

import numpy as np


class LatencyWindow:
    """The last ``size`` observations in a ring, with when they were made; quantiles over
    those of the last ``horizon_s`` seconds."""

    def __init__(self, size: int = 2048, horizon_s: float = 60.0):
        self.values = np.zeros(size, dtype=np.float64)
        self.times = np.full(size, -np.inf)
        self.count = 0
        self.horizon_s = horizon_s

    def add(self, value: float, now_s: float) -> None:
        at = self.count % len(self.values)
        self.values[at], self.times[at] = value, now_s
        self.count += 1

    def quantiles(self, now_s: float, *qs: float) -> list[float] | None:
        """The ``qs`` (in [0, 1]) of the recent observations, or None if there are none."""
        recent = self.values[self.times >= now_s - self.horizon_s]
        if not len(recent):
            return None
        return [float(v) for v in np.quantile(recent, qs)]
