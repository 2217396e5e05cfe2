"""Flink glue for point-in-time features: batches of raw events in, entity buckets, Redis out.

``SplitBatchFunction`` takes the JVM's batches of raw Kafka records
(``operators.kafka_io.raw_batches``), validates each record (bad ones to the dead-letter side
output), routes it to the entities it updates and emits one record per entity bucket
(``models.features.buckets``) carrying that bucket's events. ``EntityBucketsFunction``, keyed
by bucket in the JVM, applies a batch to the bucket's entity states, advances them on one
event-time timer per bucket and saves the changed states; the changed entities of all its
buckets go to Redis together, in one pipelined round trip at most every
``write_interval_ms`` (``models.features.buckets.PendingWrites``). Shows emit derived creator
updates (plays, live changes) for a second, creator-bucketed instance.

State: each bucket's entities in a ``MapState`` (entity key -> state object, and a show's
listeners as entries of their own, so a batch saves only what it touched), and in this
worker's memory what the reads use: every show, and users and creators up to
``cache_per_bucket`` per bucket (the least recently used leave; a miss reads the ``MapState``;
0 keeps them all). The bucket is loaded from the ``MapState`` the first time this worker sees
it, which is also when the bucket's timer is registered again:
PyFlink (process mode, 2.0) can leave a checkpoint without the timer registrations of the
bundle whose state it holds (the registration travels as a mailbox mail that is drained only
before the watermark advances), so a timer remembered in state could be one Flink lost. Flink
keeps one timer per (key, time): a re-registration of a timer that survived is not doubled.

Why Redis stays consistent across restarts: every write carries the entity's ``seq`` (events
applied) and Redis keeps only a higher or equal one; a replay from a checkpoint recomputes the
same versions. A checkpoint can hold states whose write was still pending, so each bucket keeps
the keys changed since the last write in its ``MapState`` too, and a bucket loaded from it
writes those again; until a restored bucket gets a batch or its timer, what it had pending
stays out of Redis (with a live stream, a batch or two).

Metrics (group ``onair``): ``records_in``, ``records_valid``, ``dead_letters`` (splitter);
``events_applied``, ``late_events`` (behind the watermark when applied), ``redis_writes``,
``redis_batches``, distribution ``reflection_ms`` (per Redis write carrying changes made by
events: its wall clock minus the newest event time, as it was when first marked, of the entity
that waited longest) (buckets).
"""

from __future__ import annotations

import time

from pyflink.common import Row, Types
from pyflink.datastream import (
    KeyedProcessFunction,
    OutputTag,
    ProcessFunction,
    RuntimeContext,
    TimeDomain,
)
from pyflink.datastream.state import MapStateDescriptor

from connectors.feature_store import FeatureWrite, RedisFeatureStore
from core.settings import RedisSettings
from core.topics import (
    BEHAVIOR_EVENT,
    BEHAVIOR_EVENTS,
    SHOW_EVENT,
    SHOW_EVENTS,
    MessageSchema,
)
from models.features.buckets import (
    PART_SEP,
    RESERVED,
    Bucket,
    PendingWrites,
    route_derived,
    route_event,
    split_by_bucket,
)
from models.features.entities import DAY_MS, Eviction
from operators.metrics import HeapMetrics, LatencyMetrics
from operators.state_ttl import state_ttl
from operators.validate import (
    DEAD_LETTER_TAG,
    RecordBarrier,
    RowValidator,
    as_message,
    validate_value,
)

# Rows (bucket key, [(entity key, event), ...]) for ``operators.kafka_io.key_by_first_field``.
BATCH_TYPE = Types.ROW([Types.STRING(), Types.PICKLED_BYTE_ARRAY()])
EVENTS_TYPE = Types.PICKLED_BYTE_ARRAY()
SOURCE_TOPIC_OF = {**dict.fromkeys(BEHAVIOR_EVENT.kinds, BEHAVIOR_EVENTS.name),
                   **dict.fromkeys(SHOW_EVENT.kinds, SHOW_EVENTS.name)}
# Events that update a creator first-hand (follows), from the splitter to the creator stage.
CREATOR_TAG = OutputTag("creator-events", BATCH_TYPE)
# In each bucket's MapState: the entities whose latest state may not be in Redis yet.
UNWRITTEN = f"{RESERVED}unwritten"


class SplitBatchFunction(ProcessFunction):
    """A row ``(topic, partitions, offsets, values)`` -> validated events, one output row per
    bucket: show and user buckets on the main output, creator buckets on ``CREATOR_TAG``."""

    def __init__(self, job: str, schemas: dict[str, MessageSchema], buckets: int):
        self.job = job
        self.routes = {topic: (schema, as_message) for topic, schema in schemas.items()}
        self.buckets = buckets

    def open(self, runtime_context: RuntimeContext) -> None:
        self.validate = RowValidator(self.job, runtime_context)
        self.barrier = RecordBarrier(self.job, "split", runtime_context)

    def process_element(self, value: Row, ctx: ProcessFunction.Context):
        topic, partitions, offsets, values = value[0], value[1], value[2], value[3]
        route = self.routes.get(topic)
        first, creators = [], []
        bad = 0
        for partition, offset, raw in zip(partitions, offsets, values, strict=True):
            ok, out = validate_value(raw or None, topic, partition, offset, route, self.job)
            if not ok:
                bad += 1
                yield DEAD_LETTER_TAG, out
                continue
            try:
                to_first, to_creators = route_event(out)
            except Exception as e:
                bad += 1
                yield self.barrier.letter(e, out, source_topic=topic,
                                          message_id=str(out.get("event_id")))
                continue
            first += to_first
            creators += to_creators
        # Counted per batch: a metric update is a call into the JVM in thread mode (7 % of
        # the job's Python time when counted per record).
        self.validate.count_batch(len(values), bad)
        for bucket, batch in split_by_bucket(first, self.buckets, "b").items():
            yield Row(bucket, batch)
        for bucket, batch in split_by_bucket(creators, self.buckets, "c").items():
            yield CREATOR_TAG, Row(bucket, batch)


class EntityBucketsFunction(KeyedProcessFunction):
    """Keyed by bucket; the value is a list of (entity key, event). Shows' derived creator
    updates go out as creator-bucket rows (``buckets`` of them, prefix ``c``). Redis writes
    of all this worker's buckets go out together, at most once per ``write_interval_ms``
    (``PendingWrites``); 0 writes at the end of every call."""

    def __init__(self, redis: RedisSettings, *, buckets: int, write_interval_ms: int = 100,
                 ended_ttl_ms: int = 24 * 3_600_000, state_ttl_days: int = 14,
                 evict_idle_days: int = 30, evict_ended_days: int = 7,
                 cache_per_bucket: int = 0, gc_freeze_s: float = 0,
                 job: str = "compute_features", operator: str = "entities"):
        self.job, self.operator = job, operator
        # Entities leave state by event time (idle users and creators, ended shows), in
        # thread mode too, where PyFlink cannot set a state TTL; 0 days keeps them.
        self.eviction = Eviction(idle_ms=evict_idle_days * DAY_MS,
                                 ended_ms=evict_ended_days * DAY_MS) if evict_idle_days else None
        self.redis = redis
        self.buckets = buckets
        self.write_interval_ms = write_interval_ms
        self.ended_ttl_ms = ended_ttl_ms
        self.state_ttl_days = state_ttl_days
        self.cache_per_bucket = cache_per_bucket
        self.gc_freeze_s = gc_freeze_s

    def open(self, runtime_context: RuntimeContext) -> None:
        descriptor = MapStateDescriptor("entities", Types.STRING(), Types.PICKLED_BYTE_ARRAY())
        if self.state_ttl_days:
            descriptor.enable_time_to_live(state_ttl(self.state_ttl_days * 86_400))
        self.state = runtime_context.get_map_state(descriptor)
        self.store = RedisFeatureStore(self.redis)
        self.loaded: dict[str, Bucket] = {}   # what this worker holds of each bucket
        self.unwritten: dict[str, set[str]] = {}   # changed since the last write, by bucket
        self.timers: dict[str, int] = {}      # the event-time timer registered, by bucket
        self.pending = PendingWrites(self.write_interval_ms)
        self.write_timer: int | None = None   # the processing-time timer that writes them
        group = runtime_context.get_metrics_group().add_group("onair")
        self.applied = group.counter("events_applied")
        self.late = group.counter("late_events")
        self.writes = group.counter("redis_writes")
        self.batches = group.counter("redis_batches")
        self.reflection = group.distribution("reflection_ms")
        self.job_latency = LatencyMetrics(group)
        self.barrier = RecordBarrier(self.job, self.operator, runtime_context)
        self.evictions = group.counter("entities_evicted")
        self.heap = HeapMetrics(group, self.gc_freeze_s)

    def close(self) -> None:
        self.heap.close()

    def process_element(self, value: list, ctx: KeyedProcessFunction.Context):
        key = ctx.get_current_key()
        bucket = self._bucket(key)
        watermark = ctx.timer_service().current_watermark()
        late = sum(1 for _, event in value if event["ts"] < watermark)
        if late:
            self.late.inc(late)
        failed: list = []
        derived = bucket.apply(value, failed)
        self.applied.inc(len(value) - len(failed))
        self._save(key, bucket, ctx, events=True)
        self.heap.tick()
        yield from self._letters(failed)
        if derived:
            for creator_bucket, batch in split_by_bucket(route_derived(derived), self.buckets,
                                                         "c").items():
                yield Row(creator_bucket, batch)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        if ctx.time_domain() == TimeDomain.PROCESSING_TIME:
            if self.write_timer == timestamp:
                self.write_timer = None
            self._write_pending(ctx.timer_service().current_processing_time())
            return iter(())
        key = ctx.get_current_key()
        if self.timers.get(key) == timestamp:
            del self.timers[key]
        bucket = self._bucket(key)
        failed: list = []
        bucket.advance(timestamp, failed)
        self._evict(bucket.take_evicted())
        self._save(key, bucket, ctx, events=False)
        self.heap.tick()
        return self._letters(failed)

    def _evict(self, evicted: list[tuple[str, list[str]]]) -> None:
        """Evicted entities leave Flink state, the pending writes and the online store (a
        store entry left behind would hold a higher version than the entity's next life)."""
        if not evicted:
            return
        for entity, parts in evicted:
            self.state.remove(entity)
            for part in parts:
                self.state.remove(f"{entity}{PART_SEP}{part}")
            self.pending.entities.pop(entity, None)
        self.store.delete_many([entity.split(":", 1) for entity, _ in evicted])
        self.evictions.inc(len(evicted))

    def _letters(self, failed: list):
        """Dead letters of the events (or entities, when event time advanced them) that
        raised in a bucket."""
        for entity, event, error in failed:
            if event is None:
                event = {"entity": entity}
            topic = SOURCE_TOPIC_OF.get(event.get("event_type"), "derived")
            yield self.barrier.letter(error, event, source_topic=topic,
                                      message_id=f"{entity}:{event.get('event_id')}")

    def _bucket(self, key: str) -> Bucket:
        bucket = self.loaded.get(key)
        if bucket is None:
            bucket = self.loaded[key] = Bucket(
                eviction=self.eviction, capacity=self.cache_per_bucket or None,
                load=self.state.get if self.cache_per_bucket else None)
            bucket.restore(self.state.items())
            # A checkpoint can hold states whose Redis write was still pending when it was
            # taken: a restored bucket writes those entities again (versioned, so the ones
            # Redis already has at a higher version are left alone). A checkpoint without
            # the list (an older version's) has all of them written again.
            unwritten = self.state.get(UNWRITTEN)
            if unwritten is None:
                self.pending.mark(bucket.in_memory(), events=False)
            else:
                self.pending.mark([(k, st) for k in unwritten
                                   if (st := bucket.get(k)) is not None], events=False)
        return bucket

    def _save(self, key: str, bucket: Bucket, ctx, *, events: bool) -> None:
        nxt = bucket.next_timer()
        # An earlier timer than the one registered is added; a later one waits for the
        # registered timer, which finds nothing due and registers the next.
        if nxt is not None and (key not in self.timers or nxt < self.timers[key]):
            ctx.timer_service().register_event_time_timer(nxt)
            self.timers[key] = nxt
        changed, saves = bucket.take_changed()
        for state_key, obj in saves:
            self.state.put(state_key, obj)
        self.pending.mark(changed, events=events)
        if changed:
            unwritten = self.unwritten.setdefault(key, set())
            unwritten.update(k for k, _ in changed)
            # Cleared in memory by each write, in state by this bucket's next change: a
            # restore may write a few entities again, never miss one.
            self.state.put(UNWRITTEN, list(unwritten))
        if not self.pending.entities:
            return
        now = ctx.timer_service().current_processing_time()
        if self.pending.due(now):
            self._write_pending(now)
        elif self.write_timer is None:
            # A quiet stream still gets its last changes written within the interval.
            self.write_timer = now + self.write_interval_ms
            ctx.timer_service().register_processing_time_timer(self.write_timer)

    def _write_pending(self, now: int) -> None:
        changed, oldest_event_ts = self.pending.take(now)
        if not changed:
            return
        writes = [self._write(entity, st) for entity, st in changed]
        self.store.write_many(writes)
        self.unwritten.clear()
        if oldest_event_ts is not None:   # event time passing is not an event reflected
            # One sample per write, its least recent entity: a metric update is a call into
            # the JVM in thread mode, too dear per entity.
            reflection = max(0, int(time.time() * 1000) - oldest_event_ts)
            self.reflection.update(reflection)
            self.job_latency.observe(reflection)
        self.writes.inc(len(writes))
        self.batches.inc()

    def _write(self, entity: str, st) -> FeatureWrite:
        kind, entity_id = entity.split(":", 1)
        features = st.features()
        ttl = self.ended_ttl_ms if kind == "show" and features.get("status") == "ended" else 0
        return FeatureWrite(kind, entity_id, st.seq, st.event_ts, features, ttl)
