"""Benchmark: the ranker's simulated A/B against the heuristic, at a size where the intervals
decide (>= 5,000 requests per arm).

The demo's world (2,000 listeners, 22 days) is simulated into a lake (cached under
``--cache``); ``onair pipeline daily --as-of`` its last day compacts it, builds the batch
features as of that day and trains the ranker on the days before, promoted by the gate. Then
compute_features and rank_shows run on the cluster, and ``run_live`` (what
``onair simulate-live`` runs) plays the last day at 20:00: simulated listeners open the app
(``--requests``, at ``--rate`` per second), read the ranking their arm gives them and engage
as the world's generative model says; their behaviour flows back through compute_features.
``report_ab --json`` compares the arms.

Prints one JSON line: requests per arm, per objective the arms' means, the relative lift with
its 95 % interval and the sequential test's decision, and whether the issue's targets are met
(listening minutes and actions >= +10 % with intervals above zero, no action type below -5 %).
Run: ``./dev bench ranker_ab``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import shlex
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

MODEL = "bench_ab_ranker"
ACTIONS = ("likes", "follows", "notifies", "listens")


def world_lake(cache: Path, users: int, days: int):
    from onair.sim.world import WORLD_VERSION, WorldConfig
    from onair.sim.world_history import write_world

    cfg = WorldConfig(users=users, days=days)
    folder = cache / f"ab-w{WORLD_VERSION}-{users}u-{days}d"
    if not (folder / ".complete").exists():
        write_world(folder.as_uri(), cfg)
        (folder / ".complete").write_text("")
    return cfg, folder.as_uri()


def targets(report: dict) -> dict:
    m = report["metrics"]

    def lift(name):
        return m[name].get("lift", {"relative": None, "ci95": [None, None]})

    def at_least(name, floor):
        x = lift(name)
        return x["relative"] is not None and x["relative"] >= floor and x["ci95"][0] > 0

    return {"minutes_plus_10pct": at_least("listen_minutes", 0.10),
            "actions_plus_10pct": at_least("actions", 0.10),
            "no_action_below_minus_5pct": all(
                lift(a)["relative"] is not None and lift(a)["relative"] >= -0.05
                for a in ACTIONS)}


def main() -> None:
    from connectors import flink_rest
    from connectors.kafka_admin import create_topics
    from core.settings import KafkaSettings
    from onair.pipeline import DailyRun, run_daily
    from onair.sim.world_live import run_live
    from onair.stack import Stack
    from onair.submit import run_attached, submit

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--days", type=int, default=22)
    ap.add_argument("--requests", type=int, default=11_000, help="both arms together")
    ap.add_argument("--rate", type=float, default=40.0, help="requests per second")
    ap.add_argument("--train-args", default="",
                    help="more train_ranker flags, e.g. \"--w-follow 15\" (a model of its own)")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "onair-bench")
    args = ap.parse_args()
    train_args = tuple(shlex.split(args.train_args))
    # A model per utility and flags: the gate would refuse one trained for other weights.
    from models.ranking.training import RankerParams

    key = json.dumps(RankerParams().as_dict(), sort_keys=True) + args.train_args
    model = f"{MODEL}_{hashlib.sha256(key.encode()).hexdigest()[:8]}"

    Stack.default().up(lambda _m: None)
    os.environ["ONAIR_TOPIC_PREFIX"] = f"benchab{uuid.uuid4().hex[:6]}."
    os.environ["ONAIR_REDIS_PREFIX"] = f"benchab{uuid.uuid4().hex[:6]}"
    started = time.monotonic()
    cfg, lake = world_lake(args.cache, args.users, args.days)
    live_day = cfg.days - 1
    with contextlib.redirect_stderr(io.StringIO()):
        record = run_daily(DailyRun(as_of=cfg.start + timedelta(days=live_day), lake=lake,
                                    name=model, train_args=train_args),
                           echo=lambda _line: None)
    if record.outputs["production"] is None:
        raise SystemExit(f"no production model: the gate refused {record.outputs}")
    create_topics(KafkaSettings.from_env())
    jobs = [submit("compute_features", []),
            submit("rank_shows", ["--model", model])]
    try:
        for job in jobs:
            flink_rest.wait_for_state(job, {"RUNNING"}, 120)
        stats = run_live(cfg, KafkaSettings.from_env(), requests=args.requests,
                         rate=args.rate, day=live_day, hour=20)
        time.sleep(10)  # the last behaviour events into the topic before the report reads it
        _, report, _ = run_attached("report_ab", ["--json"])
    finally:
        for job in jobs:
            flink_rest.cancel(job)
    print(json.dumps({
        "benchmark": "ranker_ab", "users": args.users, "days": args.days,
        "train_args": args.train_args,
        "model": record.outputs["production"],
        "candidate": {"model": record.outputs["model"], "promoted": record.outputs["promoted"],
                      "gate": record.outputs["gate"]},
        "requests_sent": stats.requests, "rankings": stats.rankings,
        "behavior_events": stats.events, "requests": report["requests"],
        "metrics": {m: {"ml": r["ml"]["mean"], "heuristic": r["heuristic"]["mean"],
                        "lift": r.get("lift", {}).get("relative"),
                        "lift_ci95": r.get("lift", {}).get("ci95"),
                        "sequential": r["sequential"]["decision"]}
                    for m, r in report["metrics"].items()},
        "targets": targets(report),
        "seconds": round(time.monotonic() - started, 1)}))


if __name__ == "__main__":
    main()
