"""Flink glue for the transcript job: vocabulary correction, reference pairing, rolling WER.

Metrics (group ``onair``): ``segments_corrected``, ``replacements``, ``vocab_reloads``,
``vocab_reload_errors``, ``segments_scored``, ``wer_errors``, ``wer_ref_words`` (their ratio is
the WER of everything scored), gauge ``last_wer_permille`` (the newest rolling WER x 1000).
"""

from __future__ import annotations

import logging
import os
import time

from pyflink.common import Row, Types
from pyflink.datastream import (
    KeyedCoProcessFunction,
    KeyedProcessFunction,
    OutputTag,
    ProcessFunction,
    RuntimeContext,
)
from pyflink.datastream.state import ValueStateDescriptor

from core.topics import TRANSCRIPT_REFERENCES, TRANSCRIPTS
from models.transcripts.rolling_wer import PendingPair, RollingWer
from models.transcripts.vocabulary import VocabularyError, load_vocabulary
from models.transcripts.vocabulary_match import VocabularyMatcher
from operators.state_ttl import state_ttl
from operators.validate import RecordBarrier, kafka_row

log = logging.getLogger(__name__)
CORRECTED_TAG = OutputTag("corrected", Types.PICKLED_BYTE_ARRAY())


class CorrectTranscriptFunction(ProcessFunction):
    """Applies the vocabulary; main output: Kafka rows for ``transcripts-corrected``; side
    output ``CORRECTED_TAG``: the corrected message for scoring.

    The vocabulary file is re-read when its modification time changes (checked at most every
    ``reload_check_s``); a file that fails to load keeps the previous vocabulary in use.
    """

    def __init__(self, vocab_path: str, reload_check_s: float = 5.0,
                 job: str = "correct_transcripts"):
        self.vocab_path = vocab_path
        self.reload_check_s = reload_check_s
        self.job = job

    def open(self, runtime_context: RuntimeContext) -> None:
        self.barrier = RecordBarrier(self.job, "vocabulary", runtime_context)
        group = runtime_context.get_metrics_group().add_group("onair")
        self.corrected = group.counter("segments_corrected")
        self.replaced = group.counter("replacements")
        self.reloads = group.counter("vocab_reloads")
        self.reload_errors = group.counter("vocab_reload_errors")
        self.mtime = os.stat(self.vocab_path).st_mtime_ns
        self.matcher = VocabularyMatcher(load_vocabulary(self.vocab_path))
        self.next_check = time.monotonic() + self.reload_check_s

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now < self.next_check:
            return
        self.next_check = now + self.reload_check_s
        try:
            mtime = os.stat(self.vocab_path).st_mtime_ns
            if mtime == self.mtime:
                return
            self.matcher = VocabularyMatcher(load_vocabulary(self.vocab_path))
            self.mtime = mtime
            self.reloads.inc()
        except (OSError, VocabularyError) as e:
            self.reload_errors.inc()
            log.warning("keeping the previous vocabulary: %s", e)

    def process_element(self, value: Row, ctx: ProcessFunction.Context):
        self._maybe_reload()
        segment = value.as_dict()
        try:
            text, replacements = self.matcher.apply(segment["text"])
            corrected = {**segment, "text": text, "original_text": segment["text"],
                         "replacements": [r.as_dict() for r in replacements]}
        except Exception as e:
            yield self.barrier.letter(e, segment, source_topic=TRANSCRIPTS.name,
                                      message_id=segment["segment_id"])
            return
        self.corrected.inc()
        self.replaced.inc(len(replacements))
        yield kafka_row(segment["stream_id"], corrected)
        yield CORRECTED_TAG, corrected


class PairSegmentsFunction(KeyedCoProcessFunction):
    """Keyed by segment id: pairs the corrected hypothesis (input 1) with its reference
    (input 2), in either order, and emits the ``SegmentScore``. Unpaired halves expire after
    ``ttl_s``."""

    def __init__(self, ttl_s: int = 3600, job: str = "correct_transcripts"):
        self.ttl_s = ttl_s
        self.job = job

    def open(self, runtime_context: RuntimeContext) -> None:
        self.barrier = RecordBarrier(self.job, "pair-references", runtime_context)
        descriptor = ValueStateDescriptor("pending", Types.PICKLED_BYTE_ARRAY())
        descriptor.enable_time_to_live(state_ttl(self.ttl_s))
        self.pending = runtime_context.get_state(descriptor)

    def _add(self, kind: str, message: dict):
        pair = self.pending.value() or PendingPair()
        try:
            score = pair.add(kind, message)
        except Exception as e:
            topic = TRANSCRIPTS.name if kind == "hypothesis" else TRANSCRIPT_REFERENCES.name
            yield self.barrier.letter(e, message, source_topic=topic,
                                      message_id=str(message.get("segment_id")))
            return
        if score is None:
            self.pending.update(pair)
        else:
            self.pending.clear()
            yield score

    def process_element1(self, value, ctx):
        yield from self._add("hypothesis", value)

    def process_element2(self, value, ctx):
        yield from self._add("reference", value.as_dict())


class RollingWerFunction(KeyedProcessFunction):
    """Keyed by stream id: folds segment scores into ``RollingWer``; emits Kafka rows for
    ``transcript-wer``."""

    def __init__(self, window: int = 100, job: str = "correct_transcripts"):
        self.window = window
        self.job = job

    def open(self, runtime_context: RuntimeContext) -> None:
        self.barrier = RecordBarrier(self.job, "rolling-wer", runtime_context)
        self.state = runtime_context.get_state(
            ValueStateDescriptor("rolling_wer", Types.PICKLED_BYTE_ARRAY()))
        group = runtime_context.get_metrics_group().add_group("onair")
        self.scored = group.counter("segments_scored")
        self.errors = group.counter("wer_errors")
        self.ref_words = group.counter("wer_ref_words")
        self.last_wer_permille = 0
        group.gauge("last_wer_permille", lambda: self.last_wer_permille)

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        rolling = self.state.value() or RollingWer(self.window)
        try:
            update = rolling.add(value)
        except Exception as e:
            yield self.barrier.letter(e, value, source_topic=TRANSCRIPTS.name,
                                      message_id=str(getattr(value, "segment_id", "?")))
            return
        self.state.update(rolling)
        self.scored.inc()
        self.errors.inc(value.errors)
        self.ref_words.inc(value.ref_words)
        self.last_wer_permille = round(update["wer"] * 1000)
        yield kafka_row(value.stream_id, update)
