"""Demo steps for the batch side and the ranker: simulate a small world, compact it, build the
batch features on the cluster and read them back; train the ranker, rank live requests of the
simulated listeners (A/B against the heuristic) and report the arms."""

from __future__ import annotations

import json
import shutil
from datetime import date, timedelta

from connectors.batch_store import BatchOnlineStore, offline_root, read_offline
from core.settings import state_dir
from onair.sim.world import WorldConfig
from onair.sim.world_history import write_world
from onair.submit import run_attached, submit

USERS, DAYS = 2000, 22
DEMO_MODEL = "demo_show_ranker"  # its own name: the demo never moves a real model's alias


def _step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def demo_batch_features() -> tuple[bool, str, WorldConfig]:
    _step(f"13. onair simulate: {USERS} listeners x {DAYS} days into a lake of the demo's own")
    folder = state_dir() / "demo" / "lake"   # rebuilt by each run
    shutil.rmtree(folder, ignore_errors=True)
    lake = folder.as_uri()
    cfg = WorldConfig(users=USERS, days=DAYS)
    counts = write_world(lake, cfg)
    print(f"  {counts} (same as `onair simulate --users {USERS} --days {DAYS} --lake {lake}`)")

    # Features as of the last day: that day is the "live" one the ranking steps play.
    _step("14. compact_lake, then build_batch_features as of the last day (both bounded, BATCH)")
    submit("compact_lake", ["--lake", lake], detached=False)
    as_of = cfg.start + timedelta(days=DAYS - 1)
    submit("build_batch_features", ["--lake", lake, "--as-of", as_of.isoformat()],
           detached=False)

    _step("15. the online store (Redis, one pipelined read) against the offline store (Parquet)")
    return _show_features(lake, as_of), lake, cfg


def demo_ranking(lake: str, cfg: WorldConfig) -> bool:
    from connectors import flink_rest
    from connectors.kafka_admin import read_all
    from core.settings import KafkaSettings
    from models.registry import Registry
    from onair.sim.world_live import run_live

    _step("16. train_ranker: PIT training rows, the forest grown in parallel parts, ONNX, "
          "registry")
    submit("train_ranker", ["--lake", lake, "--name", DEMO_MODEL, "--promote"], detached=False)
    mv = Registry().resolve(DEMO_MODEL, "production")
    m = mv.metrics
    lifts = ", ".join(f"{name} {m[f'pbm_{key}_lift']:+.0%}" for name, key in (
        ("utility", "utility"), ("minutes", "minutes_attributed"), ("actions", "actions")))
    print(f"  {mv.ref} in production; off-policy lift over the heuristic (position-based): "
          f"{lifts}; report {Registry().version_dir(mv) / 'report.md'}")

    _step("17. compute_features + rank_shows; simulated listeners open the app and engage")
    features = submit("compute_features", [])
    ranking = submit("rank_shows", ["--model", DEMO_MODEL])
    ok = False
    try:
        for job in (features, ranking):
            flink_rest.wait_for_state(job, {"RUNNING"}, 120)
        stats = run_live(cfg, KafkaSettings.from_env(), requests=600, rate=30.0,
                         day=cfg.days - 1, hour=20)
        print(f"  {stats.requests} requests, {stats.rankings} rankings, {stats.events} "
              "behaviour events in answer")
        kafka = KafkaSettings.from_env()
        rankings = [json.loads(r.value) for r in read_all(kafka, kafka.topic("rec-rankings"))]
        for arm in ("ml", "heuristic"):
            # The last of the arm: the first requests can come before the catalog is complete.
            r = [x for x in rankings if x["variant"] == arm][-1]
            top = ", ".join(f"{i['show_id']} {i['score']:.3f}" for i in r["items"][:4])
            print(f"  {arm:<9} {r['user_id']}: {top} ... ({r['latency_ms']} ms in the operator,"
                  f" model {r['model_version']})")

        _step("18. report_ab: engagement per request by arm, with 95 % intervals")
        _, report, lines = run_attached("report_ab", [])
        print("\n".join("  " + line for line in lines))
        ok = stats.rankings == stats.requests and sum(report["requests"].values()) > 0
    finally:
        for job in (features, ranking):
            flink_rest.cancel(job)
    return ok


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
