"""Keeps CPython's cyclic garbage collector from pausing a streaming worker (pure Python).

A worker's state lives as long as its job, but a full collection of CPython's cyclic collector
walks every container it tracks, so its pause grows with the state held: in compute_features
the caches, timers and shows of every bucket, hundreds of milliseconds at a million
listeners, and the load's new objects trigger one every few tens of seconds. In thread mode every
Python operator of the job in that TaskManager shares the interpreter and waits.

``HeapKeeper.tick`` (after an operator's calls) at most every ``every_s`` collects what is not
frozen (what was made since the last freeze: a short pass) and then freezes what survived
(``gc.freeze``), so later collections, the automatic ones included, walk only newer objects.
A frozen object is still freed by reference counting when it is dropped; what freezing keeps
is a reference cycle that becomes garbage after it was frozen. Entity states form no cycles
(tests/unit/test_heap.py), and when the last operator using the keeper closes it unfreezes
everything, so a finished job's cycles are collected.

One keeper per process (``shared``): the collector belongs to the interpreter, not to an
operator (rank_shows and compute_features can share a TaskManager). It measures every
collection's pause (a ``gc.callbacks`` hook) so a job can publish the longest of the last
minute.
"""

from __future__ import annotations

import gc
import time

from models.latency import LatencyWindow


class HeapKeeper:
    _shared: HeapKeeper | None = None

    def __init__(self, every_s: float):
        self.every_s = every_s
        self.next_freeze = 0.0
        self.pauses = LatencyWindow(size=512)
        self.users = 0
        self._started: float | None = None

    @classmethod
    def shared(cls, every_s: float) -> HeapKeeper:
        """This process's keeper; each caller ``release``s it when done. It freezes at the
        shortest ``every_s`` any of its users asked for (0: measure pauses, never freeze), so
        a job asking for no freezing does not take it from another in the same worker."""
        keeper = cls._shared
        if keeper is None:
            keeper = cls._shared = cls(every_s)
            gc.callbacks.append(keeper._on_collection)
        elif every_s and (not keeper.every_s or every_s < keeper.every_s):
            keeper.every_s = every_s
        keeper.users += 1
        return keeper

    def release(self) -> None:
        self.users -= 1
        if self.users > 0:
            return
        if HeapKeeper._shared is self:
            HeapKeeper._shared = None
        if self._on_collection in gc.callbacks:
            gc.callbacks.remove(self._on_collection)
        if self.every_s:
            gc.unfreeze()

    def tick(self, now_s: float | None = None) -> bool:
        """Collects and freezes if ``every_s`` passed since the last time; True if it did."""
        if not self.every_s:
            return False
        now_s = time.monotonic() if now_s is None else now_s
        if now_s < self.next_freeze:
            return False
        self.next_freeze = now_s + self.every_s
        gc.collect()
        gc.freeze()
        return True

    def pause_max_ms(self, now_s: float | None = None) -> float | None:
        """The longest collection pause of the last minute (None: none ran)."""
        q = self.pauses.quantiles(time.monotonic() if now_s is None else now_s, 1.0)
        return None if q is None else q[0]

    def _on_collection(self, phase: str, _info: dict) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._started = now
        elif self._started is not None:
            self.pauses.add((now - self._started) * 1000, time.monotonic())
            self._started = None
