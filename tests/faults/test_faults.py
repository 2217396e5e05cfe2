"""Every streaming job through real faults on the embedded stack, its outputs afterwards
compared with the plain-Python reference: a TaskManager killed with SIGKILL mid-stream, Redis
frozen (SIGSTOP) for 30 s, Redis killed and started again.

Input is produced at a steady rate by a background thread while the faults happen, so each
fault lands mid-stream. Recovery time is the time from the fault (for Redis, from its end)
to the first output the job made after it. Exactly-once sinks (Kafka transactions read
committed, the lake's files) must hold every record once; at-least-once sinks (alerts,
rankings) every record, duplicates only under the same stable id; Redis every feature equal
to the reference.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter

import pytest
from feature_checks import JOB_ARGS, end_log, wait_until_redis_matches
from injection import (  # noqa: F401  (alarm_model is a fixture)
    alarm_model,
    freeze_redis,
    kill_taskmanager,
    record,
    restart_redis,
    send_live_shows,
    stack,
    wait_until,
)

from connectors import flink_rest
from connectors.feature_store import RedisFeatureStore
from connectors.kafka_admin import create_topics, producer, read_all
from connectors.kafka_committed import CommittedReader
from connectors.lake import read_raw
from core.settings import KafkaSettings
from core.topics import TOPICS
from models.validation import parse
from onair.sim.sample_events import behavior_events
from onair.sim.sample_features import feature_log
from onair.sim.sample_hostile import behavior_cases, show_cases
from onair.submit import submit

pytestmark = pytest.mark.faults


class SteadyProducer(threading.Thread):
    """Sends ``records`` (topic, key, value) at ``per_s`` records a second, in the
    background; ``sent_at`` is when each went out."""

    def __init__(self, kafka: KafkaSettings, records: list[tuple[str, str, bytes]],
                 per_s: float, stamp: str | None = None):
        super().__init__(daemon=True)
        self.kafka, self.records, self.per_s = kafka, records, per_s
        self.stamp = stamp   # a field set to the wall-clock ms at sending
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            p = producer(self.kafka, linger_ms=20)
            started = time.monotonic()
            for i, (topic, key, value) in enumerate(self.records):
                ahead = started + i / self.per_s - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
                if self.stamp:
                    value = json.dumps(json.loads(value) | {self.stamp: int(time.time() * 1000)}
                                       ).encode()
                p.send(self.kafka.topic(topic), value, key=key.encode())
                self.sent = i + 1
            p.flush()
            p.close()
        except BaseException as e:   # surfaced by finish()
            self.error = e

    def finish(self, timeout_s: float = 600) -> None:
        self.join(timeout_s)
        assert not self.is_alive(), "the producer did not finish"
        if self.error:
            raise self.error


class TopicTail:
    """Every committed record of a topic so far, read incrementally (``read_all`` waits for
    the topic to go quiet, which a topic fed all along never does)."""

    def __init__(self, kafka: KafkaSettings, topic: str):
        self.reader = CommittedReader(kafka, topic)
        self.records: list = []

    def read(self) -> list:
        """What arrived since the last read (a bounded number of fetches: a topic written all
        along would keep an until-empty loop going)."""
        for _ in range(10):
            got = self.reader.read(max_wait_ms=300)
            if not got:
                break
            self.records.extend(got)
        return self.records

    def close(self) -> None:
        self.reader.close()


def _running(job_id: str) -> None:
    assert flink_rest.wait_for_state(job_id, {"RUNNING"}, 120) == "RUNNING"


def _killed_mid_stream(job_id: str, feed: SteadyProducer, newest_output, what: str) -> float:
    """Start ``feed`` once the job runs, kill a TaskManager of the job once its first output
    is out, let the feed finish; return the recovery time (s)."""
    _running(job_id)
    feed.start()
    wait_until(newest_output, 120, f"the first {what}")
    recovery = _recovered(kill_taskmanager(job_id), newest_output)
    feed.finish()
    return recovery


def _settled(read, n: int, what: str) -> list:
    """``read()`` once it holds ``n`` records, read again a few checkpoints later (a
    duplicate would show by then)."""
    wait_until(lambda: len(read()) >= n, 240, what)
    time.sleep(6)
    return read()


def _exactly_once(job: str, got: list[str], want: set[str], recovery: float,
                  restarts: int, **figures) -> None:
    """An exactly-once sink after a killed TaskManager: every id once, none twice."""
    counts = Counter(got)
    assert set(counts) == want
    duplicates = sum(n - 1 for n in counts.values())
    assert duplicates == 0
    assert restarts >= 1, "the killed TaskManager ran none of the job"
    record(job, "taskmanager SIGKILL", recovery_s=recovery, lost=0, duplicates=duplicates,
           restarts=restarts, **figures)


def _restarts_so_far(job_id: str) -> int:
    time.sleep(1.5)   # the REST metrics are at most a second old
    return flink_rest.restarts(job_id)


def _recovered(since: float, newest_output: callable, timeout_s: float = 180) -> float:
    """Seconds from ``since`` (wall clock) until ``newest_output()`` (the wall-clock time of
    the job's newest output, or None) is later than it."""
    wait_until(lambda: (newest_output() or 0) > since, timeout_s, "output after the fault")
    return round(time.time() - since, 1)


# ---------------------------------------------------------------- compute_features

@pytest.fixture
def kafka_and_store(services, topic_prefix, monkeypatch):
    stack()
    monkeypatch.setenv("ONAIR_REDIS_PREFIX", f"fault{uuid.uuid4().hex[:8]}")
    kafka = KafkaSettings.from_env()
    create_topics(kafka)
    return kafka, RedisFeatureStore()


def _newest_write(store: RedisFeatureStore) -> float | None:
    """Wall-clock time (s) of the newest feature write of the job's shows."""
    keys = list(store.client.scan_iter(match=store.key("show", "*"), count=1000))
    if not keys:
        return None
    pipe = store.client.pipeline(transaction=False)
    for k in keys:
        pipe.hget(k, "_write_ts")
    return max(int(v) for v in pipe.execute() if v) / 1000


def test_compute_features_through_every_fault_equals_the_reference(kafka_and_store):
    kafka, store = kafka_and_store
    log = feature_log(60_000, seed=23)
    records = [(topic, e.get("user_id") or e["show_id"], json.dumps(e).encode())
               for topic, e in log]
    # The hostile records early in the log: the ids of every accepted character class are
    # in the state the killed TaskManager's restore brings back.
    hostile = behavior_cases() + show_cases()
    records[100:100] = [(c.topic, c.key, c.value) for c in hostile]
    log += [(c.topic, parse(c.value, TOPICS[c.topic].schema)) for c in hostile
            if c.rejected is None]
    job_id = submit("compute_features", [*JOB_ARGS, "--checkpoint-interval-ms", "2000"])
    feed = SteadyProducer(kafka, records, per_s=500)
    try:
        _running(job_id)
        feed.start()
        wait_until(lambda: _newest_write(store), 120, "the first features in Redis")
        killed = kill_taskmanager(job_id)
        record("compute_features", "taskmanager SIGKILL",
               recovery_s=_recovered(killed, lambda: _newest_write(store)),
               restarts_so_far=_restarts_so_far(job_id))
        _, thawed = freeze_redis(30)
        record("compute_features", "redis SIGSTOP 30 s",
               recovery_s=_recovered(thawed, lambda: _newest_write(store)),
               restarts_so_far=_restarts_so_far(job_id))
        _, back = restart_redis()
        record("compute_features", "redis SIGKILL + restart",
               recovery_s=_recovered(back, lambda: _newest_write(store)),
               restarts_so_far=_restarts_so_far(job_id))
        feed.finish()
        expected = end_log(kafka, log)
        wait_until_redis_matches(store, expected)
        assert flink_rest.job_state(job_id) == "RUNNING"
        record("compute_features", "all", entities=len(expected), lost=0,
               restarts=flink_rest.restarts(job_id))
    finally:
        flink_rest.cancel(job_id)


# ---------------------------------------------------------------- lake_ingest

def test_lake_ingest_through_a_killed_taskmanager_writes_every_event_once(
        services, topic_prefix, tmp_path):
    stack()
    kafka = KafkaSettings.from_env()
    create_topics(kafka)
    events = list(behavior_events(20_000, seed=31))
    records = [("behavior-events", e["user_id"], json.dumps(e).encode()) for e in events]
    lake = (tmp_path / "lake").as_uri()
    job_id = submit("lake_ingest", ["--lake", lake, "--rollover-s", "2",
                                    "--checkpoint-interval-ms", "2000"])
    feed = SteadyProducer(kafka, records, per_s=500)

    def newest_file() -> float | None:
        files = [p for p in (tmp_path / "lake").rglob("*") if p.is_file()
                 and not p.name.startswith(".")]
        return max((p.stat().st_mtime for p in files), default=None)

    try:
        recovery = _killed_mid_stream(job_id, feed, newest_file, "lake file")
        rows = _settled(lambda: list(read_raw(lake, "behavior_events")), len(events),
                        "every event in the lake")
        restarts = flink_rest.restarts(job_id)
    finally:
        flink_rest.cancel(job_id)
    _exactly_once("lake_ingest", [r["event_id"] for r in rows],
                  {e["event_id"] for e in events}, recovery, restarts)


# ---------------------------------------------------------------- correct_transcripts

def test_correct_transcripts_through_a_killed_taskmanager_corrects_every_segment_once(
        services, topic_prefix, tmp_path):
    from onair.sim.sample_transcripts import EXAMPLE
    from onair.sim.sample_transcripts import segments as sample_segments

    stack()
    kafka = KafkaSettings.from_env()
    create_topics(kafka)
    pairs = sample_segments(3000)
    segments = [h for h, _ in pairs]
    records = [(t, m["stream_id"], json.dumps(m).encode()) for pair in pairs
               for t, m in zip(("transcripts", "transcript-references"), pair, strict=True)]
    job_id = submit("correct_transcripts", ["--vocab", str(EXAMPLE / "vocab.tsv"),
                                            "--checkpoint-interval-ms", "2000"])
    feed = SteadyProducer(kafka, records, per_s=100)
    corrected_topic = kafka.topic("transcripts-corrected")
    tail = TopicTail(kafka, corrected_topic)

    def newest() -> float | None:
        return max((r.timestamp / 1000 for r in tail.read()), default=None)

    try:
        recovery = _killed_mid_stream(job_id, feed, newest, "corrected segment")
        out = _settled(tail.read, len(segments), "every segment corrected")
        restarts = flink_rest.restarts(job_id)
    finally:
        flink_rest.cancel(job_id)
        tail.close()
    # The aborted transaction of the killed sink is in the log, left out by its marker.
    _exactly_once("correct_transcripts", [json.loads(r.value)["segment_id"] for r in out],
                  {s["segment_id"] for s in segments}, recovery, restarts,
                  aborted_left_out=tail.reader.aborted)


# ---------------------------------------------------------------- rank_shows

def test_rank_shows_answers_through_every_fault(services, topic_prefix, monkeypatch):
    stack()
    monkeypatch.setenv("ONAIR_REDIS_PREFIX", f"fault{uuid.uuid4().hex[:8]}")
    kafka = KafkaSettings.from_env()
    create_topics(kafka)
    t0 = int(time.time() * 1000)
    send_live_shows(kafka, 50, t0)
    requests = [{"request_id": f"r{i}", "user_id": f"u{i % 300}", "ts": t0 + i * 10}
                for i in range(12_000)]
    records = [("rec-requests", r["user_id"], json.dumps(r).encode()) for r in requests]
    job_id = submit("rank_shows", ["--checkpoint-interval-ms", "2000"])
    # Each request stamped when sent: a ranking's ts tells when its request went out.
    feed = SteadyProducer(kafka, records, per_s=60, stamp="ts")
    tail = TopicTail(kafka, kafka.topic("rec-rankings"))
    seen: list[dict] = []

    def rankings() -> list[dict]:
        records = tail.read()
        seen.extend(json.loads(r.value) | {"_at": json.loads(r.value)["ts"] / 1000}
                    for r in records[len(seen):])
        return seen

    def newest(degraded: bool | None = None) -> float | None:
        """When the newest answered request was sent (of the given kind)."""
        return max((r["_at"] for r in rankings()
                    if degraded is None or bool(r.get("degraded")) == degraded), default=None)

    try:
        _running(job_id)
        feed.start()
        wait_until(newest, 120, "the first ranking")
        killed = kill_taskmanager(job_id)
        record("rank_shows", "taskmanager SIGKILL", recovery_s=_recovered(killed, newest),
               restarts_so_far=_restarts_so_far(job_id))
        frozen, thawed = freeze_redis(30)
        # Requests sent while Redis was frozen (after the first one, which found it up).
        wait_until(lambda: (newest() or 0) > thawed, 60, "answers after the freeze")
        during = [r for r in rankings() if frozen + 1 < r["_at"] < thawed]
        assert during and any(r.get("degraded") for r in during), \
            "no catalog-only rankings while Redis was frozen"
        record("rank_shows", "redis SIGSTOP 30 s", answered_while_frozen=len(during),
               degraded_while_frozen=sum(bool(r.get("degraded")) for r in during),
               full_again_s=_recovered(thawed, lambda: newest(degraded=False)),
               restarts_so_far=_restarts_so_far(job_id))
        _, back = restart_redis()
        record("rank_shows", "redis SIGKILL + restart",
               full_again_s=_recovered(back, lambda: newest(degraded=False)),
               restarts_so_far=_restarts_so_far(job_id))
        feed.finish()
        wait_until(lambda: {r["request_id"] for r in rankings()} >=
                   {r["request_id"] for r in requests}, 300, "every request answered")
        restarts = flink_rest.restarts(job_id)
    finally:
        flink_rest.cancel(job_id)
        tail.close()
    answers: dict[str, list[dict]] = {}
    for r in seen:
        answers.setdefault(r["request_id"], []).append(r)
    assert set(answers) == {r["request_id"] for r in requests}
    # At-least-once: a repeated answer is the same request's, under its id.
    duplicates = sum(len(a) - 1 for a in answers.values())
    record("rank_shows", "all", requests=len(requests), lost=0,
           duplicates_same_id=duplicates, restarts=restarts)


# ---------------------------------------------------------------- detect_alarms

def test_detect_alarms_through_a_killed_taskmanager_hears_every_alarm(
        services, topic_prefix, alarm_model):  # noqa: F811 (the fixture imported)
    from models.alarms.pcm import chunk_messages, pcm16_round_trip
    from models.alarms.stream import StreamPolicy
    from models.alarms.training import detect_in_samples, feature_spec_of, policy_of
    from models.onnx_export import OnnxScorer
    from models.registry import Registry

    stack()
    mv, name, streams = alarm_model
    kafka = KafkaSettings.from_env()
    create_topics(kafka)
    session, _ = Registry().load_session(name, mv.version)
    m = {k: v for k, v in policy_of(mv).items() if k in ("threshold", "k", "n")}
    # The audio as the job hears it: through the chunks' 16-bit PCM.
    pcm16 = {sid: pcm16_round_trip(x) for sid, x in streams.items()}
    offline = {sid: detect_in_samples(pcm16[sid], feature_spec_of(mv), StreamPolicy(**m),
                                      OnnxScorer(session), mv.labels, "alarm")[0]
               for sid in streams}
    t0 = {sid: 1_800_000_000_000 + i * 7 for i, sid in enumerate(streams)}
    chunks = {sid: list(chunk_messages(x, 16_000, sid, t0[sid], 100))
              for sid, x in streams.items()}
    records = [("audio-chunks", sid, json.dumps(c[i]).encode())
               for i in range(max(len(c) for c in chunks.values()))
               for sid, c in chunks.items() if i < len(c)]
    job_id = submit("detect_alarms", ["--model", name, "--checkpoint-interval-ms", "2000"])
    # Real time: 10 chunks of 100 ms per stream per second.
    feed = SteadyProducer(kafka, records, per_s=10 * len(streams))
    alerts_topic = kafka.topic("alarm-alerts")
    try:
        _running(job_id)
        feed.start()
        time.sleep(4)
        killed = kill_taskmanager(job_id)
        feed.finish()
        expected = sum(len(d) for d in offline.values())
        alerts = wait_until(lambda: (a := [json.loads(r.value) for r in
                                           read_all(kafka, alerts_topic, 1000)])
                            and len({x["alert_id"] for x in a}) >= expected and a,
                            240, "every alarm heard")
        recovery = round(max(a["detected_ts"] for a in alerts) / 1000 - killed, 1)
        restarts = flink_rest.restarts(job_id)
    finally:
        flink_rest.cancel(job_id)
    heard = {(a["stream_id"], a["onset_ts"]) for a in alerts}
    want = {(sid, round(t0[sid] + d.onset_ts)) for sid, ds in offline.items() for d in ds}
    assert heard == want
    by_id = Counter(a["alert_id"] for a in alerts)
    assert len(by_id) == len(want)
    assert restarts >= 1, "the killed TaskManager ran none of the job"
    record("detect_alarms", "taskmanager SIGKILL", last_alert_after_kill_s=recovery, lost=0,
           duplicates_same_id=sum(n - 1 for n in by_id.values()), restarts=restarts)
