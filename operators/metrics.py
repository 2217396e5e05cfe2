"""The metrics every onair job publishes under the same names (docs/operations.md):
``onair.latency_p50_ms`` / ``onair.latency_p99_ms`` (the job's own latency over the last
minute of its records, published at most once a second; a job with no records keeps its last
figures) and ``onair.model_version`` (the registry version in service, 0 for none).
Jobs whose Python workers hold growing state also publish ``onair.python_gc_pause_max_ms``
(the longest pause of the worker's garbage collector over the last minute, ``HeapMetrics``).

They are Flink Python distributions, which in thread mode are last-value gauges held on the
Java side: the metrics thread reads them without calling into Python (a Python gauge would).
"""

from __future__ import annotations

import time

from models.heap import HeapKeeper
from models.latency import LatencyWindow

PUBLISH_EVERY_S = 1.0


class LatencyMetrics:
    def __init__(self, group):
        self.window = LatencyWindow()
        self.p50 = group.distribution("latency_p50_ms")
        self.p99 = group.distribution("latency_p99_ms")
        self.version = group.distribution("model_version")
        self.next_publish = 0.0

    def observe(self, ms: float) -> None:
        now = time.monotonic()
        self.window.add(ms, now)
        if now >= self.next_publish:
            self.next_publish = now + PUBLISH_EVERY_S
            p50, p99 = self.window.quantiles(now, 0.5, 0.99)
            self.p50.update(round(p50))
            self.p99.update(round(p99))

    def model(self, ref: str | None) -> None:
        """``name:version`` in service (or None)."""
        version = ref.rsplit(":", 1)[-1] if ref else "0"
        self.version.update(int(version) if version.isdigit() else 0)


class HeapMetrics:
    """The process's ``HeapKeeper`` ticked after each call, and its longest recent
    collection pause published at most once a second."""

    def __init__(self, group, freeze_every_s: float):
        self.keeper = HeapKeeper.shared(freeze_every_s)
        self.pause = group.distribution("python_gc_pause_max_ms")
        self.next_publish = 0.0

    def tick(self) -> None:
        now = time.monotonic()
        self.keeper.tick(now)
        if now >= self.next_publish:
            self.next_publish = now + PUBLISH_EVERY_S
            pause = self.keeper.pause_max_ms(now)
            if pause is not None:
                self.pause.update(round(pause))

    def close(self) -> None:
        self.keeper.release()
