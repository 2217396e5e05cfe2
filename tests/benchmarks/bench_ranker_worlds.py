"""Benchmark: does the ranker beat the declared-topics heuristic in worlds built on other
assumptions than the default one?

For each world (``WORLDS``: the simulator's flags varied together: how informative declared
topics are, how loyal listeners are to creators, how far ahead shows are announced, feed
length 1-20, the live/upcoming mix, the logging policy's exploration): simulate it into a
lake of its own (cached under ``--cache`` by world version and flags), compact it, build each
day's point-in-time training rows, grow the forest for the default utility and evaluate it on
the last five days against the heuristic with both off-policy estimators
(``models.ranking.offpolicy``): position-based (``lifts``, the one whose intervals decide) and
SNIPS (``snips_lifts``, unbiased under any position effect, much wider). The steps are
``train_ranker``'s own functions (``connectors.ranker_dataset.day_rows``,
``models.ranking.training.load_rows / train_part / evaluate``), run in this process: the
job's Flink stages only spread the same work over subtasks.

Prints one JSON line: per world its flags, each objective's estimated lift with its 95 %
bootstrap interval and its true lift (``true_lifts``: from the world's own model,
``onair.sim.world_truth``, which no estimator sees); over the worlds, per objective, the
smallest position-based lift (``min_lift_<objective>``), the smallest lower interval bound
(``min_lift_ci_low_<objective>``) and the smallest true lift (``min_true_lift_<objective>``).
Run: ``./dev bench ranker_worlds [--users N --days N]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from datetime import timedelta
from pathlib import Path

WARMUP_DAYS, EVAL_DAYS, LOOKBACK_DAYS = 7, 5, 60
OBJECTIVES = ("minutes_attributed", "actions", "likes", "follows", "notifies", "listens",
              "minutes", "utility")
# Worlds that disagree with the default on what predicts engagement and on what feeds look
# like; seeds differ too, so no world shares listeners or shows with another.
WORLDS = {
    "default": {},
    "loyal_informed": {"seed": 21, "declared_agreement": 0.8, "loyalty": 3.0,
                       "announce_hours": 168, "feed_min": 1, "lookahead_hours": 6.0},
    "fickle_uninformed": {"seed": 33, "declared_agreement": 0.1, "loyalty": 0.6,
                          "announce_hours": 24, "feed_min": 1, "lookahead_hours": 1.0,
                          "explore": 0.3},
    "upcoming_heavy": {"seed": 45, "declared_agreement": 0.5, "loyalty": 1.2,
                       "announce_hours": 96, "feed_min": 5, "lookahead_hours": 12.0,
                       "notify_listen": 0.3, "follow_listen": 0.7},
}


def rows_of_world(cache: Path, users: int, days: int, flags: dict) -> str:
    """The world's training rows (all days after the warm-up) as one Parquet file, cached."""
    import pandas as pd

    from connectors.lake import LAKE_TABLES
    from connectors.lake_compaction import compact_partition, raw_partitions
    from connectors.ranker_dataset import day_rows
    from onair.sim.world import WORLD_VERSION, WorldConfig
    from onair.sim.world_history import write_world

    cfg = WorldConfig(users=users, days=days, **flags)
    key = hashlib.sha256(json.dumps(asdict(cfg), default=str, sort_keys=True).encode())
    folder = cache / f"ranker-worlds-w{WORLD_VERSION}-{key.hexdigest()[:12]}"
    rows = folder / "rows.parquet"
    if rows.exists():
        return str(rows)
    lake = (folder / "lake").as_uri()
    write_world(lake, cfg)
    for table in LAKE_TABLES.values():
        for dt in raw_partitions(lake, table.name):
            compact_partition(lake, table, dt)
    frames = [day_rows(lake, cfg.start + timedelta(days=d), LOOKBACK_DAYS)
              for d in range(WARMUP_DAYS, days)]
    pd.concat(frames, ignore_index=True).to_parquet(rows)
    return str(rows)


def evaluate_world(rows_file: str, tie_seed: int, cfg=None) -> dict:
    import numpy as np
    import pandas as pd

    from models.ranking.scoring import FEATURE_ORDER
    from models.ranking.training import RankerParams, evaluate, load_rows, train_part

    rows = pd.read_parquet(rows_file)
    days = sorted(rows["day"].unique())
    train, holdout = rows[rows["day"].isin(days[:-EVAL_DAYS])], rows[
        rows["day"].isin(days[-EVAL_DAYS:])].reset_index(drop=True)
    params = RankerParams()
    with tempfile.TemporaryDirectory() as tmp:
        train_file = str(Path(tmp) / "train.parquet")
        train.to_parquet(train_file)
        x, y, w = load_rows([train_file], params.utility)
    model = train_part(x, y, w, params, params.seed, params.trees)
    p = model.predict_proba(holdout[list(FEATURE_ORDER)].to_numpy(np.float32))[:, 1]
    result = evaluate(holdout, p, params.utility, tie_seed)

    def lifts(estimator: str) -> dict:
        rows = result["offpolicy"][estimator]["objectives"]
        return {o: {"lift": rows[o]["model"]["lift"], "ci95": rows[o]["model"]["lift_ci95"]}
                for o in OBJECTIVES}

    truth = {}
    if cfg is not None:  # the world's own expected outcomes: the estimators' yardstick
        from models.ranking.training import heuristic_of_rows
        from onair.sim.world_history import World
        from onair.sim.world_truth import expected_outcomes

        world = World.create(cfg)
        model = expected_outcomes(world, holdout, p, tie_seed=tie_seed)
        base = expected_outcomes(world, holdout, heuristic_of_rows(holdout), tie_seed=tie_seed)
        truth = {o: round(model[o] / base[o] - 1, 4) for o in model if base[o]}
    return {"train_rows": len(train), "holdout_requests": result["holdout_requests"],
            "true_lifts": truth,
            "snips_matched_share": result["offpolicy"]["snips"]["matched_share"]["model"],
            "lifts": lifts("pbm"), "snips_lifts": lifts("snips")}


def one_world(args: tuple) -> tuple[str, dict]:
    name, flags, cache, users, days, tie_seed = args
    started = time.monotonic()
    from onair.sim.world import WorldConfig

    rows = rows_of_world(cache, users, days, flags)
    out = evaluate_world(rows, tie_seed, WorldConfig(users=users, days=days, **flags))
    return name, {"flags": flags, **out, "seconds": round(time.monotonic() - started, 1)}


def main() -> None:
    from core.settings import state_dir
    from onair.sim.world import WorldConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--days", type=int, default=22)
    ap.add_argument("--eval-seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=state_dir() / "bench-cache")
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    for flags in WORLDS.values():
        replace(WorldConfig(), **flags)  # a misspelt flag fails before hours of work
    jobs = [(name, flags, args.cache, args.users, args.days, args.eval_seed)
            for name, flags in WORLDS.items()]
    with ProcessPoolExecutor(args.workers) as pool:
        worlds = dict(pool.map(one_world, jobs))
    print(json.dumps({
        "benchmark": "ranker_worlds", "users": args.users, "days": args.days,
        "eval_days": EVAL_DAYS, "worlds": worlds,
        "estimator": "pbm",
        **{f"min_lift_{o}": min(w["lifts"][o]["lift"] for w in worlds.values())
           for o in OBJECTIVES},
        **{f"min_lift_ci_low_{o}": min(w["lifts"][o]["ci95"][0] for w in worlds.values())
           for o in OBJECTIVES},
        **{f"min_true_lift_{o}": min(w["true_lifts"][o] for w in worlds.values())
           for o in OBJECTIVES if o != "utility"},
        "beats_heuristic_everywhere": all(
            w["lifts"][o]["lift"] > 0 for w in worlds.values()
            for o in ("minutes_attributed", "actions")),
    }))


if __name__ == "__main__":
    main()
