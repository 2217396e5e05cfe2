"""Flink glue for detect_alarms: audio decoding at validation, per-stream detection with ONNX.

Metrics (group ``onair``): ``audio_chunks``, ``audio_duplicates``, ``audio_gaps_filled``,
``audio_resets``, ``windows_scored``, ``alarm_alerts``, ``streams_expired``, gauge
``last_alert_delay_ms`` (processing time of the newest alert minus the end of its confirming
window: the in-job part of the alert latency).
"""

from __future__ import annotations

import time

import numpy as np
from pyflink.common import Types
from pyflink.datastream import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

from models.alarm_training import alarm_label_of, feature_spec_of
from models.onnx_export import OnnxScorer
from models.registry import Registry
from operators.audio_pcm import decode_chunk, resample
from operators.audio_stream import Chunk, StreamDetector, StreamPolicy, alert_message
from operators.validate_function import kafka_row


def decoded_chunk(message: dict) -> tuple:
    """Validation's converter for ``audio-chunks``: the audio checks run here, so a bad chunk
    becomes a dead letter with its topic, partition and offset (``InvalidRecord``)."""
    samples = decode_chunk(message)
    return message["stream_id"], message["seq"], message["ts"], message["sample_rate"], samples


class DetectAlarmsFunction(KeyedProcessFunction):
    """Keyed by stream id. State: one pickled ``StreamDetector`` (bounded; see its module),
    cleared by a processing-time timer when the stream has been idle ``idle_timeout_s``."""

    def __init__(self, registry_root: str, model_name: str, model_version: str,
                 policy: StreamPolicy):
        self.registry_root = registry_root
        self.model_name = model_name
        self.model_version = model_version
        self.policy = policy

    def open(self, runtime_context: RuntimeContext) -> None:
        session, mv = Registry(self.registry_root).load_session(self.model_name,
                                                                self.model_version)
        self.scorer = OnnxScorer(session)
        self.labels = mv.labels
        self.alarm_label = alarm_label_of(mv)
        self.spec = feature_spec_of(mv)
        self.model_ref = mv.ref
        self.state = runtime_context.get_state(
            ValueStateDescriptor("stream", Types.PICKLED_BYTE_ARRAY()))
        self.last_seen = runtime_context.get_state(
            ValueStateDescriptor("last_seen_ms", Types.LONG()))
        group = runtime_context.get_metrics_group().add_group("onair")
        self.m = {name: group.counter(name) for name in (
            "audio_chunks", "audio_duplicates", "audio_gaps_filled", "audio_resets",
            "windows_scored", "alarm_alerts", "streams_expired")}
        self.last_delay_ms = 0
        group.gauge("last_alert_delay_ms", lambda: self.last_delay_ms)

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        stream_id, seq, ts, rate, pcm = value
        detector = self.state.value() or StreamDetector(self.spec, self.policy)
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
                self.last_delay_ms = now - round(detection.window_end_ts)
                self.m["alarm_alerts"].inc()
                yield kafka_row(stream_id, alert_message(
                    stream_id, detection, self.labels, self.alarm_label, self.model_ref, now))
        self.state.update(detector)
        now_ms = ctx.timer_service().current_processing_time()
        self.last_seen.update(now_ms)
        # One timer per stream per second at most: rounding coalesces the registrations.
        deadline = (now_ms // 1000 + 1) * 1000 + self.policy.idle_timeout_s * 1000
        ctx.timer_service().register_processing_time_timer(deadline)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        last = self.last_seen.value()
        if last is not None and timestamp - last >= self.policy.idle_timeout_s * 1000:
            self.state.clear()
            self.last_seen.clear()
            self.m["streams_expired"].inc()
        return iter(())  # PyFlink iterates what on_timer returns

