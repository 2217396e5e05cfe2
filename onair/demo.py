"""The end-to-end demo on the embedded stack (``./dev demo`` / ``onair demo``).

Starts what is not running, creates the topics, submits ``lake_ingest`` to the standalone
Flink cluster with ``flink run``, produces sample events (some of them malformed), and shows
what came out: the lake's raw-zone files and the dead letters with their reasons.
"""

from __future__ import annotations

import json
import time

from connectors import flink_rest
from connectors.kafka_admin import create_topics, producer, read_all
from connectors.lake import data_files, local_path, read_raw
from connectors.settings import KafkaSettings, lake_root
from onair.cli import submit
from onair.sample_events import behavior_events, malformed_values, show_events
from onair.stack import Stack

N_BEHAVIOR, N_SHOW, M_BAD = 5000, 500, 12


def _step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def run_demo(keep: bool = False) -> int:
    _step("1. embedded stack: Kafka (Tansu), Redis (Valkey), Flink 2.0 standalone")
    stack = Stack.default()
    stack.up()
    kafka = KafkaSettings.from_env()
    create_topics(kafka)
    lake = lake_root()
    # Each run produces events with its own ids; the job's consumer group carries on from the
    # offsets committed by the previous run's last checkpoint, so nothing is ingested twice.
    seed = int(time.time()) % 1_000_000

    _step("2. submit lake_ingest to the cluster with `flink run`")
    job_id = submit("lake_ingest", ["--rollover-s", "5", "--checkpoint-interval-ms", "3000"])
    flink_rest.wait_for_state(job_id, {"RUNNING"}, 120)
    print(f"job {job_id} is RUNNING (see {stack.status()['flink']['endpoint']}/#/overview)")

    _step(f"3. produce {N_BEHAVIOR} behaviour + {N_SHOW} show events and {M_BAD} malformed ones")
    dead_before = len(read_all(kafka, kafka.topic("dead-letters"), idle_ms=1000))
    p = producer(kafka)
    for e in behavior_events(N_BEHAVIOR, seed=seed):
        p.send(kafka.topic("behavior-events"), json.dumps(e).encode(), key=e["user_id"].encode())
    for e in show_events(N_SHOW, seed=seed):
        p.send(kafka.topic("show-events"), json.dumps(e).encode(), key=e["show_id"].encode())
    for v in malformed_values(M_BAD):
        p.send(kafka.topic("behavior-events"), v)
    p.flush()
    p.close()

    _step("4. wait for the raw zone (files are committed on checkpoints)")
    want = {"behavior_events": N_BEHAVIOR, "show_events": N_SHOW}
    prefix = {"behavior_events": f"b-{seed}-", "show_events": f"s-{seed}-"}

    def this_run(table: str) -> int:
        return sum(r["event_id"].startswith(prefix[table]) for r in read_raw(lake, table))

    deadline = time.monotonic() + 180
    counts = dict.fromkeys(want, 0)
    while time.monotonic() < deadline:
        counts = {t: this_run(t) for t in want}
        if all(counts[t] >= want[t] for t in want):
            break
        time.sleep(1)
    time.sleep(4)  # one more checkpoint: a duplicate would show up now
    counts = {t: this_run(t) for t in want}
    for t in want:
        print(f"raw/{t}: {counts[t]} rows of this run (expected {want[t]})")
    files = data_files(local_path(lake) / "raw")
    for f in files[:8]:
        print(f"  {f.relative_to(local_path(lake))}")
    print(f"  ... {len(files)} committed files under {lake}/raw")

    _step("5. dead letters (each with its reason)")
    letters = [json.loads(r.value) for r in read_all(kafka, kafka.topic("dead-letters"))]
    for letter in letters[dead_before:dead_before + 6]:
        print(f"  {letter['dead_letter_id']}: {letter['error']}")
    print(f"  {len(letters) - dead_before} new dead letters (expected {M_BAD})")

    _step("6. the job in Flink's REST API (/jobs/overview)")
    for j in flink_rest.jobs_overview():
        if j["jid"] == job_id:
            print(f"  {j['name']} {j['jid']} {j['state']}")
    if keep:
        print("\nleaving the job running; stop everything with `.venv/bin/onair down`")
    else:
        flink_rest.cancel(job_id)
        print("\njob cancelled; the stack stays up (`.venv/bin/onair down` stops it)")
    ok = all(counts[t] == want[t] for t in want) and len(letters) - dead_before == M_BAD
    print("\nDEMO OK" if ok else "\nDEMO INCOMPLETE: see the counts above")
    return 0 if ok else 1
