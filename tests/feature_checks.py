"""compute_features' log, reference and Redis checks, shared by the integration and fault tests."""

from __future__ import annotations

import json
import time

from connectors.feature_store import RedisFeatureStore, encode_field
from connectors.kafka_admin import partitions_of, producer
from core.settings import KafkaSettings
from models.features.entities import Eviction, FeatureReference
from onair.sim.sample_features import end_of_log

OUT_OF_ORDER_MS = 600_000
# Flags every test runs the job with (a test adds its own).
JOB_ARGS = ["--out-of-order-ms", str(OUT_OF_ORDER_MS), "--parallelism", "2", "--idle-s", "3"]


def produce_log(kafka: KafkaSettings, log) -> None:
    p = producer(kafka, linger_ms=20)
    for topic, event in log:
        key = event.get("user_id") or event["show_id"]
        p.send(kafka.topic(topic), json.dumps(event).encode(), key=key.encode())
    p.flush()
    p.close()


def produce_end_markers(kafka: KafkaSettings, log) -> list[dict]:
    """End-of-log markers on every partition, so every source split's event time moves on."""
    p = producer(kafka)
    sent = []
    for topic, marker in end_of_log(log):
        for part in partitions_of(kafka, kafka.topic(topic)):
            event = {**marker, "event_id": f"{marker['event_id']}-{part}"}
            p.send(kafka.topic(topic), json.dumps(event).encode(), partition=part)
            sent.append(event)
    p.flush()
    p.close()
    return sent


def end_log(kafka: KafkaSettings, log) -> dict[tuple[str, str], dict]:
    """Close the log with end markers; the features Redis must then hold."""
    markers = produce_end_markers(kafka, log)
    return expected_features([e for _, e in log] + markers)


def expected_features(events: list[dict]) -> dict[tuple[str, str], dict]:
    ref = FeatureReference()
    for e in events:
        ref.apply(e)
    final_watermark = max(e["ts"] for e in events) - OUT_OF_ORDER_MS - 1
    # The job's default eviction: ended shows leave state and Redis a day after their end.
    kept = ref.finish(final_watermark, Eviction())
    expected: dict[tuple[str, str], dict | None] = dict.fromkeys(ref.evicted)
    expected.update({k: {f: encode_field(v) for f, v in st.features().items()}
                     | {"_event_ts": str(st.event_ts)} for k, st in kept.items()})
    return expected


def wait_until_redis_matches(store: RedisFeatureStore, expected: dict,
                             timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    wrong = ["not started"]
    while wrong and time.monotonic() < deadline:
        time.sleep(3)
        wrong = redis_matches(store, expected)
    assert not wrong, f"{len(wrong)} entities differ, e.g. {wrong[:3]}"


def redis_matches(store: RedisFeatureStore, expected: dict) -> list[str]:
    pipe = store.client.pipeline(transaction=False)
    keys = list(expected)
    for kind, eid in keys:
        pipe.hgetall(store.key(kind, eid))
    wrong = []
    for key, got in zip(keys, pipe.execute(), strict=True):
        got = {k.decode(): v.decode() for k, v in got.items()}
        if expected[key] is None:   # evicted: gone from the store
            if got:
                wrong.append(f"{key}: evicted, but the store holds {got}")
            continue
        diff = {f: (v, got.get(f)) for f, v in expected[key].items() if got.get(f) != v}
        if diff:
            # The stored version and write time tell a write refused from one never made.
            wrong.append(f"{key}: {diff} stored _seq={got.get('_seq')} "
                         f"_write_ts={got.get('_write_ts')}")
    return wrong
