"""Benchmark: compute_features' state as the population grows, per state backend.

For each population size N (listeners; with N/100 live shows and N/500 creators) and each
state backend, on a freshly started Flink cluster (so resident memory starts level):

1. Load: one listen start per listener (and a follow for 3 in 10), in event-time order, is
   produced before the job starts; events/s = all of them over the time from the job's
   first Redis write until end markers behind them are applied, checkpoints running every
   ``--checkpoint-ms``.
2. Memory: resident set of the TaskManager processes (JVM and, in thread mode, the embedded
   Python; children too) after the load, split into the JVM heap's touched pages and the
   rest (``taskmanager_rss_parts``), and the heap's live objects after a full collection
   (``taskmanager_live_heap``). Per listener, the growth between two sizes of the run divided
   by the listeners added (fixed costs cancel out): ``bytes_per_listener`` of what entities
   hold (outside the heap, plus the heap's live objects), ``rss_bytes_per_listener`` of the
   whole resident set (the heap's touched pages, garbage included, too: the heap is reserved
   whole at start and its pages are touched as collections need them, up to its size).
3. Catch-up: the end markers carry the wall clock, an hour past the load's events, so every
   session the load opened passes 5 minutes at once; ``catch_up_s`` is the time until
   markers sent behind that are applied.
4. Steady load at ``--rate`` events/s for ``--seconds``, from the first checkpoint completed
   after the catch-up on: reflection p99 (event -> Redis, the
   probes of bench_features), the checkpoints taken meanwhile (size and duration, from
   Flink's REST API; ``checkpointed_size`` is what an incremental checkpoint wrote) and the
   Python workers' longest garbage-collection pause of the last minute
   (``python_gc_pause_max_ms``, ``models/heap.py``).
5. Restore: the job is cancelled (its checkpoint retained) and submitted again from it;
   restore time = submission until a probe in every first-stage bucket is in Redis (every
   bucket's state loaded again).
6. Reads: ``read_shows`` of 1,000 of the population's shows, the job stopped.

Prints one JSON line. Run: ``./dev bench state_scale [--sizes 100000,1000000]
[--backends hashmap,rocksdb]``.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from bench_features import markers, reflection, wait_seq
from scale_parts import alarm_streams, plot, ranking_catalogs

from connectors import flink_rest
from connectors.feature_store import RedisFeatureStore
from connectors.kafka_admin import create_topics, producer
from connectors.redis_client import unlink_matching
from core.settings import FlinkSettings, KafkaSettings
from models.features.buckets import bucket_of
from onair.stack import Stack
from onair.submit import submit

BUCKETS = 16     # compute_features' default --buckets
MINUTE = 60_000


def population(kafka: KafkaSettings, listeners: int, t0_ms: int) -> tuple[int, int]:
    """Produce the population's events; returns (events, shows)."""
    shows = max(100, listeners // 100)
    creators = max(20, listeners // 500)
    p = producer(kafka, linger_ms=50, batch_size=512 * 1024)
    show_topic, behavior_topic = kafka.topic("show-events"), kafka.topic("behavior-events")
    for s in range(shows):
        base = f'"show_id": "s{s}", "creator_id": "c{s % creators}", "topic": "t{s % 12}"'
        for i, (kind, ts) in enumerate((("scheduled", t0_ms - 30 * MINUTE), ("live", t0_ms))):
            extra = f', "scheduled_start": {t0_ms}' if kind == "scheduled" else ""
            p.send(show_topic, (f'{{"event_id": "p{s}-{i}", "event_type": "{kind}", '
                                f'"ts": {ts}, {base}{extra}}}').encode(), key=f"s{s}".encode())
    sent = 2 * shows
    span = 60 * MINUTE   # the listeners arrive over an hour of event time
    for u in range(listeners):
        ts = t0_ms + u * span // listeners
        s = u % shows
        key = f"u{u}".encode()
        p.send(behavior_topic, (f'{{"event_id": "l{u}", "event_type": "listen_start", '
                                f'"ts": {ts}, "user_id": "u{u}", "show_id": "s{s}", '
                                f'"topic": "t{s % 12}"}}').encode(), key=key)
        sent += 1
        if u % 10 < 3:
            p.send(behavior_topic, (f'{{"event_id": "f{u}", "event_type": "follow", '
                                    f'"ts": {ts + 1}, "user_id": "u{u}", '
                                    f'"creator_id": "c{(u * 7) % creators}"}}').encode(),
                   key=key)
            sent += 1
    p.flush()
    p.close()
    return sent, shows


def _held_mb(run: dict) -> float:
    """What a size's entities hold: the TaskManagers' memory outside the JVM heap (Python,
    RocksDB; resident) plus the heap's live objects."""
    return run["rss_native_mb"] + run["rss_children_mb"] + run["heap_live_mb"]


def taskmanager_rss() -> int:
    """Bytes resident in the TaskManager processes and their children."""
    return sum(taskmanager_rss_parts().values())


def taskmanager_rss_parts() -> dict[str, int]:
    """Bytes resident in the TaskManagers: of their JVM heaps (the pages of the heap the JVM
    touched, garbage included), the rest of their processes (in thread mode the embedded
    Python, RocksDB, metaspace, stacks) and their children (process-mode Python workers)."""
    pids = _taskmanager_pids()
    children = [int(c) for pid in pids for task in _tasks(pid)
                for c in _read(f"/proc/{pid}/task/{task}/children").split()]
    heap = sum(map(_heap_rss, pids))
    return {"heap": heap, "native": sum(map(_rss, pids)) - heap,
            "children": sum(map(_rss, children))}


def taskmanager_live_heap() -> int | None:
    """Bytes of the TaskManagers' JVM heaps in use right after a full collection (``jcmd
    GC.run``, then ``GC.heap_info``): the live objects, without the garbage that fills the
    touched pages (the heap is reserved whole at start, -Xms = -Xmx, so its size is a fixed
    cost of a TaskManager; what grows with the population is what stays live). None when
    ``jcmd`` is missing or answers otherwise."""
    jcmd = shutil.which("jcmd")
    pids = _taskmanager_pids()
    if not jcmd or not pids:
        return None
    total = 0
    for pid in pids:
        subprocess.run([jcmd, str(pid), "GC.run"], capture_output=True, timeout=120)
        info = subprocess.run([jcmd, str(pid), "GC.heap_info"], capture_output=True,
                              text=True, timeout=60).stdout
        used = re.search(r"heap\s+total \d+K, used (\d+)K", info)
        if not used:
            return None
        total += int(used.group(1)) * 1024
    return total


def _taskmanager_pids() -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit()
            and "TaskManagerRunner" in _read(f"/proc/{d}/cmdline")]


def _rss(pid: int) -> int:
    for line in _read(f"/proc/{pid}/status").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _heap_rss(pid: int) -> int:
    """Resident bytes of the JVM's heap: the one anonymous mapping the size of -Xmx."""
    xmx = re.search(r"-Xmx(\d+)\b", _read(f"/proc/{pid}/cmdline"))
    if not xmx:
        return 0
    want_kb, size_kb = int(xmx.group(1)) // 1024, None
    for line in _read(f"/proc/{pid}/smaps").splitlines():
        if line.startswith("Size:"):
            size_kb = int(line.split()[1])
        elif line.startswith("Rss:") and size_kb and abs(size_kb - want_kb) < want_kb // 100:
            return int(line.split()[1]) * 1024
    return 0


def _read(path: str) -> str:
    try:
        return Path(path).read_bytes().decode(errors="replace").replace("\0", " ")
    except OSError:
        return ""


def _tasks(pid: int) -> list[str]:
    try:
        return os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []


def checkpoints(job: str) -> list[dict]:
    rest = FlinkSettings.from_env().rest_url
    history = flink_rest.call(f"{rest}/jobs/{job}/checkpoints").get("history", [])
    return [h for h in history if h.get("status") == "COMPLETED"]


def probes(kafka: KafkaSettings, tag: str) -> list[str]:
    """One new listener in every first-stage bucket (shows and users share those buckets);
    returns their ids, in Redis once every bucket's state is loaded again."""
    users: dict[int, str] = {}
    i = 0
    while len(users) < BUCKETS:
        users.setdefault(bucket_of(f"user:{tag}{i}", BUCKETS), f"{tag}{i}")
        i += 1
    p = producer(kafka)
    now = int(time.time() * 1000)
    for user in users.values():
        p.send(kafka.topic("behavior-events"),
               json.dumps({"event_id": f"{user}-probe", "event_type": "listen_start",
                           "ts": now, "user_id": user, "show_id": "s0"}).encode(),
               key=user.encode())
    p.flush()
    p.close()
    return list(users.values())


def fresh_cluster() -> None:
    """Restart Flink: resident memory only grows within a JVM's life."""
    stack = Stack.default()
    stack.down(lambda _m: None, only={"flink"})
    stack.up(lambda _m: None, only={"flink"})


def run_size(listeners: int, backend: str, args, out: dict) -> None:
    """Fills ``out`` as the figures come (a size that fails keeps what it measured)."""
    fresh_cluster()
    os.environ["ONAIR_TOPIC_PREFIX"] = f"scale{uuid.uuid4().hex[:6]}."
    os.environ["ONAIR_REDIS_PREFIX"] = f"scale{uuid.uuid4().hex[:6]}"
    kafka = KafkaSettings.from_env()
    create_topics(kafka)
    store = RedisFeatureStore()
    t_produce = time.monotonic()
    events, shows = population(kafka, listeners, int(time.time() * 1000) - 2 * 3_600_000)
    n_markers = markers(kafka, "end-a")
    produce_s = time.monotonic() - t_produce
    before_parts = taskmanager_rss_parts()
    rss_before = sum(before_parts.values())
    job_args = ["--parallelism", "2", "--out-of-order-ms", "5000", "--idle-s", "5",
                "--checkpoint-interval-ms", str(args.checkpoint_ms),
                "--state-backend", backend, *shlex.split(args.job_args)]
    job = submit("compute_features", job_args)
    out.update(events=events, shows=shows, produce_s=round(produce_s, 1))
    try:
        flink_rest.wait_for_state(job, {"RUNNING"}, 180)
        first = store.key("show", "s0")
        while not store.client.exists(first):
            time.sleep(0.05)
        t0 = time.monotonic()
        t1 = wait_seq(store, "end-a", n_markers, timeout_s=3600)
        out["events_per_s"] = round((events + n_markers) / (t1 - t0))
        # The end markers carry the wall clock: event time jumps an hour past the load, and
        # every session the load opened passes 5 minutes at once. That burst is caught up
        # before the steady load (markers behind it), not measured as its reflection.
        catch_up = markers(kafka, "end-b")
        out["catch_up_s"] = round(wait_seq(store, "end-b", catch_up, timeout_s=1800) - t1, 1)
        loaded_at_ms = int(time.time() * 1000)
        out["rss_after_load_mb"] = round(taskmanager_rss() / 2**20)
        out["rss_before_mb"] = round(rss_before / 2**20)
        out.update({f"rss_before_{k}_mb": round(v / 2**20) for k, v in before_parts.items()})
        # A checkpoint of the loaded state before the steady load: the restore starts from
        # it, and the burst's own checkpoint (the catch-up rewrites every open listener) is
        # not in the steady load's reflection. (One triggered while the load ran can take
        # long: its barriers queue behind the batches.)
        deadline = time.monotonic() + 600
        while (not flink_rest.latest_checkpoint(job, triggered_after_ms=loaded_at_ms)
               and time.monotonic() < deadline):
            time.sleep(1)
        lat, offered, _ = reflection(kafka, store, args.rate, args.seconds)
        out["offered_events_per_s"] = round(offered)
        out["reflection_p99_ms"] = (round(float(np.percentile(lat, 99)), 1)
                                    if lat.size else None)
        out["python_gc_pause_max_ms"] = max(
            (v for name in ("show-user-features", "creator-features")
             if (v := flink_rest.vertex_metric(job, name, "onair.python_gc_pause_max_ms",
                                               agg="max")) is not None), default=None)
        parts = taskmanager_rss_parts()
        out["rss_mb"] = round(sum(parts.values()) / 2**20)
        out.update({f"rss_{k}_mb": round(v / 2**20) for k, v in parts.items()})
        live = taskmanager_live_heap()
        if live is not None:
            out["heap_live_mb"] = round(live / 2**20)
            out["held_mb"] = _held_mb(out)
        steady = [c for c in checkpoints(job) if c["trigger_timestamp"] > loaded_at_ms]
        every = checkpoints(job)
        if every:
            out["state_mb"] = round(max(c["state_size"] for c in every) / 2**20, 1)
            out["checkpoint_full_s"] = round(max(c["end_to_end_duration"]
                                                 for c in every) / 1000, 2)
        if steady:
            out["checkpoints_steady"] = len(steady)
            out["checkpoint_steady_s"] = round(float(np.median(
                [c["end_to_end_duration"] for c in steady])) / 1000, 2)
            out["checkpoint_steady_written_mb"] = round(float(np.median(
                [c["checkpointed_size"] for c in steady])) / 2**20, 2)
    finally:
        flink_rest.cancel(job)
    flink_rest.wait_for_state(job, {"CANCELED"}, 300)
    # Retained on cancel: the newest completed one, taken after the load.
    checkpoint = flink_rest.retained_checkpoint(job, triggered_after_ms=loaded_at_ms)
    if checkpoint is None:
        raise RuntimeError("no checkpoint completed after the load to restore from")

    t_restore = time.monotonic()
    again = submit("compute_features", job_args, from_savepoint=checkpoint)
    try:
        flink_rest.wait_for_state(again, {"RUNNING"}, 600)
        users = probes(kafka, "probe-u")
        while not all(store.client.exists(store.key("user", u)) for u in users):
            time.sleep(0.1)
        out["restore_s"] = round(time.monotonic() - t_restore, 1)
    finally:
        flink_rest.cancel(again)
    flink_rest.wait_for_state(again, {"CANCELED"}, 300)

    time.sleep(2)
    ids = [f"s{i}" for i in range(0, shows, max(1, shows // 1000))][:1000]
    gc.collect()
    reads = []
    for _ in range(300):
        t = time.perf_counter()
        store.read_shows(ids)
        reads.append((time.perf_counter() - t) * 1000)
    out["read_1000_p99_ms"] = round(float(np.percentile(reads[20:], 99)), 2)
    # The next size (and run) starts without this one's keys: left behind, a million per
    # size filled Redis over a day of runs, and a restarted Redis was loading them for minutes.
    unlink_matching(store.client, f"{store.settings.key_prefix}:*", batch=10_000)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000,1000000",
                        help="listener counts, comma-separated")
    parser.add_argument("--backends", default="hashmap,rocksdb")
    parser.add_argument("--checkpoint-ms", type=int, default=5000)
    parser.add_argument("--rate", type=int, default=2000)
    # 100 probes a second: over 60 s the p99 is the 60 slowest of 6,000, which one stall of
    # a second does not decide on its own (over 20 s it did).
    parser.add_argument("--seconds", type=int, default=60,
                        help="steady load's length (reflection p99, steady checkpoints)")
    parser.add_argument("--job-args", default="",
                        help="more compute_features flags, e.g. '--cache-per-bucket 20000'")
    parser.add_argument("--parts", default="features,ranking,alarms")
    parser.add_argument("--catalogs", default="1000,10000,50000",
                        help="rank_shows: live shows in the catalog, comma-separated")
    parser.add_argument("--requests", type=int, default=300, help="rank_shows: per measure")
    parser.add_argument("--churn-every", type=int, default=20,
                        help="rank_shows: a show event every this many requests")
    parser.add_argument("--streams", default="100,300,1000",
                        help="detect_alarms: concurrent real-time streams, comma-separated")
    parser.add_argument("--stream-seconds", type=float, default=24.0)
    parser.add_argument("--stream-chunk-ms", type=int, default=200)
    parser.add_argument("--stream-producers", type=int, default=2,
                        help="detect_alarms: processes the streams are sent from")
    parser.add_argument("--alarm-job-args", default="", help="more detect_alarms flags")
    parser.add_argument("--plot", help="draw compute_features' figures to this PNG")
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "onair-bench"))
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    Stack.default().up(lambda _m: None)
    result: dict = {"bench": "state_scale", "job_args": args.job_args}
    if "ranking" in parts:
        ranking = ranking_catalogs([int(n) for n in args.catalogs.split(",")], args.requests,
                                   args.churn_every, Path(args.cache))
        print(json.dumps({"ranking": ranking}), file=sys.stderr, flush=True)
        result["ranking"] = ranking
        if "50k" in ranking:
            result["rank_operator_p99_ms_50k_shows"] = ranking["50k"]["p99_ms"]
    if "alarms" in parts:
        with tempfile.TemporaryDirectory() as tmp:
            alarms = alarm_streams([int(n) for n in args.streams.split(",")],
                                   args.stream_seconds, shlex.split(args.alarm_job_args),
                                   Path(tmp), taskmanager_rss, fresh_cluster,
                                   chunk_ms=args.stream_chunk_ms,
                                   producers=args.stream_producers)
        print(json.dumps({"alarms": alarms}), file=sys.stderr, flush=True)
        result["alarms"] = alarms
        # Real time = the streams sent on time and the job keeping up with them: every chunk
        # acknowledged within a second of its due time, every alert within a second of the
        # end of the audio that confirmed it. Alert latency p99 at that count adds the audio
        # the model needs to hear an alarm (detection_delay), which the model decides, not
        # the stream count.
        kept = [int(n) for n, r in alarms.items()
                if r.get("chunks_not_acked") == 0
                and (r.get("produced_late_p99_ms") or 1e9) <= 1000
                and (r.get("in_job_p99_ms") or 1e9) <= 1000]
        result["realtime_streams"] = max(kept, default=0)
        if kept:
            result["alert_p99_ms_at_realtime_streams"] = \
                alarms[str(max(kept))]["latency_p99_ms"]
    sizes = [int(s) for s in args.sizes.split(",")] if "features" in parts else []
    runs = []
    for backend in args.backends.split(",") if sizes else []:
        for n in sizes:
            out: dict = {"listeners": n, "backend": backend}
            runs.append(out)
            try:
                run_size(n, backend, args, out)
            except Exception as e:   # a size that does not fit is a result too
                out["error"] = f"{type(e).__name__}: {str(e)[:300]}"
            print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    result["runs"] = runs
    for backend in args.backends.split(","):
        mine = sorted((r for r in runs if r["backend"] == backend and "rss_mb" in r),
                      key=lambda r: r["listeners"])
        for small, big in itertools.pairwise(mine):
            added = big["listeners"] - small["listeners"]
            big["rss_bytes_per_listener"] = round((big["rss_mb"] - small["rss_mb"]) * 2**20
                                                  / added)
            if "held_mb" in small and "held_mb" in big:
                big["bytes_per_listener"] = round(
                    (big["held_mb"] - small["held_mb"]) * 2**20 / added)
    # The summary keys, for the first backend given (e.g. events_per_s_1m).
    first = args.backends.split(",")[0]
    names = {"bytes_per_listener": "bytes_per_listener",
             "rss_bytes_per_listener": "rss_bytes_per_listener", "checkpoint_steady_s":
             "checkpoint_incremental_s", "restore_s": "restore_s",
             "events_per_s": "events_per_s", "reflection_p99_ms": "reflection_p99_ms"}
    for r in runs:
        if r["backend"] != first:
            continue
        label = (f"{r['listeners'] // 1_000_000}m" if r["listeners"] % 1_000_000 == 0
                 else f"{r['listeners'] // 1000}k")
        for field, name in names.items():
            if field in r:
                result[f"{name}_{label}"] = r[field]
    # The targets compare 1M with 100k within one run (machines and runs differ too much).
    for key in ("events_per_s", "reflection_p99_ms"):
        if result.get(f"{key}_100k") and result.get(f"{key}_1m") is not None:
            result[f"{key}_1m_vs_100k_pct"] = round(
                100 * (result[f"{key}_1m"] / result[f"{key}_100k"] - 1), 1)
    if args.plot and runs:
        plot(runs, Path(args.plot))
    held = [r["listeners"] for r in runs if r["backend"] == first and "restore_s" in r]
    result["max_listeners_held"] = max(held, default=0)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
