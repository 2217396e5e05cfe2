"""correct_transcripts on the Flink cluster with real Kafka: corrections, rolling WER equal to
the offline WER, dead letters, and a vocabulary reloaded while the job runs."""

from __future__ import annotations

import json
import shutil
import time

import pytest
from conftest import wait_for_count

from connectors import flink_rest
from connectors.kafka_admin import create_topics, producer, read_all
from core.settings import KafkaSettings
from models.transcripts.vocabulary import load_vocabulary
from models.transcripts.vocabulary_match import VocabularyMatcher
from models.transcripts.wer import score_lines
from onair.sim.sample_transcripts import EXAMPLE, segments
from onair.submit import submit

N = 45


def _produce(kafka: KafkaSettings, topic: str, messages: list[dict]) -> None:
    p = producer(kafka)
    for m in messages:
        p.send(kafka.topic(topic), json.dumps(m, ensure_ascii=False).encode(),
               key=m["stream_id"].encode())
    p.flush()
    p.close()


def _wait_for(kafka: KafkaSettings, topic: str, n: int) -> list[dict]:
    return wait_for_count(lambda: [json.loads(r.value) for r in
                                   read_all(kafka, kafka.topic(topic), 1000)], n)


@pytest.mark.integration
def test_transcripts_corrected_and_rolling_wer_equals_offline(services, topic_prefix, tmp_path):
    kafka = KafkaSettings.from_env()
    create_topics(kafka)
    full = (EXAMPLE / "vocab.tsv").read_text(encoding="utf-8")
    vocab = tmp_path / "vocab.tsv"
    vocab.write_text("".join(line for line in full.splitlines(keepends=True)
                             if not line.startswith("Bengaluru")), encoding="utf-8")
    matcher = VocabularyMatcher(load_vocabulary(vocab))

    job_id = submit("correct_transcripts", ["--vocab", str(vocab), "--reload-check-s", "1",
                                            "--checkpoint-interval-ms", "2000"])
    try:
        assert flink_rest.wait_for_state(job_id, {"RUNNING"}, 120) == "RUNNING"
        pairs = segments(N)
        _produce(kafka, "transcripts", [h for h, _ in pairs])
        _produce(kafka, "transcript-references", [r for _, r in pairs])
        p = producer(kafka)
        p.send(kafka.topic("transcripts"), b'{"segment_id": "bad", "text": 7}')
        p.flush()
        p.close()

        corrected = {c["segment_id"]: c for c in _wait_for(kafka, "transcripts-corrected", N)}
        assert len(corrected) == N
        for hyp, _ in pairs:
            text, reps = matcher.apply(hyp["text"])
            assert corrected[hyp["segment_id"]]["text"] == text
            assert corrected[hyp["segment_id"]]["original_text"] == hyp["text"]
            assert len(corrected[hyp["segment_id"]]["replacements"]) == len(reps)

        updates = _wait_for(kafka, "transcript-wer", N)
        assert len(updates) == N
        for stream in {h["stream_id"] for h, _ in pairs}:
            mine = [(h, r) for h, r in pairs if h["stream_id"] == stream]
            offline = score_lines([r["text"] for _, r in mine],
                                  [corrected[h["segment_id"]]["text"] for h, _ in mine])
            original = score_lines([r["text"] for _, r in mine], [h["text"] for h, _ in mine])
            last = max((u for u in updates if u["stream_id"] == stream),
                       key=lambda u: u["segments_total"])
            assert last["segments_total"] == len(mine)
            assert last["wer"] == pytest.approx(offline.wer)
            assert last["wer_total"] == pytest.approx(offline.wer)
            assert last["wer_original"] == pytest.approx(original.wer)
            assert last["wer"] < last["wer_original"]

        letters = [json.loads(r.value) for r in read_all(kafka, kafka.topic("dead-letters"))]
        assert len(letters) == 1 and "stream_id" in letters[0]["error"]

        # The vocabulary changes while the job runs: the next segments use the new one.
        shutil.copy(EXAMPLE / "vocab.tsv", vocab)
        time.sleep(4)
        late = {"segment_id": "late-1", "stream_id": "stream-9", "speaker": "host",
                "text": "उसका घर bang lore के पास है", "ts": 1_764_100_000_000}
        _produce(kafka, "transcripts", [late])
        after = {c["segment_id"]: c for c in _wait_for(kafka, "transcripts-corrected", N + 1)}
        assert after["late-1"]["text"] == "उसका घर Bengaluru के पास है"
    finally:
        flink_rest.cancel(job_id)
