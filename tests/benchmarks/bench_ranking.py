"""Benchmark: ranking latency, in the operator and end to end through Kafka and rank_shows.

Setup (cached per world version under ``--cache``): a simulated world -> compact_lake ->
build_batch_features (online) -> train_ranker, registered as ``bench_ranker`` and promoted.
A catalog of 1,000 live shows (creators and topics of that world, streaming features in Redis).

* operator: ``Ranker.rank`` alone (1,000 candidates: one Redis round trip for every feature,
  assembly, one ONNX call, top-10), p50/p99 over ``--requests`` requests of ml-arm users;
* scoring: the same 1,000 rows through ONNX and through scikit-learn's ``predict_proba`` of the
  identical forest (rebuilt from the registered training rows, seeds and parts), median of 30;
* end to end: requests produced at 50 and then 200 per second for ``--seconds`` each, stamped
  with the send time; latency = arrival of the ranking at a consumer (its own process)
  minus that stamp, split into request -> the sink's produce time -> arrival;
* the broker alone, as the baseline of the same run: ranking-sized messages produced at the
  same rates straight to a topic the same consumer reads (one hop of a request's two).

Prints one JSON line. Run: ``./dev bench ranking``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from kafka_load import rdkafka_config

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
MODEL = "bench_ranker"
EXPERIMENT = "bench"


def run(argv: list[str]) -> None:
    subprocess.run([PY, "-m", "onair.cli", *argv], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)


def setup(cache: Path, users: int, days: int) -> str:
    from models.ranking.training import RankerParams
    from models.registry import Registry, RegistryError
    from onair.sim.world import WORLD_VERSION, WorldConfig
    from onair.sim.world_history import write_world

    start = date(2026, 9, 1)
    folder = cache / f"ranking-w{WORLD_VERSION}-{users}u-{days}d"
    lake = folder.as_uri()
    if not (folder / ".complete").exists():
        write_world(lake, WorldConfig(users=users, days=days, start=start))
        run(["submit", "--attached", "compact_lake", "--lake", lake])
        (folder / ".complete").write_text("")
    as_of = (start + timedelta(days=days)).isoformat()
    run(["submit", "--attached", "build_batch_features", "--lake", lake, "--as-of", as_of])
    try:
        mv = Registry().resolve(MODEL, "production")
        if mv.params != RankerParams().as_dict():
            raise RegistryError("trained with other parameters")
    except RegistryError:
        run(["submit", "--attached", "train_ranker", "--lake", lake, "--name", MODEL,
             "--promote"])
    return lake


def catalog_shows(lake: str, n: int) -> dict[str, tuple[str, str]]:
    from connectors.lake_compaction import read_partition, transformed_partitions

    creators = read_partition(lake, "creators", transformed_partitions(lake, "creators")[-1],
                              ["creator_id", "main_topic"]).to_pandas()
    return {f"bench-s{i}": (creators["creator_id"].iat[i % len(creators)],
                            creators["main_topic"].iat[i % len(creators)]) for i in range(n)}


def percentiles(values: list[float]) -> tuple[float, float]:
    return (round(float(np.percentile(values, 50)), 2),
            round(float(np.percentile(values, 99)), 2))


def sklearn_twin(mv):
    """The registered forest rebuilt in scikit-learn: same rows, params, seeds and parts."""
    from models.ranking.training import (
        RankerParams,
        load_rows,
        merge_forests,
        train_part,
        tree_tasks,
    )

    rows = Path(mv.extra["rows_dir"])
    files = [str(rows / f"day={d}.parquet") for d in mv.extra["train_days"]
             if (rows / f"day={d}.parquet").exists()]
    params = RankerParams.from_dict(mv.params)
    x, y, weight = load_rows(files, params.utility)
    parts = [train_part(x, y, weight, params, seed, trees)
             for seed, trees in tree_tasks(params, mv.extra["tree_tasks"])]
    return merge_forests(sorted(parts, key=lambda m: m.random_state))


def operator_latency(shows, users, n: int):
    from connectors.ranking_reads import RankingReader
    from models.onnx_export import OnnxScorer
    from models.ranking.catalog import Catalog
    from models.registry import Registry
    from operators.ranking import Ranker

    catalog = Catalog()
    now = int(time.time() * 1000)
    for sid, (creator, topic) in shows.items():
        catalog.apply({"show_id": sid, "event_type": "live", "ts": now - 60_000,
                       "creator_id": creator, "topic": topic})
    session, mv = Registry().load_session(MODEL, "production")
    scorer = OnnxScorer(session)
    ranker = Ranker(catalog, RankingReader(), EXPERIMENT, 2 * 3_600_000, 10)
    times = []
    for i in range(n + 20):
        request = {"request_id": f"op-{i}", "user_id": users[i % len(users)],
                   "ts": int(time.time() * 1000)}
        t = time.perf_counter()
        out = ranker.rank(request, scorer, mv.ref)
        if i >= 20:
            times.append((time.perf_counter() - t) * 1000)
        assert out["model_version"] == mv.ref and len(out["items"]) == 10
    feats = ranker.reader.read(users[0], list(shows), [c for c, _ in shows.values()],
                               [t for _, t in shows.values()], now)
    return times, feats, scorer, mv


def scoring_times(feats, scorer, mv) -> tuple[float, float, float]:
    from models.ranking.scoring import assemble

    x = assemble(feats.columns, len(feats.declared))
    forest = sklearn_twin(mv)
    diff = float(np.max(np.abs(forest.predict_proba(x)[:, 1] - scorer(x)[:, 1])))

    def median_ms(fn):
        samples = []
        for _ in range(30):
            t = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t) * 1000)
        return round(float(np.median(samples)), 3)

    return median_ms(lambda: scorer(x)), median_ms(lambda: forest.predict_proba(x)), diff


def listen(ready, stop, out) -> None:
    """Consume rankings in a process of its own (not a thread beside the sender: the GIL
    would add the harness's own waits to the latencies) and hand back, per request id,
    (arrival ms, the sink's CreateTime, the operator's latency_ms)."""
    from confluent_kafka import Consumer, TopicPartition

    from connectors.kafka_admin import partitions_of
    from core.settings import KafkaSettings

    kafka = KafkaSettings.from_env()
    topic = kafka.topic("rec-rankings")
    # 5 ms: Tansu answers a waiting fetch only when the wait ends.
    c = Consumer({**rdkafka_config(kafka), "group.id": "bench-ranking",
                  "enable.auto.commit": False, "fetch.wait.max.ms": 5,
                  "isolation.level": "read_uncommitted"})
    c.assign([TopicPartition(topic, i, 0) for i in partitions_of(kafka, topic)])
    c.poll(0.1)
    ready.set()
    seen: dict[str, tuple[float, int, float]] = {}
    while not stop.is_set():
        m = c.poll(0.05)  # returns with the first message (consume() waits for a batch)
        if m is not None and not m.error():
            t = time.time() * 1000
            ranking = json.loads(m.value())
            seen.setdefault(ranking["request_id"],
                            (t, m.timestamp()[1], ranking["latency_ms"]))
    c.close()
    out.send(seen)


@contextmanager
def listening():
    """``listen`` started in a process of its own and ready; yields ``finish``, which stops it
    and returns what it saw."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    receive, send_back = ctx.Pipe(duplex=False)
    listener = ctx.Process(target=listen, args=(ready, stop, send_back), daemon=True)
    listener.start()
    ready.wait(60)

    def finish() -> dict:
        stop.set()
        seen = receive.recv()
        listener.join(30)
        return seen

    try:
        yield finish
    finally:
        stop.set()


def paced(rate: int, seconds: float):
    """0, 1, 2, ... each at its due time: ``rate`` per second for ``seconds``."""
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < seconds:
        time.sleep(max(0.0, start + i / rate - time.monotonic()))
        yield i
        i += 1


def end_to_end(shows, users, rates: list[int], seconds: float,
               parallelism: int, job_args: list[str]) -> dict:
    from confluent_kafka import Producer

    from connectors import flink_rest
    from connectors.kafka_admin import create_topics
    from core.settings import KafkaSettings
    from onair.submit import submit

    os.environ["ONAIR_TOPIC_PREFIX"] = f"benchrank{uuid.uuid4().hex[:6]}."
    kafka = KafkaSettings.from_env()
    create_topics(kafka)
    job = submit("rank_shows", ["--model", MODEL, "--experiment", EXPERIMENT,
                                "--parallelism", str(parallelism), *job_args])
    sent: dict[str, int] = {}
    try:
        flink_rest.wait_for_state(job, {"RUNNING"}, 120)
        p = Producer({**rdkafka_config(kafka), "linger.ms": 0, "acks": "all"})
        now = int(time.time() * 1000)
        for sid, (creator, topic) in shows.items():
            event = {"event_id": f"e-{sid}", "event_type": "live", "ts": now - 60_000,
                     "show_id": sid, "creator_id": creator, "topic": topic}
            p.produce(kafka.topic("show-events"), json.dumps(event).encode(), key=sid.encode())
            p.poll(0)
        p.flush(30)
        with listening() as finish:
            for i in range(30):  # warm up: the job's first requests pay for loading the model
                _send(p, kafka, f"warm-{i}", users[i % len(users)], sent)
                time.sleep(0.1)
            time.sleep(10)
            ids_by_rate = {}
            n = 0  # users continue across the rates: each rate's first requests are new users
            for rate in rates:
                ids = ids_by_rate[rate] = []
                print(f"{rate} requests/s from {time.time():.0f}", file=sys.stderr)
                for i in paced(rate, seconds):
                    rid = f"r{rate}-{i}"
                    _send(p, kafka, rid, users[n % len(users)], sent)
                    ids.append(rid)
                    n += 1
                p.flush(30)
                time.sleep(5)  # let the slowest rankings of this rate arrive before the next
            time.sleep(10)
            seen = finish()
        # How many requests found their user's batch hash in the job's per-run cache: the
        # users cycle, so the 200/s phase mostly finds them there (docs/performance.md).
        # The JobManager fetches metrics when asked, so the first answer can predate the run.
        flink_rest.vertex_metric(job, "rank ", "ranking_requests")
        time.sleep(2)
        user_reads = {name: flink_rest.vertex_metric(job, "rank ", name)
                      for name in ("ranking_requests", "ranking_user_reads")}
    finally:
        flink_rest.cancel(job)
    results = {"user_reads": user_reads}
    for rate, ids in ids_by_rate.items():
        got = [r for r in ids if r in seen]
        results[rate] = [seen[r][0] - sent[r] for r in got]
        results[f"lost_{rate}"] = len(ids) - len(got)
        results[f"parts_{rate}"] = {
            "to_sink": [seen[r][1] - sent[r] for r in got],
            "operator": [seen[r][2] for r in got],
            "sink_to_consumer": [seen[r][0] - seen[r][1] for r in got]}
        results[f"sent_per_s_{rate}"] = round(len(ids) / seconds, 1)
        results[f"raw_{rate}"] = [(sent[r], *seen[r]) for r in got]
    return results


def broker_only(rates: list[int], seconds: float) -> dict:
    """The broker's own floor, in the same run: messages the size of a ranking produced at
    each rate straight to a fresh ``rec-rankings`` topic and consumed by the same listener,
    no job between. One hop of the two a ranking request makes (docs/design-notes.md)."""
    from confluent_kafka import Producer

    from connectors.kafka_admin import create_topics
    from core.settings import KafkaSettings

    os.environ["ONAIR_TOPIC_PREFIX"] = f"benchbroker{uuid.uuid4().hex[:6]}."
    kafka = KafkaSettings.from_env()
    create_topics(kafka)
    p = Producer({**rdkafka_config(kafka), "linger.ms": 0, "acks": "all"})
    item = {"show_id": "bench-s000", "score": 0.5, "creator_id": "c0000"}
    sent: dict[str, float] = {}
    ids_by_rate: dict[int, list[str]] = {}
    with listening() as finish:
        for rate in rates:
            ids = ids_by_rate[rate] = []
            for i in paced(rate, seconds):
                rid = f"b{rate}-{i}"
                sent[rid] = time.time() * 1000
                p.produce(kafka.topic("rec-rankings"), json.dumps({
                    "request_id": rid, "user_id": "u0", "variant": "ml", "model_version": None,
                    "items": [item] * 10, "latency_ms": 0.0}).encode(), key=b"u0")
                p.poll(0)
                ids.append(rid)
            p.flush(30)
            time.sleep(5)
        seen = finish()
    out = {}
    for rate, ids in ids_by_rate.items():
        got = [seen[r][0] - sent[r] for r in ids if r in seen]
        out[str(rate)] = {"p50_p99_ms": percentiles(got) if got else None,
                          "lost": len(ids) - len(got)}
    return out


def _send(p, kafka, rid: str, user: str, sent: dict) -> None:
    """Stamp and send without waiting for the broker's ack (the producer does not linger)."""
    ts = int(time.time() * 1000)
    sent[rid] = ts
    p.produce(kafka.topic("rec-requests"),
              json.dumps({"request_id": rid, "user_id": user, "ts": ts}).encode(),
              key=user.encode())
    p.poll(0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--candidates", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--parallelism", type=int, default=1,
                        help="rank_shows subtasks (1: two, one per TaskManager, measured "
                             "slower on 2 cores; docs/performance.md)")
    parser.add_argument("--job-args", default="",
                        help="more rank_shows flags, e.g. \"--python-mode thread\"")
    parser.add_argument("--dump", help="write each request's (sent, arrived, produced by "
                                       "the sink, operator ms) per rate to this JSON file")
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "onair-bench"))
    args = parser.parse_args()

    from connectors.feature_store import FeatureWrite, RedisFeatureStore
    from models.ranking.scoring import variant
    from onair.stack import Stack

    Stack.default().up(lambda _m: None)
    lake = setup(Path(args.cache), args.users, args.days)
    shows = catalog_shows(lake, args.candidates)
    rng = np.random.default_rng(3)
    now = int(time.time() * 1000)
    RedisFeatureStore().write_many(
        FeatureWrite("show", s, 1, now, {"status": "live", "like_count": int(rng.integers(50)),
                                         "listen_count": int(rng.integers(500)),
                                         "unique_listeners": int(rng.integers(300)),
                                         "notify_count": int(rng.integers(40))})
        for s in shows)
    users = [u for u in (f"u{i}" for i in range(args.users)) if variant(u, EXPERIMENT) == "ml"]

    times, feats, scorer, mv = operator_latency(shows, users, args.requests)
    onnx_ms, sklearn_ms, diff = scoring_times(feats, scorer, mv)
    e2e = end_to_end(shows, users, [50, 200], args.seconds, args.parallelism,
                     shlex.split(args.job_args))
    broker = broker_only([50, 200], args.seconds)
    if args.dump:
        Path(args.dump).write_text(json.dumps({r: e2e[f"raw_{r}"] for r in (50, 200)}))
    op50, op99 = percentiles(times)
    e50, e99 = percentiles(e2e[50]) if e2e[50] else (None, None)
    f50, f99 = percentiles(e2e[200]) if e2e[200] else (None, None)
    print(json.dumps({
        "bench": "ranking", "candidates": args.candidates, "model": mv.ref,
        "parallelism": args.parallelism, "job_args": args.job_args,
        "operator_p50_ms": op50, "operator_p99_ms": op99,
        "e2e_p50_ms_at_50rps": e50, "e2e_p99_ms_at_50rps": e99,
        "e2e_p50_ms_at_200rps": f50, "e2e_p99_ms_at_200rps": f99,
        "e2e_lost": {"50": e2e["lost_50"], "200": e2e["lost_200"]},
        "sent_per_s": {"50": e2e["sent_per_s_50"], "200": e2e["sent_per_s_200"]},
        # p50/p99 of each part: request sent -> ranking produced by the job's sink; the rank
        # operator's own time within that; sink -> the benchmark's consumer.
        "e2e_parts_ms": {str(rate): {part: percentiles(v) if v else None
                                     for part, v in e2e[f"parts_{rate}"].items()}
                         for rate in (50, 200)},
        "job_requests_and_user_store_reads": e2e["user_reads"],
        # Baseline in the same run: one produce -> consume hop through the broker, no job.
        "broker_only_hop_ms": broker,
        "onnx_1000_ms": onnx_ms, "sklearn_1000_ms": sklearn_ms,
        "onnx_vs_sklearn_max_diff": diff,
    }))


if __name__ == "__main__":
    main()
