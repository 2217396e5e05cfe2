"""lake_ingest on the standalone Flink cluster, submitted with `flink run`, on real Kafka."""

from __future__ import annotations

import json
import time

import pytest
from conftest import wait_for_count

from connectors import flink_rest
from connectors.kafka_admin import create_topics, producer, read_all
from connectors.lake import read_raw
from core.settings import KafkaSettings
from onair.sim.sample_events import behavior_events, malformed_values, show_events
from onair.submit import submit

N_BEHAVIOR, N_SHOW, M_BAD = 3000, 300, 40


def _produce(kafka: KafkaSettings) -> None:
    p = producer(kafka)
    for e in behavior_events(N_BEHAVIOR):
        p.send(kafka.topic("behavior-events"), json.dumps(e).encode(), key=e["user_id"].encode())
    for e in show_events(N_SHOW):
        p.send(kafka.topic("show-events"), json.dumps(e).encode(), key=e["show_id"].encode())
    for i, v in enumerate(malformed_values(M_BAD)):
        topic = "behavior-events" if i % 2 else "show-events"
        p.send(kafka.topic(topic), v)
    p.flush()
    p.close()


@pytest.mark.integration
def test_streaming_lake_ingest_exactly_once_with_dead_letters(services, topic_prefix, tmp_path):
    kafka = KafkaSettings.from_env()
    create_topics(kafka)
    lake = (tmp_path / "lake").as_uri()
    job_id = submit("lake_ingest", ["--lake", lake, "--rollover-s", "2",
                                    "--checkpoint-interval-ms", "2000"])
    try:
        assert flink_rest.wait_for_state(job_id, {"RUNNING"}, 120) == "RUNNING"
        assert any(j["jid"] == job_id for j in flink_rest.jobs_overview())
        _produce(kafka)
        wait_for_count(lambda: list(read_raw(lake, "behavior_events")), N_BEHAVIOR, 180)
        wait_for_count(lambda: list(read_raw(lake, "show_events")), N_SHOW, 60)
        # A few more checkpoints: anything duplicated or late would show up now.
        time.sleep(6)
        behavior = list(read_raw(lake, "behavior_events"))
        shows = list(read_raw(lake, "show_events"))
    finally:
        flink_rest.cancel(job_id)

    expected_b = {e["event_id"]: e for e in behavior_events(N_BEHAVIOR)}
    assert len(behavior) == N_BEHAVIOR
    assert {r["event_id"] for r in behavior} == set(expected_b)
    assert len(shows) == N_SHOW
    for row in behavior[:200]:
        e = expected_b[row["event_id"]]
        assert (row["ts"], row["user_id"], row["event_type"]) == (e["ts"], e["user_id"],
                                                                   e["event_type"])

    letters = [json.loads(r.value) for r in read_all(kafka, kafka.topic("dead-letters"))]
    assert len(letters) == M_BAD
    assert all(letter["error"] and letter["source_topic"].startswith(topic_prefix)
               for letter in letters)
    assert len({letter["dead_letter_id"] for letter in letters}) == M_BAD


@pytest.mark.integration
def test_bounded_lake_ingest_reads_to_the_true_end_and_finishes(services, topic_prefix,
                                                                tmp_path):
    kafka = KafkaSettings.from_env()
    create_topics(kafka)
    _produce(kafka)
    lake = (tmp_path / "lake").as_uri()
    job_id = submit("lake_ingest", ["--lake", lake, "--bounded"])
    assert flink_rest.wait_for_state(job_id, {"FINISHED"}, 240) == "FINISHED"
    assert len(list(read_raw(lake, "behavior_events"))) == N_BEHAVIOR
    assert len(list(read_raw(lake, "show_events"))) == N_SHOW
