"""Benchmark: events/s through lake_ingest on the standalone cluster.

Submits lake_ingest (streaming) on a fresh topic namespace, produces N events as fast as
kafka-python can, and times from the first produce until every event is committed in the raw
zone. Prints one JSON line. Run: ``./dev bench lake_ingest [--events 200000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from pathlib import Path

from connectors import flink_rest
from connectors.kafka_admin import create_topics, producer
from connectors.lake import count_raw_rows
from core.settings import KafkaSettings
from onair.sim.sample_events import behavior_events, show_events
from onair.stack import Stack
from onair.submit import submit


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--parallelism", type=int, default=2)
    parser.add_argument("--python-mode", default="process", choices=("thread", "process"))
    args = parser.parse_args()

    Stack.default().up(lambda _m: None)
    os.environ["ONAIR_TOPIC_PREFIX"] = f"bench{uuid.uuid4().hex[:6]}."
    kafka = KafkaSettings.from_env()
    create_topics(kafka)
    lake = Path(tempfile.mkdtemp(prefix="onair-bench-lake-")).as_uri()
    n_show = args.events // 10
    n_behavior = args.events - n_show
    payloads = [(kafka.topic("behavior-events"), json.dumps(e).encode())
                for e in behavior_events(n_behavior)]
    payloads += [(kafka.topic("show-events"), json.dumps(e).encode()) for e in show_events(n_show)]

    job_id = submit("lake_ingest", ["--lake", lake, "--rollover-s", "2",
                                    "--checkpoint-interval-ms", "2000",
                                    "--parallelism", str(args.parallelism),
                                    "--python-mode", args.python_mode])
    flink_rest.wait_for_state(job_id, {"RUNNING"}, 120)
    time.sleep(3)  # let the sources get their partitions
    p = producer(kafka, linger_ms=20, batch_size=256 * 1024)
    t0 = time.monotonic()
    for topic, value in payloads:
        p.send(topic, value)
    p.flush()
    produce_s = time.monotonic() - t0
    seen = 0
    deadline = t0 + 1800
    while time.monotonic() < deadline:
        seen = sum(count_raw_rows(lake, t) for t in ("behavior_events", "show_events"))
        if seen >= args.events:
            break
        time.sleep(0.5)
    elapsed = time.monotonic() - t0
    flink_rest.cancel(job_id)
    print(json.dumps({
        "bench": "lake_ingest", "events": args.events, "events_in_lake": seen,
        "events_per_s": round(seen / elapsed), "elapsed_s": round(elapsed, 1),
        "produce_events_per_s": round(args.events / produce_s),
        "parallelism": args.parallelism, "python_mode": args.python_mode,
    }))


if __name__ == "__main__":
    main()
