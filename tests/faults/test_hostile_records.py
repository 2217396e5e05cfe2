"""Each streaming job fed ``onair.sim.sample_hostile``'s records mixed into a normal log: the job
stays RUNNING with zero restarts, every rejected record is in ``dead-letters`` with its
reason, and every other record's effect equals the plain-Python reference (the accepted
hostile records included, as validation hands them on: stripped to their schema)."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from feature_checks import JOB_ARGS, end_log, produce_log, wait_until_redis_matches
from injection import (  # noqa: F401  (alarm_model is a fixture)
    alarm_model,
    record,
    send_live_shows,
    wait_until,
)

from connectors import flink_rest
from connectors.feature_store import RedisFeatureStore
from connectors.kafka_admin import create_topics, producer, read_all
from connectors.lake import read_raw
from core.settings import KafkaSettings
from core.topics import TOPICS
from models.validation import parse
from onair.sim.sample_events import behavior_events
from onair.sim.sample_features import feature_log
from onair.sim.sample_hostile import (
    HostileCase,
    audio_cases,
    behavior_cases,
    request_cases,
    show_cases,
    transcript_cases,
)
from onair.submit import submit

pytestmark = pytest.mark.faults


def _send(kafka: KafkaSettings, cases: list[HostileCase]) -> None:
    p = producer(kafka)
    for c in cases:
        p.send(kafka.topic(c.topic), c.value, key=c.key.encode())
    p.flush()
    p.close()


def _accepted(cases: list[HostileCase]) -> list[tuple[str, dict]]:
    return [(c.topic, parse(c.value, TOPICS[c.topic].schema)) for c in cases
            if c.rejected is None]


def _check_letters(kafka: KafkaSettings, cases: list[HostileCase], job: str,
                   extra: int = 0) -> list[dict]:
    """Every rejected case in dead-letters with its reason (matched by the raw value)."""
    rejected = [c for c in cases if c.rejected is not None]
    letters = wait_until(lambda: (got := [json.loads(r.value) for r in
                                          read_all(kafka, kafka.topic("dead-letters"), 2000)])
                         and len(got) >= len(rejected) + extra and got,
                         120, "every hostile record's dead letter")
    for c in rejected:
        preview = c.value[:200].decode("utf-8", errors="ignore")
        mine = [x for x in letters if x["raw"].startswith(preview[:100])]
        assert mine, f"{c.name}: no dead letter"
        assert any(c.rejected in x["error"] for x in mine), (c.name, [x["error"] for x in mine])
    assert all(x["job"] == job for x in letters)
    return letters


def _assert_healthy(job_id: str, job: str, cases: list[HostileCase]) -> None:
    assert flink_rest.job_state(job_id) == "RUNNING"
    time.sleep(2)   # the REST metrics are at most a second old
    restarts = flink_rest.restarts(job_id)
    assert restarts == 0, flink_rest.exceptions(job_id)[:1]
    record(job, "hostile records", cases=len(cases),
           rejected=sum(c.rejected is not None for c in cases), restarts=restarts)


def test_compute_features_hostile_records(services, topic_prefix, monkeypatch):
    monkeypatch.setenv("ONAIR_REDIS_PREFIX", f"hostile{uuid.uuid4().hex[:8]}")
    kafka = KafkaSettings.from_env()
    create_topics(kafka)
    store = RedisFeatureStore()
    cases = behavior_cases() + show_cases()
    log = feature_log(6000, seed=41)
    produce_log(kafka, log[:3000])
    _send(kafka, cases)
    produce_log(kafka, log[3000:])
    expected = end_log(kafka, log + _accepted(cases))
    job_id = submit("compute_features", [*JOB_ARGS, "--checkpoint-interval-ms", "2000"])
    try:
        assert flink_rest.wait_for_state(job_id, {"RUNNING"}, 120) == "RUNNING"
        wait_until_redis_matches(store, expected)
        _check_letters(kafka, cases, "compute_features")
        _assert_healthy(job_id, "compute_features", cases)
    finally:
        flink_rest.cancel(job_id)


def test_lake_ingest_hostile_records(services, topic_prefix, tmp_path):
    kafka = KafkaSettings.from_env()
    create_topics(kafka)
    cases = behavior_cases() + show_cases()
    events = list(behavior_events(2000, seed=43))
    lake = (tmp_path / "lake").as_uri()
    job_id = submit("lake_ingest", ["--lake", lake, "--rollover-s", "2",
                                    "--checkpoint-interval-ms", "2000"])
    try:
        assert flink_rest.wait_for_state(job_id, {"RUNNING"}, 120) == "RUNNING"
        p = producer(kafka)
        for e in events[:1000]:
            p.send(kafka.topic("behavior-events"), json.dumps(e).encode(),
                   key=e["user_id"].encode())
        p.flush()
        _send(kafka, cases)
        for e in events[1000:]:
            p.send(kafka.topic("behavior-events"), json.dumps(e).encode(),
                   key=e["user_id"].encode())
        p.flush()
        p.close()
        accepted = _accepted(cases)
        want_b = {e["event_id"]: e for e in events} | {
            m["event_id"]: m for t, m in accepted if t == "behavior-events"}
        want_s = {m["event_id"]: m for t, m in accepted if t == "show-events"}
        rows = wait_until(lambda: (r := list(read_raw(lake, "behavior_events")))
                          and len(r) >= len(want_b) and r, 180, "every event in the lake")
        shows = wait_until(lambda: (r := list(read_raw(lake, "show_events")))
                           and len(r) >= len(want_s) and r, 60, "the show events")
        _check_letters(kafka, cases, "lake_ingest")
        _assert_healthy(job_id, "lake_ingest", cases)
    finally:
        flink_rest.cancel(job_id)
    assert sorted(r["event_id"] for r in rows) == sorted(want_b)
    assert sorted(r["event_id"] for r in shows) == sorted(want_s)
    for r in rows:
        m = want_b[r["event_id"]]
        assert (r["user_id"], r["ts"], r.get("show_id")) == (m["user_id"], m["ts"],
                                                             m.get("show_id"))


def test_rank_shows_hostile_records(services, topic_prefix, monkeypatch):
    monkeypatch.setenv("ONAIR_REDIS_PREFIX", f"hostile{uuid.uuid4().hex[:8]}")
    kafka = KafkaSettings.from_env()
    create_topics(kafka)
    cases = request_cases()
    t0 = int(time.time() * 1000)
    send_live_shows(kafka, 30, t0)
    p = producer(kafka)
    normal = [{"request_id": f"n{i}", "user_id": f"u{i}", "ts": t0 + i} for i in range(200)]
    job_id = submit("rank_shows", ["--checkpoint-interval-ms", "2000"])
    try:
        assert flink_rest.wait_for_state(job_id, {"RUNNING"}, 120) == "RUNNING"
        _wait_for_catalog(kafka, p, t0)
        for r in normal[:100]:
            p.send(kafka.topic("rec-requests"), json.dumps(r).encode(), key=r["user_id"].encode())
        p.flush()
        _send(kafka, cases)
        for r in normal[100:]:
            p.send(kafka.topic("rec-requests"), json.dumps(r).encode(), key=r["user_id"].encode())
        p.flush()
        p.close()
        accepted = [m for _, m in _accepted(cases)]
        want = {r["request_id"] for r in normal + accepted}
        out = wait_until(lambda: (got := [json.loads(r.value) for r in
                                          read_all(kafka, kafka.topic("rec-rankings"), 2000)])
                         and {x["request_id"] for x in got} >= want and got,
                         120, "every valid request answered")
        _check_letters(kafka, cases, "rank_shows")
        _assert_healthy(job_id, "rank_shows", cases)
    finally:
        flink_rest.cancel(job_id)
    answered = {x["request_id"]: x for x in out if not x["request_id"].startswith("probe")}
    assert set(answered) == want   # no hostile request answered, every valid one is
    for r in normal:
        items = answered[r["request_id"]]["items"]
        assert len(items) == 10 and {i["show_id"] for i in items} <= {f"s{i}" for i in range(30)}
    # The request holding the most candidates is ranked among its own candidates.
    most = answered["hr-10"]["items"]
    assert len(most) == 10 and all(i["show_id"].startswith("hs-") for i in most)


def _wait_for_catalog(kafka: KafkaSettings, p, t0: int) -> None:
    """Probe requests until one is ranked over the catalog: the job reads show-events and
    requests side by side, so requests can overtake the catalog at its start."""
    def ranked() -> bool:
        i = int(time.time() * 1000)
        probe = {"request_id": f"probe{i}", "user_id": "probe", "ts": t0}
        p.send(kafka.topic("rec-requests"), json.dumps(probe).encode(), key=b"probe")
        p.flush()
        time.sleep(1)
        return any(json.loads(r.value)["items"] for r in
                   read_all(kafka, kafka.topic("rec-rankings"), 500)
                   if json.loads(r.value)["request_id"].startswith("probe"))

    wait_until(ranked, 120, "the catalog in rank_shows")


def test_correct_transcripts_hostile_records(services, topic_prefix):
    from models.transcripts.vocabulary import load_vocabulary
    from models.transcripts.vocabulary_match import VocabularyMatcher
    from onair.sim.sample_transcripts import EXAMPLE, segments

    kafka = KafkaSettings.from_env()
    create_topics(kafka)
    cases = transcript_cases()
    pairs = segments(200)
    vocab = EXAMPLE / "vocab.tsv"
    job_id = submit("correct_transcripts", ["--vocab", str(vocab),
                                            "--checkpoint-interval-ms", "2000"])
    try:
        assert flink_rest.wait_for_state(job_id, {"RUNNING"}, 120) == "RUNNING"
        p = producer(kafka)
        for h, r in pairs[:100]:
            p.send(kafka.topic("transcripts"), json.dumps(h).encode(), key=h["stream_id"].encode())
            p.send(kafka.topic("transcript-references"), json.dumps(r).encode(),
                   key=r["stream_id"].encode())
        p.flush()
        _send(kafka, cases)
        for h, r in pairs[100:]:
            p.send(kafka.topic("transcripts"), json.dumps(h).encode(), key=h["stream_id"].encode())
            p.send(kafka.topic("transcript-references"), json.dumps(r).encode(),
                   key=r["stream_id"].encode())
        p.flush()
        p.close()
        accepted = [m for _, m in _accepted(cases)]
        want = [h for h, _ in pairs] + accepted
        out = wait_until(lambda: (got := [json.loads(r.value) for r in read_all(
            kafka, kafka.topic("transcripts-corrected"), 2000)]) and len(got) >= len(want)
            and got, 180, "every valid segment corrected")
        _check_letters(kafka, cases, "correct_transcripts")
        _assert_healthy(job_id, "correct_transcripts", cases)
    finally:
        flink_rest.cancel(job_id)
    matcher = VocabularyMatcher(load_vocabulary(vocab))
    got = {x["segment_id"]: x for x in out}
    assert len(got) == len(out) == len(want)
    for m in want:
        assert got[m["segment_id"]]["text"] == matcher.apply(m["text"])[0]


def test_detect_alarms_hostile_records(services, topic_prefix, alarm_model):  # noqa: F811
    from models.alarms.pcm import chunk_messages

    _, name, streams = alarm_model
    kafka = KafkaSettings.from_env()
    create_topics(kafka)
    cases = audio_cases()
    job_id = submit("detect_alarms", ["--model", name, "--checkpoint-interval-ms", "2000"])
    try:
        assert flink_rest.wait_for_state(job_id, {"RUNNING"}, 120) == "RUNNING"
        _send(kafka, cases)
        # A producer that renumbers its stream from 0 halfway through: the alarm after the
        # restart must still be heard (not dropped as duplicates).
        x = streams["a2"]
        t0 = 1_800_000_000_000
        chunks = list(chunk_messages(x, 16_000, "renumbered", t0, 100))
        half = len(chunks) // 4
        for i, c in enumerate(chunks[half:]):
            c["seq"] = i
        p = producer(kafka)
        for c in chunks:
            p.send(kafka.topic("audio-chunks"), json.dumps(c).encode(), key=b"renumbered")
        p.flush()
        p.close()
        alerts = wait_until(lambda: [json.loads(r.value) for r in
                                     read_all(kafka, kafka.topic("alarm-alerts"), 1000)],
                            120, "the renumbered stream's alarm")
        _check_letters(kafka, cases, "detect_alarms")
        _assert_healthy(job_id, "detect_alarms", cases)
    finally:
        flink_rest.cancel(job_id)
    assert {a["stream_id"] for a in alerts} == {"renumbered"}
