"""Demo steps for the lake and batch features: simulate a small world, compact it, build the
batch features on the cluster, read them back from Redis and check them against the offline
store."""

from __future__ import annotations

import json
import shutil
from datetime import date, timedelta

from connectors.batch_store import BatchOnlineStore, offline_root, read_offline
from connectors.settings import state_dir
from onair.cli import submit
from onair.world import WorldConfig
from onair.world_history import write_world

USERS, DAYS = 1500, 21


def _step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def demo_batch_features() -> bool:
    _step(f"13. onair simulate: {USERS} listeners x {DAYS} days into a lake of the demo's own")
    folder = state_dir() / "demo" / "lake"   # rebuilt by each run
    shutil.rmtree(folder, ignore_errors=True)
    lake = folder.as_uri()
    cfg = WorldConfig(users=USERS, days=DAYS)
    counts = write_world(lake, cfg)
    print(f"  {counts} (same as `onair simulate --users {USERS} --days {DAYS} --lake {lake}`)")

    _step("14. compact_lake, then build_batch_features as of the last day (both bounded, BATCH)")
    submit("compact_lake", ["--lake", lake], detached=False)
    as_of = cfg.start + timedelta(days=DAYS)
    submit("build_batch_features", ["--lake", lake, "--as-of", as_of.isoformat()],
           detached=False)

    _step("15. the online store (Redis, one pipelined read) against the offline store (Parquet)")
    return _show_features(lake, as_of)


def _show_features(lake: str, as_of: date) -> bool:
    day = as_of.isoformat()
    users = read_offline(offline_root(lake), "user", day)
    shows = read_offline(offline_root(lake), "show", day)
    topics = read_offline(offline_root(lake), "user_topic", day)
    user = users.sort_values("u_listen_minutes").iloc[-1]["user_id"]
    top = shows.sort_values("s_listens").tail(5)
    got = BatchOnlineStore().read(user, list(top["show_id"]))
    print(f"  run {got.run_id}; listener {user}:")
    mine = topics[topics["user_id"] == user].sort_values("ut_listen_share", ascending=False)
    for _, r in mine.head(3).iterrows():
        online = got.user_feature("ut_listen_share", r["topic"])
        print(f"    {r['topic']:<11} listening share {online:.3f} (offline "
              f"{r['ut_listen_share']:.3f}), like rate {r['ut_like_rate']:.2f}")
    print("  most listened shows (online matrix row = offline row):")
    ok = True
    for row, (_, want) in zip(got.shows, top.iterrows(), strict=True):
        print(f"    {want['show_id']:<7} " + json.dumps(
            {"listens": float(row[0]), "like_rate": round(float(row[1]), 3),
             "avg_min": round(float(row[2]), 1), "engagement": round(float(row[3]), 3)}))
        ok = ok and abs(row[0] - want["s_listens"]) < 1e-6
    return ok and got.run_id is not None
