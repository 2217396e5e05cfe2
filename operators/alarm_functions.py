"""Flink glue for detect_alarms: audio decoding at validation, per-stream detection with ONNX.

Metrics (group ``onair``): ``audio_chunks``, ``audio_duplicates``, ``audio_gaps_filled``,
``audio_resets``, ``windows_scored``, ``alarm_alerts``, ``streams_expired``,
``last_alert_delay_ms`` (processing time of the newest alert minus the end of its confirming
window: the in-job part of the alert latency).

``last_alert_delay_ms`` is a PyFlink distribution, not a gauge: in thread mode a distribution is
a last-value gauge held by the JVM and set from the task thread, while a Python gauge is called
back from Flink's metrics thread, which PEMJA has not attached to the interpreter (a TaskManager
running this job died of it: SIGSEGV in ``take_gil`` under ``MetricGauge.getValue``).
"""

from __future__ import annotations

import time

import numpy as np
from pyflink.common import Types
from pyflink.datastream import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

from connectors.topics import MessageSchema
from models.alarm_training import alarm_label_of, feature_spec_of
from models.onnx_export import OnnxScorer
from models.registry import Registry
from operators.audio_pcm import decode_chunk, resample
from operators.audio_stream import Chunk, StreamDetector, StreamPolicy, alert_message
from operators.validate_function import DEAD_LETTER_TAG, RowValidator, kafka_row


def decoded_chunk(message: dict) -> tuple:
    """Validation's converter for ``audio-chunks``: the audio checks run here, so a bad chunk
    becomes a dead letter with its topic, partition and offset (``InvalidRecord``)."""
    samples = decode_chunk(message)
    return message["stream_id"], message["seq"], message["ts"], message["sample_rate"], samples


class DetectAlarmsFunction(KeyedProcessFunction):
    """Keyed by stream id, fed raw Kafka rows (``connectors.flink_io.keyed_raw_input``): it
    validates and decodes each chunk itself (bad ones go to ``DEAD_LETTER_TAG``). State: one
    ``StreamDetector`` (bounded; see its module) per stream, written after every chunk and
    cleared by a processing-time timer when the stream has been idle ``idle_timeout_s``.

    The detectors also stay live in ``self.detectors``, so a chunk reads state only for a
    stream this instance has not seen since it was (re)started: every chunk still writes it,
    so a checkpoint holds each stream as of its last chunk."""

    def __init__(self, job: str, schema: MessageSchema, registry_root: str, model_name: str,
                 model_version: str, policy: StreamPolicy):
        self.job = job
        self.route = (schema, decoded_chunk)
        self.registry_root = registry_root
        self.model_name = model_name
        self.model_version = model_version
        self.policy = policy

    def open(self, runtime_context: RuntimeContext) -> None:
        self.validate = RowValidator(self.job, runtime_context)
        session, mv = Registry(self.registry_root).load_session(self.model_name,
                                                                self.model_version)
        self.scorer = OnnxScorer(session)
        self.labels = mv.labels
        self.alarm_label = alarm_label_of(mv)
        self.spec = feature_spec_of(mv)
        self.model_ref = mv.ref
        self.detectors: dict = {}
        self.deadlines: dict = {}   # the idle timer registered last, per stream
        self.state = runtime_context.get_state(
            # Bytes from StreamDetector.to_bytes (pickling bytes is a copy); PyFlink's
            # byte-array state type cannot say "no value yet".
            ValueStateDescriptor("detector", Types.PICKLED_BYTE_ARRAY()))
        self.last_seen = runtime_context.get_state(
            ValueStateDescriptor("last_seen_ms", Types.LONG()))
        group = runtime_context.get_metrics_group().add_group("onair")
        self.m = {name: group.counter(name) for name in (
            "audio_chunks", "audio_duplicates", "audio_gaps_filled", "audio_resets",
            "windows_scored", "alarm_alerts", "streams_expired")}
        self.last_delay_ms = group.distribution("last_alert_delay_ms")

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        ok, row = self.validate(value, self.route)
        if not ok:
            yield DEAD_LETTER_TAG, row
            return
        stream_id, seq, ts, rate, pcm = row
        key = ctx.get_current_key()
        detector = self.detectors.get(key)
        if detector is None:
            saved = self.state.value()
            detector = self.detectors[key] = (
                StreamDetector(self.spec, self.policy) if saved is None
                else StreamDetector.from_bytes(saved, self.spec, self.policy))
        before = (detector.counters.duplicates, detector.counters.gaps_filled,
                  detector.counters.resets)
        samples = resample(pcm, rate, self.spec.sample_rate)
        windows = detector.push(Chunk(seq, float(ts), samples))
        self.m["audio_chunks"].inc()
        after = (detector.counters.duplicates, detector.counters.gaps_filled,
                 detector.counters.resets)
        for name, b, a in zip(("audio_duplicates", "audio_gaps_filled", "audio_resets"),
                              before, after, strict=True):
            if a > b:
                self.m[name].inc(a - b)
        if windows:
            probs = self.scorer(np.stack([w.features for w in windows]))
            self.m["windows_scored"].inc(len(windows))
            for w, p in zip(windows, probs, strict=True):
                detection = detector.decide(w, p, self.labels, self.alarm_label)
                if detection is None:
                    continue
                now = int(time.time() * 1000)
                self.last_delay_ms.update(now - round(detection.window_end_ts))
                self.m["alarm_alerts"].inc()
                yield kafka_row(stream_id, alert_message(
                    stream_id, detection, self.labels, self.alarm_label, self.model_ref, now))
        self.state.update(detector.to_bytes())
        # Idleness is kept to the second: one timer and one last_seen write per stream per
        # second, not per chunk (each is a call into the JVM).
        now_ms = int(time.time() * 1000)
        deadline = (now_ms // 1000 + 1) * 1000 + self.policy.idle_timeout_s * 1000
        if self.deadlines.get(key) != deadline:
            self.deadlines[key] = deadline
            self.last_seen.update(now_ms)
            ctx.timer_service().register_processing_time_timer(deadline)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        last = self.last_seen.value()
        # ``last`` is the first chunk of the stream's last active second: up to a second early.
        if last is not None and timestamp - last >= self.policy.idle_timeout_s * 1000:
            self.state.clear()
            self.last_seen.clear()
            key = ctx.get_current_key()
            self.detectors.pop(key, None)
            self.deadlines.pop(key, None)
            self.m["streams_expired"].inc()
        return iter(())  # PyFlink iterates what on_timer returns

