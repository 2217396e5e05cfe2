"""Benchmark: compute_features (Kafka -> Flink -> Redis) against a per-event baseline.

1. Throughput: a pre-loaded log of N events; the job runs from the start of the topics; time
   from its first Redis write until the end-of-log markers are applied. Baseline, same log: a
   kafka-python loop doing one Redis update per event (the "stateless function per event").
2. Reflection time at a fixed offered load (5,000 events/s, event time = send time): probe
   likes on a few shows, a poller reads their ``_event_ts`` every 2 ms; reflection = when the
   value appeared minus the event time.
3. Reads: the feature matrix of 1,000 shows (``read_shows``), one round trip each, with the
   job stopped (a serving read against a store nobody else is loading).

Prints one JSON line. Run: ``./dev bench features [--events 200000] [--python-mode thread]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shlex
import threading
import time
import uuid

import numpy as np
from kafka import TopicPartition

from connectors import flink_rest
from connectors.feature_store import RedisFeatureStore
from connectors.kafka_admin import consumer, create_topics, partitions_of, producer
from core.settings import KafkaSettings
from onair.sim.sample_features import feature_log
from onair.stack import Stack
from onair.submit import submit

PROBES = 20


def preload(kafka: KafkaSettings, log) -> None:
    p = producer(kafka, linger_ms=50, batch_size=512 * 1024)
    for topic, event in log:
        key = event.get("user_id") or event["show_id"]
        p.send(kafka.topic(topic), json.dumps(event).encode(), key=key.encode())
    p.flush()
    p.close()


def markers(kafka: KafkaSettings, tag: str) -> int:
    """One like per behaviour partition on show ``tag``; returns how many were sent."""
    p = producer(kafka)
    parts = partitions_of(kafka, kafka.topic("behavior-events"))
    for part in parts:
        event = {"event_id": f"{tag}-{part}", "event_type": "like", "ts": int(time.time() * 1000),
                 "user_id": f"{tag}-{part}", "show_id": tag}
        p.send(kafka.topic("behavior-events"), json.dumps(event).encode(), partition=part)
    p.flush()
    p.close()
    return len(parts)


def wait_seq(store: RedisFeatureStore, show: str, n: int, timeout_s: float = 1800) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if int(store.read("show", show).get("_seq", 0)) >= n:
            return time.monotonic()
        time.sleep(0.05)
    raise TimeoutError(f"markers on {show} not applied in {timeout_s}s")


def baseline(kafka: KafkaSettings, store: RedisFeatureStore, n_events: int) -> float:
    """kafka-python loop, one Redis command per event; events/s."""
    client = store.client
    c = consumer(kafka, max_poll_records=2000)
    parts = [TopicPartition(kafka.topic(t), p) for t in ("behavior-events", "show-events")
             for p in partitions_of(kafka, kafka.topic(t))]
    c.assign(parts)
    c.seek_to_beginning(*parts)
    prefix = f"{store.settings.key_prefix}-baseline"
    done, t0 = 0, time.monotonic()
    while done < n_events:
        for records in c.poll(timeout_ms=1000).values():
            for r in records:
                e = json.loads(r.value)
                kind = e["event_type"]
                if "show_id" in e:
                    client.hincrby(f"{prefix}:show:{e['show_id']}", f"{kind}_count", 1)
                else:
                    client.hincrby(f"{prefix}:creator:{e['creator_id']}", f"{kind}_count", 1)
                done += 1
    c.close()
    return done / (time.monotonic() - t0)


def reflection(kafka: KafkaSettings, store: RedisFeatureStore, rate: int, seconds: int):
    """Offered load ``rate`` events/s for ``seconds``; reflection times of probe events (ms)."""
    seen: dict[int, float] = {}
    stop = threading.Event()

    def poll() -> None:
        client = store.client
        keys = [store.key("show", f"probe-{i}") for i in range(PROBES)]
        while not stop.is_set():
            pipe = client.pipeline(transaction=False)
            for k in keys:
                pipe.hget(k, "_event_ts")
            now = time.time() * 1000
            for v in pipe.execute():
                if v is not None and int(v) not in seen:
                    seen[int(v)] = now
            time.sleep(0.002)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    p = producer(kafka, linger_ms=2)
    sent_probes = []
    t0 = time.monotonic()
    for i in range(rate * seconds):
        due = t0 + i / rate
        while time.monotonic() < due:
            time.sleep(0.0005)
        ts = int(time.time() * 1000)
        if i % (rate // 100) == 0:  # 100 probes per second
            show = f"probe-{len(sent_probes) % PROBES}"
            sent_probes.append(ts)
        else:
            show = f"load-{i % 500}"
        event = {"event_id": f"r{i}", "event_type": "like", "ts": ts, "user_id": f"u{i}",
                 "show_id": show}
        p.send(kafka.topic("behavior-events"), json.dumps(event).encode(),
               key=event["user_id"].encode())
    p.flush()
    offered = rate * seconds / (time.monotonic() - t0)
    time.sleep(3)
    stop.set()
    poller.join()
    lat = [seen[ts] - ts for ts in sent_probes if ts in seen]
    return np.array(lat), offered, len(sent_probes)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--parallelism", type=int, default=2)
    parser.add_argument("--python-mode", default="thread", choices=("thread", "process"))
    parser.add_argument("--bundle-size", type=int, default=None,
                        help="Python bundle size (default: the job's own)")
    parser.add_argument("--rate", type=int, default=5000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--job-args", default="",
                        help="more compute_features flags, e.g. '--bundle-time-ms 100'")
    args = parser.parse_args()

    Stack.default().up(lambda _m: None)
    os.environ["ONAIR_TOPIC_PREFIX"] = f"bench{uuid.uuid4().hex[:6]}."
    os.environ["ONAIR_REDIS_PREFIX"] = f"bench{uuid.uuid4().hex[:6]}"
    kafka = KafkaSettings.from_env()
    create_topics(kafka)
    store = RedisFeatureStore()
    log = feature_log(args.events)
    n_events = len(log)
    preload(kafka, log)
    n_markers = markers(kafka, "end-a")

    base_eps = baseline(kafka, store, n_events)

    job = submit("compute_features", ["--parallelism", str(args.parallelism),
                                      "--python-mode", args.python_mode,
                                      *(["--bundle-size", str(args.bundle_size)]
                                        if args.bundle_size else []),
                                      "--out-of-order-ms", "5000", "--idle-s", "5",
                                      *shlex.split(args.job_args)])
    try:
        flink_rest.wait_for_state(job, {"RUNNING"}, 120)
        first_key = f"{store.key('show', '')}*"
        while not store.client.keys(first_key):
            time.sleep(0.05)
        t0 = time.monotonic()
        t1 = wait_seq(store, "end-a", n_markers)
        eps = (n_events + n_markers) / (t1 - t0)
        lat, offered, probes = reflection(kafka, store, args.rate, args.seconds)
    finally:
        flink_rest.cancel(job)
    # Reads of a quiet store: before this wait they overlapped the cancelled job's teardown
    # (its Python workers and state disposal on the same 2 cores), p99 5.7-17.9 ms.
    flink_rest.wait_for_state(job, {"CANCELED"}, 60)
    time.sleep(2)

    ids = [f"s{i}" for i in range(60)] + [f"missing-{i}" for i in range(940)]
    reads = []
    # As a serving process would (rank_shows' worker does the same after open): the log and
    # the baseline's objects are long-lived, and a full collection over them inside a timed
    # read would be this process's pause, not the store's latency.
    del log
    gc.collect()
    gc.freeze()
    for _ in range(1000):
        t = time.perf_counter()
        store.read_shows(ids)
        reads.append((time.perf_counter() - t) * 1000)
    reads = np.array(reads[20:])
    print(json.dumps({
        "bench": "features", "events": n_events, "parallelism": args.parallelism,
        "python_mode": args.python_mode, "bundle_size": args.bundle_size,
        "job_args": args.job_args,
        "events_per_s": round(eps), "baseline_events_per_s": round(base_eps),
        "ratio": round(eps / base_eps, 2),
        "offered_events_per_s": round(offered), "reflection_probes": probes,
        "reflection_seen": int(lat.size),
        "reflection_p50_ms": round(float(np.percentile(lat, 50)), 1) if lat.size else None,
        "reflection_p99_ms": round(float(np.percentile(lat, 99)), 1) if lat.size else None,
        "read_1000_p50_ms": round(float(np.percentile(reads, 50)), 2),
        "read_1000_p99_ms": round(float(np.percentile(reads, 99)), 2),
    }))


if __name__ == "__main__":
    main()
