"""Flink glue for point-in-time features: routing events to entities, keyed state, Redis.

``RouteEventsFunction`` turns a validated event into ``(entity key, event)`` pairs;
``EntityFeaturesFunction`` (keyed by entity key ``kind:id``) keeps the entity's state object
from ``operators.features`` in Flink keyed state, advances it on event-time timers, and writes
its features to Redis in pipelined batches. Shows emit derived creator updates (plays, live
changes) for a second, creator-keyed instance.

Why writes are safe across restarts: each write carries the entity's ``seq`` (events applied)
and Redis keeps only a higher one; staged writes go out when a batch fills, when a key's
processing-time flush timer fires (``flush_ms`` after its change) and at the end of every bundle
(below), so nothing a checkpoint holds is left unwritten.

Which timers a key has registered is remembered in this worker's memory, never in keyed state.
PyFlink (process mode, 2.0) hands a timer registration from Python to the operator as a mailbox
mail, and only drains those mails before advancing the watermark, not before a checkpoint: the
registrations of the bundle that a checkpoint flushes are missing from that checkpoint while the
state written in the same bundle is in it. A ``flush_at`` kept in state then said "timer
pending" forever after a restore, so the entity never registered another flush timer and its
last changes never reached Redis (seen as creators short of plays after a restart). Remembered
in memory, the bookkeeping starts empty in a restored worker, so every key registers its timers
again on its first change; Flink keeps one timer per (key, time), so a timer that did survive
is not doubled. And the staged writes are also flushed at the end of every bundle (a gauge, the
one hook PyFlink calls there), so what a checkpoint holds is in Redis by the time it
completes: a restored key that never changes again was written before the crash.

Metrics (group ``onair``): ``events_applied``, ``late_events``, ``redis_writes``,
``redis_batches``, gauge ``bundle_end_writes`` (writes staged when the last bundle ended),
distribution ``reflection_ms`` (Redis write wall clock minus the event time of the newest
contributing event).
"""

from __future__ import annotations

import time

from pyflink.common import Row, Types
from pyflink.datastream import FlatMapFunction, KeyedProcessFunction, RuntimeContext, TimeDomain
from pyflink.datastream.state import ValueStateDescriptor

from connectors.feature_store import FeatureWrite, RedisFeatureStore
from connectors.settings import RedisSettings
from operators.features import STATE_TYPES, EntityState, routes
from operators.state_ttl import state_ttl

# Rows (entity key, event) for ``connectors.flink_io.key_by_first_field``.
ENTITY_TYPE = Types.ROW([Types.STRING(), Types.PICKLED_BYTE_ARRAY()])
EVENT_TYPE = Types.PICKLED_BYTE_ARRAY()


class RouteEventsFunction(FlatMapFunction):
    """Event -> ``(kind:id, event)`` for each entity it updates first-hand; ``kinds`` filters."""

    def __init__(self, kinds: tuple[str, ...]):
        self.kinds = kinds

    def flat_map(self, value: dict):
        for kind, entity_id in routes(value):
            if kind in self.kinds:
                yield Row(f"{kind}:{entity_id}", value)


class EntityFeaturesFunction(KeyedProcessFunction):
    def __init__(self, redis: RedisSettings, *, batch_size: int = 500, flush_ms: int = 50,
                 ended_ttl_ms: int = 24 * 3_600_000, state_ttl_days: int = 14):
        self.redis = redis
        self.batch_size = batch_size
        self.flush_ms = flush_ms
        self.ended_ttl_ms = ended_ttl_ms
        self.state_ttl_days = state_ttl_days

    def open(self, runtime_context: RuntimeContext) -> None:
        descriptor = ValueStateDescriptor("entity", Types.PICKLED_BYTE_ARRAY())
        if self.state_ttl_days:
            descriptor.enable_time_to_live(state_ttl(self.state_ttl_days * 86_400))
        self.state = runtime_context.get_state(descriptor)
        self.store = RedisFeatureStore(self.redis)
        # Entities changed since the last flush; their features are read when the batch goes out.
        self.pending: dict[str, EntityState] = {}
        # Timers registered by this worker (see the module docstring for why not in state):
        # keys with a flush timer pending, and each key's pending event-time timer.
        self.flush_timers: set[str] = set()
        self.event_timers: dict[str, int] = {}
        self.oldest_pending = 0.0
        group = runtime_context.get_metrics_group().add_group("onair")
        self.applied = group.counter("events_applied")
        self.late = group.counter("late_events")
        self.writes = group.counter("redis_writes")
        self.batches = group.counter("redis_batches")
        self.reflection = group.distribution("reflection_ms")
        # PyFlink (process mode) evaluates gauges when a bundle finishes, just before it
        # commits the bundle's state (``Operation.finish`` in pyflink.fn_execution.datastream.
        # process.operations). Flushing there puts every change of a bundle in Redis before
        # the checkpoint that holds it completes, whatever happens to the bundle's timers.
        group.gauge("bundle_end_writes", self._flush_at_bundle_end)

    # ------------------------------------------------------------------ events and timers
    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        key, event = ctx.get_current_key(), value
        watermark = ctx.timer_service().current_watermark()
        if event["ts"] < watermark:
            self.late.inc()
        st = self._load(key)
        # Event time moves the state on only through timers (see _changed): advancing on every
        # event would rescan open sessions and windows each time.
        derived = st.apply(event) or ()
        self.applied.inc()
        self._changed(key, st, ctx)
        for update in derived:
            yield Row(f"creator:{update['creator_id']}", update)
        self._maybe_flush()

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        key = ctx.get_current_key()
        st = self._load(key)
        if ctx.time_domain() == TimeDomain.EVENT_TIME:
            if self.event_timers.get(key) == timestamp:
                del self.event_timers[key]
            st.advance(timestamp)
            self._changed(key, st, ctx)
        else:
            self.flush_timers.discard(key)
            self._stage(key, st)
        self._maybe_flush(force=ctx.time_domain() == TimeDomain.PROCESSING_TIME)
        return iter(())

    def _flush_at_bundle_end(self) -> int:
        staged = len(self.pending)
        self._maybe_flush(force=True)
        return staged

    # ------------------------------------------------------------------ helpers
    def _load(self, key: str) -> EntityState:
        st = self.state.value()
        if st is None:
            st = STATE_TYPES[key.split(":", 1)[0]]()
        return st

    def _changed(self, key: str, st: EntityState, ctx) -> None:
        timers = ctx.timer_service()
        nxt = st.next_timer()
        if nxt is not None and self.event_timers.get(key) != nxt:
            timers.register_event_time_timer(nxt)
            self.event_timers[key] = nxt
        if key not in self.flush_timers:
            timers.register_processing_time_timer(timers.current_processing_time()
                                                  + self.flush_ms)
            self.flush_timers.add(key)
        self.state.update(st)
        self._stage(key, st)

    def _stage(self, key: str, st: EntityState) -> None:
        if not self.pending:
            self.oldest_pending = time.monotonic()
        self.pending[key] = st

    def _write(self, key: str, st: EntityState) -> FeatureWrite:
        kind, entity_id = key.split(":", 1)
        features = st.features()
        ttl = self.ended_ttl_ms if kind == "show" and features.get("status") == "ended" else 0
        return FeatureWrite(kind, entity_id, st.seq, st.event_ts, features, ttl)

    def _maybe_flush(self, force: bool = False) -> None:
        if not self.pending:
            return
        if not force and len(self.pending) < self.batch_size and \
                (time.monotonic() - self.oldest_pending) * 1000 < self.flush_ms:
            return
        writes = [self._write(key, st) for key, st in self.pending.items()]
        self.pending.clear()
        self.store.write_many(writes)
        now_ms = int(time.time() * 1000)
        for w in writes:
            self.reflection.update(max(0, now_ms - w.event_ts))
        self.writes.inc(len(writes))
        self.batches.inc()
