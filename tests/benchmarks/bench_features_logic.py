"""Benchmark: compute_features' Python work per event, without Flink, Kafka or Redis.

The same code the job runs, over the same simulated log as ``bench_features``, in one
process: parse and validate each record, route it to its entities and group by bucket (the
splitter); apply the batches to the buckets' states and the shows' derived updates to the
creator buckets (the two keyed stages); turn the changed states into what Flink state stores
(``to_saved`` and the pickle PyFlink applies to a ``PICKLED_BYTE_ARRAY``); build the Redis
writes of the changed entities. Batches of ``--batch`` records stand in for the job's
100 ms windows. What it leaves out is what Flink adds: the hand-over between the JVM and
Python, state ``put`` calls, timers, metrics, Redis round trips.

It bounds the job: at N µs of Python per event, one fully used core runs 1e6/N events/s.
Prints one JSON line. Run: ``./dev bench features_logic [--events 100000]``.
"""

from __future__ import annotations

import argparse
import json
import pickle
import time

from core.settings import RedisSettings
from core.topics import BEHAVIOR_EVENTS, SHOW_EVENTS
from models.features.buckets import Bucket, route_derived, route_event, split_by_bucket
from onair.sim.sample_features import feature_log
from operators.features import EntityBucketsFunction
from operators.validate import as_message, validate_value


def run(raw: list[tuple[str, bytes]], *, buckets: int, batch: int) -> dict[str, float]:
    """Seconds spent per stage over the whole log."""
    routes = {t.name: (t.schema, as_message) for t in (BEHAVIOR_EVENTS, SHOW_EVENTS)}
    # Only its pure ``_write`` is used: no open(), no Redis connection.
    writer = EntityBucketsFunction(RedisSettings.from_env(), buckets=buckets)
    first_stage: dict[str, Bucket] = {}
    creator_stage: dict[str, Bucket] = {}
    spent = dict.fromkeys(("split", "apply", "save", "write"), 0.0)

    def apply_and_save(stage: dict[str, Bucket], grouped: dict, changed: dict) -> list[dict]:
        derived: list[dict] = []
        for key, events in grouped.items():
            t0 = time.perf_counter()
            bucket = stage.setdefault(key, Bucket())
            derived += bucket.apply(events)
            t1 = time.perf_counter()
            entities, saves = bucket.take_changed()
            for _, saved in saves:
                pickle.dumps(saved)
            changed.update(entities)
            spent["apply"] += t1 - t0
            spent["save"] += time.perf_counter() - t1
        return derived

    for start in range(0, len(raw), batch):
        t0 = time.perf_counter()
        first, creators = [], []
        for offset, (topic, value) in enumerate(raw[start:start + batch], start):
            ok, event = validate_value(value, topic, 0, offset, routes[topic], "bench")
            assert ok, event
            to_first, to_creators = route_event(event)
            first += to_first
            creators += to_creators
        grouped = split_by_bucket(first, buckets, "b")
        spent["split"] += time.perf_counter() - t0
        changed: dict = {}
        derived = apply_and_save(first_stage, grouped, changed)
        t0 = time.perf_counter()
        grouped = split_by_bucket(creators + route_derived(derived), buckets, "c")
        spent["split"] += time.perf_counter() - t0
        apply_and_save(creator_stage, grouped, changed)
        t0 = time.perf_counter()
        for entity, st in changed.items():
            writer._write(entity, st)
        spent["write"] += time.perf_counter() - t0
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--buckets", type=int, default=16)
    parser.add_argument("--batch", type=int, default=2000,
                        help="records per batch (the job: a partition's 100 ms window)")
    args = parser.parse_args()
    raw = [(topic, json.dumps(event).encode()) for topic, event in feature_log(args.events)]
    t0 = time.perf_counter()
    spent = run(raw, buckets=args.buckets, batch=args.batch)
    total = time.perf_counter() - t0
    us = {f"{stage}_us_per_event": round(s / len(raw) * 1e6, 1) for stage, s in spent.items()}
    print(json.dumps({
        "bench": "features_logic", "events": len(raw), "batch": args.batch, **us,
        "total_us_per_event": round(total / len(raw) * 1e6, 1),
        "events_per_core_s": round(len(raw) / total),
    }))


if __name__ == "__main__":
    main()
