"""train_ranker: the show ranker from the impression log, registered with its lineage.

Bounded, BATCH, two Flink stages run by one driver:

1. training rows, one day per record (``models.ranker_dataset.day_rows``: each impression
   joined with the batch features as of its day and its show's streaming features as of its
   time), written as Parquet under the run folder;
2. the Random Forest grown in ``--tree-tasks`` parts, one per record, each with its own seed,
   on the training days' rows; the driver merges the trees into one forest.

Then: evaluation on the last ``--eval-days`` days against the declared-topics heuristic (AUC,
NDCG@10, engagement@10), ONNX export with parity checked on the holdout (max |diff| <= 1e-5 or
the job fails), report (markdown + ROC/PR PNG), registry entry; ``--promote`` moves
``production``.

    onair submit --attached train_ranker --lake URI [--from D --to D] [--promote]
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from pyflink.common import Types
from pyflink.datastream import MapFunction

from connectors.flink_env import FlinkJobSettings, stream_env
from connectors.job_config import env_default
from connectors.settings import lake_root, state_dir
from models.ranker_training import RankerParams

JOB = "train_ranker"
PARITY_LIMIT = 1e-5


@dataclass(frozen=True)
class TrainRankerConfig:
    lake_root: str
    first_day: date
    last_day: date
    eval_days: int
    lookback_days: int
    params: RankerParams
    tree_tasks: int
    name: str
    promote: bool
    work_dir: Path
    flink: FlinkJobSettings

    @classmethod
    def from_args(cls, argv: list[str] | None = None) -> TrainRankerConfig:
        from connectors.lake_compaction import transformed_partitions

        p = argparse.ArgumentParser(prog=JOB, description=__doc__.splitlines()[0])
        p.add_argument("--lake", default=lake_root(), help="lake root URI (env ONAIR_LAKE)")
        p.add_argument("--from", dest="first", type=date.fromisoformat,
                       help="first impression day (default: the lake's first + --warmup-days)")
        p.add_argument("--to", dest="last", type=date.fromisoformat,
                       help="last impression day (default: the lake's last)")
        p.add_argument("--warmup-days", type=int, default=7,
                       help="days of history before the first training day (default 7)")
        p.add_argument("--eval-days", type=int, default=5, help="holdout: the last N days")
        p.add_argument("--lookback-days", type=int, default=60)
        p.add_argument("--trees", type=int, default=RankerParams.trees)
        p.add_argument("--max-depth", type=int, default=RankerParams.max_depth)
        p.add_argument("--min-samples-leaf", type=int, default=RankerParams.min_samples_leaf)
        p.add_argument("--seed", type=int, default=RankerParams.seed)
        p.add_argument("--tree-tasks", type=int, default=4,
                       help="parts the forest is grown in, in parallel subtasks (default 4)")
        p.add_argument("--name", default=env_default("RANKER_MODEL", "show_ranker"),
                       help="registry name (env RANKER_MODEL, default show_ranker)")
        p.add_argument("--promote", action="store_true", help="make it the production version")
        p.add_argument("--parallelism", type=int,
                       default=int(env_default("TRAIN_RANKER_PARALLELISM", "2")))
        a = p.parse_args(argv)
        days = transformed_partitions(a.lake, "impressions")
        if not days:
            p.error(f"no compacted impressions under {a.lake}: run `onair simulate` and "
                    "compact_lake first")
        first = a.first or date.fromisoformat(days[0]) + timedelta(days=a.warmup_days)
        last = a.last or date.fromisoformat(days[-1])
        if (last - first).days + 1 <= a.eval_days:
            p.error(f"{first} .. {last} leaves no training day before the {a.eval_days} "
                    "evaluation days; simulate more days or lower --eval-days")
        params = RankerParams(trees=a.trees, max_depth=a.max_depth,
                              min_samples_leaf=a.min_samples_leaf, seed=a.seed)
        work = state_dir() / "ranker" / f"{a.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        return cls(a.lake, first, last, a.eval_days, a.lookback_days, params, a.tree_tasks,
                   a.name, a.promote, work,
                   FlinkJobSettings(parallelism=a.parallelism, python_mode="process",
                                    batch=True, bundle_size=1))

    def days(self) -> list[date]:
        return [self.first_day + timedelta(days=i)
                for i in range((self.last_day - self.first_day).days + 1)]

    def split(self) -> tuple[list[str], list[str]]:
        days = [d.isoformat() for d in self.days()]
        return days[:-self.eval_days], days[-self.eval_days:]


class DayRows(MapFunction):
    def __init__(self, lake: str, lookback: int, out: str):
        self.lake, self.lookback, self.out = lake, lookback, out

    def map(self, value):
        from models.ranker_dataset import day_rows

        rows = day_rows(self.lake, date.fromisoformat(value), self.lookback)
        path = Path(self.out) / f"day={value}.parquet"
        rows.to_parquet(path, index=False)
        return json.dumps({"day": value, "rows": len(rows), "positives": int(rows["label"].sum()),
                           "path": str(path)})


class TrainPart(MapFunction):
    """Grows one part of the forest; the part goes to a file (parts are megabytes: too big
    to travel back through the collect sink)."""

    def __init__(self, files: list[str], params: RankerParams, out: str):
        self.files, self.params, self.out = files, params, out

    def map(self, value):
        from models.ranker_training import load_rows, train_part

        seed, trees = value
        x, y = load_rows(self.files)
        path = Path(self.out) / f"part-{seed}.pkl"
        path.write_bytes(pickle.dumps(train_part(x, y, self.params, seed, trees)))
        return str(path)


def build_rows(cfg: TrainRankerConfig) -> list[dict]:
    out = cfg.work_dir / "rows"
    out.mkdir(parents=True, exist_ok=True)
    env = stream_env(cfg.flink)
    days = [d.isoformat() for d in cfg.days()]
    ds = (env.from_collection(days, type_info=Types.STRING()).rebalance()
          .map(DayRows(cfg.lake_root, cfg.lookback_days, str(out)), output_type=Types.STRING()))
    with ds.execute_and_collect(f"{JOB}-rows") as results:
        return sorted((json.loads(r) for r in results), key=lambda r: r["day"])


def grow_forest(cfg: TrainRankerConfig, train_files: list[str]):
    from models.ranker_training import merge_forests, tree_tasks

    env = stream_env(cfg.flink)
    tasks = tree_tasks(cfg.params, cfg.tree_tasks)
    out = cfg.work_dir / "forest"
    out.mkdir(parents=True, exist_ok=True)
    ds = (env.from_collection(tasks, type_info=Types.TUPLE([Types.INT(), Types.INT()]))
          .rebalance()
          .map(TrainPart(train_files, cfg.params, str(out)), output_type=Types.STRING()))
    with ds.execute_and_collect(f"{JOB}-forest") as results:
        parts = [pickle.loads(Path(r).read_bytes()) for r in results]
    return merge_forests(sorted(parts, key=lambda m: m.random_state))


def run(cfg: TrainRankerConfig):
    import pandas as pd

    from models.onnx_export import OnnxScorer, curves_png, parity, to_onnx
    from models.ranker_training import LABELS, evaluate, importances, report_markdown
    from models.registry import Registry, fingerprint_files
    from operators.ranking_features import FEATURE_ORDER

    started = time.monotonic()
    days = build_rows(cfg)
    train_days, eval_days = cfg.split()
    by_day = {d["day"]: d for d in days}
    train_files = [by_day[d]["path"] for d in train_days if by_day[d]["rows"]]
    eval_files = [by_day[d]["path"] for d in eval_days if by_day[d]["rows"]]
    if not train_files or not eval_files:
        raise SystemExit("no impressions on the training or the evaluation days")
    model = grow_forest(cfg, train_files)

    holdout = pd.concat([pd.read_parquet(f) for f in eval_files], ignore_index=True)
    x_hold = holdout[list(FEATURE_ORDER)].to_numpy("float32")
    onnx_bytes = to_onnx(model, len(FEATURE_ORDER))
    scorer = OnnxScorer(onnx_bytes)
    diff = parity(model, scorer, x_hold)
    if diff > PARITY_LIMIT:
        raise SystemExit(f"ONNX parity failed: max |sklearn - onnx| = {diff:.2e} > "
                         f"{PARITY_LIMIT:g}")
    p_hold = scorer(x_hold)[:, 1]
    train_rows = sum(by_day[d]["rows"] for d in train_days)
    metrics = {**evaluate(holdout, p_hold), "onnx_max_abs_diff": diff,
               "train_rows": train_rows,
               "train_positive_rate": sum(by_day[d]["positives"] for d in train_days)
               / max(1, train_rows)}
    files = [Path(by_day[d]["path"]) for d in train_days + eval_days if by_day[d]["rows"]]
    fingerprint = fingerprint_files(files, cfg.work_dir) | {
        "rows": {d["day"]: d["rows"] for d in days}, "lake": cfg.lake_root}
    extra = {"train_days": train_days, "eval_days": eval_days, "tree_tasks": cfg.tree_tasks,
             "rows_dir": str(cfg.work_dir / "rows"),
             "importances": importances(model), "label": "engaged",
             "heuristic": "declared topic first, then pit_listen_count + s_listens"}
    meta = {"name": cfg.name, "params": cfg.params.as_dict(), "metrics": metrics,
            "extra": extra}
    artifacts = {"report.md": report_markdown(meta).encode(),
                 "curves.png": curves_png(holdout["label"].to_numpy() == 1, p_hold,
                                          f"{cfg.name} holdout")}
    registry = Registry()
    mv = registry.register(cfg.name, onnx_bytes, feature_names=list(FEATURE_ORDER),
                           labels=LABELS, params=cfg.params.as_dict(), metrics=metrics,
                           data_fingerprint=fingerprint, extra=extra, artifacts=artifacts)
    if cfg.promote:
        registry.promote(cfg.name, mv.version)
    print(json.dumps({"model": mv.ref, "promoted": cfg.promote,
                      "report": str(registry.version_dir(mv) / "report.md"),
                      "seconds": round(time.monotonic() - started, 1),
                      **{k: metrics[k] for k in ("auc_model", "auc_heuristic", "ndcg10_model",
                                                 "ndcg10_heuristic", "eng10_model",
                                                 "eng10_heuristic", "ndcg10_lift",
                                                 "eng10_lift", "train_rows",
                                                 "holdout_rows")}},
                     default=float))
    return mv


def main(argv: list[str] | None = None) -> None:
    run(TrainRankerConfig.from_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
