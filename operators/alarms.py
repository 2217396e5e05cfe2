"""Flink glue for detect_alarms: audio decoding at validation, per-stream detection with ONNX.

Metrics (group ``onair``): ``audio_chunks``, ``audio_duplicates``, ``audio_gaps_filled``,
``audio_resets``, ``windows_scored``, ``alarm_alerts``, ``streams_expired``, ``batches``,
``last_alert_delay_ms`` (processing time of the newest alert minus the end of its confirming
window: the in-job part of the alert latency).

``last_alert_delay_ms`` is a PyFlink distribution, not a gauge: in thread mode a distribution is
a last-value gauge held by the JVM and set from the task thread, while a Python gauge is called
back from Flink's metrics thread, which PEMJA has not attached to the interpreter (a TaskManager
running this job died of it: SIGSEGV in ``take_gil`` under ``MetricGauge.getValue``).
"""

from __future__ import annotations

import pickle
import time
from dataclasses import astuple

import numpy as np
from pyflink.common import Types
from pyflink.datastream import KeyedProcessFunction, MapFunction, RuntimeContext, TimeDomain
from pyflink.datastream.state import ListStateDescriptor, ValueStateDescriptor
from threadpoolctl import ThreadpoolController

from core.topics import MessageSchema
from models.alarms.mel import FeatureSpec
from models.alarms.pcm import decode_chunk, resample
from models.alarms.stream import (
    Chunk,
    StreamDetector,
    StreamPolicy,
    alert_message,
    decide_many,
    push_many,
)
from models.alarms.training import alarm_label_of, feature_spec_of, file_windows
from models.onnx_export import OnnxScorer
from models.registry import RegistryRef
from operators.metrics import LatencyMetrics
from operators.validate import DEAD_LETTER_TAG, RecordBarrier, RowValidator, kafka_row


def decoded_chunk(message: dict) -> tuple:
    """Validation's converter for ``audio-chunks``: the audio checks run here, so a bad chunk
    becomes a dead letter with its topic, partition and offset (``InvalidRecord``). The stream
    id is the record's key (validation checks it), so it is not repeated here."""
    samples = decode_chunk(message)
    return message["seq"], message["ts"], message["sample_rate"], samples


class DetectAlarmsFunction(KeyedProcessFunction):
    """Keyed by stream id, fed raw Kafka rows (``operators.kafka_io.keyed_raw_input``): it
    validates and decodes each chunk itself (bad ones go to ``DEAD_LETTER_TAG``) and queues
    it; the queue goes through ``push_many`` and one ONNX call as one batch when it holds
    ``batch_chunks`` chunks or its oldest has waited ``batch_wait_ms``, and at the end of a
    bounded input. A chunk alone cost ~350 us of numpy calls on a dozen frames; in a batch the
    calls are shared (docs/performance.md).

    The detectors live in ``self.detectors``; keyed state holds what rebuilds them after a
    restart: ``snapshot`` (``StreamDetector.to_bytes`` at some point) and ``unapplied`` (every
    chunk received since, as samples). A chunk is added to ``unapplied`` when it arrives, so a
    checkpoint covers it whether or not its batch ran; every ``snapshot_every`` applied chunks
    the stream's next chunk rewrites the snapshot and trims the list. A restored stream replays
    its list through the detector, so alerts of the replayed audio can repeat: with the same
    ``alert_id`` (at-least-once, like the sink). A processing-time timer forgets a stream idle
    for ``idle_timeout_s``."""

    def __init__(self, job: str, schema: MessageSchema, registry: RegistryRef, model_name: str,
                 model_version: str, policy: StreamPolicy, *, batch_chunks: int = 64,
                 batch_wait_ms: int = 40, snapshot_every: int = 10):
        self.job = job
        self.route = (schema, decoded_chunk)
        self.registry = registry
        self.model_name = model_name
        self.model_version = model_version
        self.policy = policy
        self.batch_chunks = batch_chunks
        self.batch_wait_ms = batch_wait_ms
        self.snapshot_every = snapshot_every

    def open(self, runtime_context: RuntimeContext) -> None:
        self.validate = RowValidator(self.job, runtime_context)
        self.barrier = RecordBarrier(self.job, "detect", runtime_context)
        session, mv = self.registry.open().load_session(self.model_name, self.model_version)
        self.scorer = OnnxScorer(session)
        self.labels = mv.labels
        self.alarm_label = alarm_label_of(mv)
        self.spec = feature_spec_of(mv)
        self.model_ref = mv.ref
        self.detectors: dict[str, StreamDetector] = {}
        self.queue: list[tuple[str, Chunk]] = []   # chunks waiting for their batch
        self.flush_due: int | None = None           # the flush timer of the current queue
        self.end_timer = False                      # the end-of-input timer is registered
        self.unapplied_count: dict[str, int] = {}   # chunks in each stream's ``unapplied``
        self.queued: dict[str, list[Chunk]] = {}    # each stream's chunks in ``queue``
        self.deadlines: dict[str, int] = {}         # the idle timer registered last
        self.blas = None                            # threadpoolctl, at the first batch
        # Bytes (PyFlink's byte-array state type cannot say "no value yet").
        self.snapshot = runtime_context.get_state(
            ValueStateDescriptor("detector", Types.PICKLED_BYTE_ARRAY()))
        self.unapplied = runtime_context.get_list_state(
            ListStateDescriptor("unapplied", Types.PICKLED_BYTE_ARRAY()))
        self.last_seen = runtime_context.get_state(
            ValueStateDescriptor("last_seen_ms", Types.LONG()))
        group = runtime_context.get_metrics_group().add_group("onair")
        self.m = {name: group.counter(name) for name in (
            "audio_chunks", "audio_duplicates", "audio_gaps_filled", "audio_resets",
            "windows_scored", "alarm_alerts", "streams_expired", "batches")}
        self.last_delay_ms = group.distribution("last_alert_delay_ms")
        self.job_latency = LatencyMetrics(group)
        self.job_latency.model(self.model_ref)

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        key = ctx.get_current_key()
        ok, row = self.validate(value, self.route, ("stream_id", key))
        if not ok:
            yield DEAD_LETTER_TAG, row
            return
        seq, ts, rate, pcm = row
        try:
            chunk = Chunk(seq, float(ts), resample(pcm, rate, self.spec.sample_rate))
        except Exception as e:
            yield self.barrier.letter(e, {"stream_id": key, "seq": seq, "ts": ts,
                                          "sample_rate": rate}, source_topic=value.topic,
                                      message_id=f"{key}:{seq}")
            return
        if key not in self.detectors:
            self._restore(key)
        self._save(key, chunk)
        self._enqueue(key, chunk)
        self.m["audio_chunks"].inc()
        timers = ctx.timer_service()
        if len(self.queue) >= self.batch_chunks:
            yield from self._flush()
        elif self.flush_due is None:
            self.flush_due = timers.current_processing_time() + self.batch_wait_ms
            timers.register_processing_time_timer(self.flush_due)
        if not self.end_timer:
            # A bounded input ends with the largest watermark, which fires this: the last
            # batch is not left to a processing-time timer that the end of input cancels.
            timers.register_event_time_timer(_END_OF_INPUT)
            self.end_timer = True
        # Idleness is kept to the second: one timer and one last_seen write per stream per
        # second, not per chunk (each is a call into the JVM).
        now_ms = int(time.time() * 1000)
        deadline = (now_ms // 1000 + 1) * 1000 + self.policy.idle_timeout_s * 1000
        if self.deadlines.get(key) != deadline:
            self.deadlines[key] = deadline
            self.last_seen.update(now_ms)
            timers.register_processing_time_timer(deadline)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        if self.queue and (ctx.time_domain() == TimeDomain.EVENT_TIME
                           or timestamp >= (self.flush_due or 0)):
            yield from self._flush()
        if ctx.time_domain() == TimeDomain.EVENT_TIME:
            return
        last = self.last_seen.value()
        # ``last`` is the first chunk of the stream's last active second: up to a second early.
        if last is not None and timestamp - last >= self.policy.idle_timeout_s * 1000:
            key = ctx.get_current_key()
            if self.queued.get(key):
                return   # cannot happen while batches wait milliseconds; never drop audio
            self.snapshot.clear()
            self.unapplied.clear()
            self.last_seen.clear()
            for memo in (self.detectors, self.unapplied_count, self.queued, self.deadlines):
                memo.pop(key, None)
            self.m["streams_expired"].inc()

    # ------------------------------------------------------------------ state
    def _restore(self, key: str) -> None:
        """The stream's detector: new, or rebuilt from its snapshot and unapplied chunks."""
        saved = self.snapshot.value()
        self.detectors[key] = (StreamDetector(self.spec, self.policy) if saved is None
                               else StreamDetector.from_bytes(saved, self.spec, self.policy))
        replay = [_chunk_from_bytes(b) for b in self.unapplied.get() or ()]
        self.unapplied_count[key] = len(replay)
        for chunk in replay:
            self._enqueue(key, chunk)

    def _save(self, key: str, chunk: Chunk) -> None:
        """Record ``chunk`` in state before it is applied (see the class docstring)."""
        queued = self.queued.get(key, [])
        applied = self.unapplied_count.get(key, 0) - len(queued)
        if applied >= self.snapshot_every:
            # The detector holds exactly the applied chunks: the queued ones stay unapplied.
            self.snapshot.update(self.detectors[key].to_bytes())
            self.unapplied.update([_chunk_to_bytes(c) for c in (*queued, chunk)])
            self.unapplied_count[key] = len(queued) + 1
        else:
            self.unapplied.add(_chunk_to_bytes(chunk))
            self.unapplied_count[key] = self.unapplied_count.get(key, 0) + 1

    def _enqueue(self, key: str, chunk: Chunk) -> None:
        self.queue.append((key, chunk))
        self.queued.setdefault(key, []).append(chunk)

    # ------------------------------------------------------------------ batches
    def _flush(self):
        batch, self.queue, self.flush_due = self.queue, [], None
        self.queued.clear()
        yield from self._run_guarded(batch)

    def _run_guarded(self, batch: list[tuple[str, Chunk]]):
        """``_run``, with the per-record barrier: a batch that raises runs again one chunk at
        a time, so only the chunk that breaks is a dead letter (the others' detectors may
        see a chunk twice: the sequencer drops the repeat)."""
        try:
            yield from self._run(batch)
        except Exception as e:
            if len(batch) > 1:
                for item in batch:
                    yield from self._run_guarded([item])
                return
            key, chunk = batch[0]
            yield self.barrier.letter(
                e, {"stream_id": key, "seq": chunk.seq, "ts": chunk.ts},
                source_topic="audio-chunks", message_id=f"{key}:{chunk.seq}")

    def _run(self, batch: list[tuple[str, Chunk]]):
        keys = {id(self.detectors[key]): key for key, _ in batch}
        counts = {key: astuple(self.detectors[key].counters) for key in keys.values()}
        # One BLAS thread: a batch's matrix products are big enough for OpenBLAS to wake its
        # second thread, whose spinning between calls cost more CPU than the whole batch.
        if self.blas is None:
            self.blas = ThreadpoolController()   # sees the BLAS libraries loaded by now
        with self.blas.limit(limits=1, user_api="blas"):
            results = push_many([(self.detectors[key], chunk) for key, chunk in batch])
        self.m["batches"].inc()
        for key, before in counts.items():
            after = astuple(self.detectors[key].counters)
            for name, b, a in zip(("audio_duplicates", "audio_gaps_filled", "audio_resets"),
                                  before, after, strict=True):
                if a > b:
                    self.m[name].inc(a - b)
        scored, detections = decide_many(results, self.scorer, self.labels, self.alarm_label)
        if scored:
            self.m["windows_scored"].inc(scored)
        for detector, detection in detections:
            now = int(time.time() * 1000)
            self.last_delay_ms.update(now - round(detection.window_end_ts))
            # The job's latency: from the alarm's onset as the detector heard it (the start of
            # the run's first positive window) to the alert.
            self.job_latency.observe(now - round(detection.onset_ts))
            self.m["alarm_alerts"].inc()
            stream_id = keys[id(detector)]
            yield kafka_row(stream_id, alert_message(
                stream_id, detection, self.labels, self.alarm_label, self.model_ref, now))


# Fires only when the watermark reaches its maximum: at the end of a bounded input.
_END_OF_INPUT = 2 ** 63 - 2


def _chunk_to_bytes(chunk: Chunk) -> bytes:
    return pickle.dumps((chunk.seq, chunk.ts, chunk.samples.tobytes()),
                        protocol=pickle.HIGHEST_PROTOCOL)


def _chunk_from_bytes(data: bytes) -> Chunk:
    seq, ts, samples = pickle.loads(data)
    return Chunk(seq, ts, np.frombuffer(samples, np.float32))


class ExtractFeatures(MapFunction):
    """(kind, key, path) -> pickled (kind, key, path, windows x features)."""

    def __init__(self, spec: dict):
        self.spec = spec

    def open(self, runtime_context) -> None:
        self.features = FeatureSpec(**self.spec)

    def map(self, value):
        kind, key, path = value
        return kind, key, path, file_windows(path, self.features)
