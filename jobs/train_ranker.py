"""train_ranker: the show ranker from the impression log, registered with its lineage.

Bounded, BATCH, two Flink stages run by one driver:

1. training rows, one day per record (``connectors.ranker_dataset.day_rows``: each impression
   joined with the batch features as of its day and its show's streaming features as of its
   time), written as Parquet under the run folder;
2. the Random Forest grown in ``--tree-tasks`` parts, one per record, each with its own seed,
   on the training days' rows; the driver merges the trees into one forest.

Then: evaluation on the last ``--eval-days`` days against the declared-topics heuristic
(off-policy estimates per objective with bootstrap intervals; AUC, NDCG@10, engagement@10 as
diagnostics), ONNX export with parity checked on the holdout (max |diff| <= 1e-5 or
the job fails), report (markdown + ROC/PR PNG), registry entry; ``--promote`` moves
``production`` if the candidate passes the promotion gate (``models.ranking.gate``: a utility
lift over the heuristic and over the production model with its interval above zero), and
says why not otherwise.

    onair submit --attached train_ranker --lake URI [--from D --to D] [--promote]
"""

from __future__ import annotations

import json
import pickle
import sys
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from pyflink.common import Types
from pyflink.datastream import DataStream, StreamExecutionEnvironment

from connectors.flink_env import stream_env
from core.config import group, option, parse
from core.settings import BatchJobSettings, state_dir
from models.ranking.training import RankerParams, Utility
from operators.ranker_training import DayRows, TrainPart

JOB = "train_ranker"
PARITY_LIMIT = 1e-5


@dataclass(frozen=True)
class TrainRankerConfig:
    lake: str | None = option(None, "lake root URI (default $ONAIR_LAKE, else the state "
                              "directory's lake/)")
    first_day: date | None = option(None, "first impression day (default: the lake's first "
                                    "+ --warmup-days)", flag="--from")
    last_day: date | None = option(None, "last impression day (default: the lake's last)",
                                   flag="--to")
    warmup_days: int = option(7, "days of history before the first training day", minimum=0)
    eval_days: int = option(5, "holdout: the last N days", minimum=1)
    lookback_days: int = option(60, "days of history behind each day's features", minimum=1)
    trees: int = option(RankerParams.trees, "trees in the forest", minimum=1)
    max_depth: int = option(RankerParams.max_depth, "deepest a tree grows", minimum=1)
    min_samples_leaf: int = option(RankerParams.min_samples_leaf, "fewest rows in a leaf",
                                   minimum=1)
    seed: int = option(RankerParams.seed, "random seed of the forest")
    w_minute: float = option(Utility.minute, "utility of a minute of listening (in the "
                             "session or brought later by a notification or a follow)",
                             minimum=0)
    w_like: float = option(Utility.like, "utility of a like, in minutes", minimum=0)
    w_follow: float = option(Utility.follow, "utility of a follow, in minutes", minimum=0)
    w_notify: float = option(Utility.notify, "utility of notifications turned on, in minutes",
                             minimum=0)
    w_listen: float = option(Utility.listen, "utility of a listen started, in minutes",
                             minimum=0)
    eval_seed: int = option(0, "seed of the evaluation's random tie-breaks and bootstrap")
    tree_tasks: int = option(4, "parts the forest is grown in, in parallel subtasks",
                             minimum=1)
    name: str = option("show_ranker", "registry name", legacy_env=("RANKER_MODEL",))
    promote: bool = option(False, "make it the production version")
    flink: BatchJobSettings = group(BatchJobSettings)

    def params(self) -> RankerParams:
        return RankerParams(trees=self.trees, max_depth=self.max_depth,
                            min_samples_leaf=self.min_samples_leaf, seed=self.seed,
                            utility=Utility(minute=self.w_minute, like=self.w_like,
                                            follow=self.w_follow, notify=self.w_notify,
                                            listen=self.w_listen))


@dataclass(frozen=True)
class Plan:
    """The days one run trains and evaluates on, chosen from the lake, and its work folder."""

    first_day: date
    last_day: date
    eval_days: int
    work_dir: Path

    @classmethod
    def of(cls, cfg: TrainRankerConfig) -> Plan:
        from connectors.lake_compaction import transformed_partitions

        days = transformed_partitions(cfg.lake, "impressions")
        if not days:
            raise ValueError(f"no compacted impressions under {cfg.lake}: run `onair simulate` "
                             "and compact_lake first")
        first = cfg.first_day or date.fromisoformat(days[0]) + timedelta(days=cfg.warmup_days)
        last = cfg.last_day or date.fromisoformat(days[-1])
        if (last - first).days + 1 <= cfg.eval_days:
            raise ValueError(f"{first} .. {last} leaves no training day before the "
                             f"{cfg.eval_days} evaluation days; simulate more days or lower "
                             "--eval-days")
        work = state_dir() / "ranker" / f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        return cls(first, last, cfg.eval_days, work)

    def days(self) -> list[date]:
        return [self.first_day + timedelta(days=i)
                for i in range((self.last_day - self.first_day).days + 1)]

    def split(self) -> tuple[list[str], list[str]]:
        days = [d.isoformat() for d in self.days()]
        return days[:-self.eval_days], days[-self.eval_days:]


def build_pipeline(env: StreamExecutionEnvironment, cfg: TrainRankerConfig, plan: Plan,
                   out: Path) -> DataStream:
    """Stage one: each day's training rows to a Parquet file, a JSON line per day."""
    days = [d.isoformat() for d in plan.days()]
    return (env.from_collection(days, type_info=Types.STRING()).rebalance()
            .map(DayRows(cfg.lake, cfg.lookback_days, str(out)), output_type=Types.STRING()))


def build_forest_pipeline(env: StreamExecutionEnvironment, cfg: TrainRankerConfig,
                          train_files: list[str], out: Path) -> DataStream:
    """Stage two: parts of the forest grown in parallel, a file per part."""
    from models.ranking.training import tree_tasks

    tasks = tree_tasks(cfg.params(), cfg.tree_tasks)
    return (env.from_collection(tasks, type_info=Types.TUPLE([Types.INT(), Types.INT()]))
            .rebalance()
            .map(TrainPart(train_files, cfg.params(), str(out)), output_type=Types.STRING()))


def build_rows(cfg: TrainRankerConfig, plan: Plan) -> list[dict]:
    out = plan.work_dir / "rows"
    out.mkdir(parents=True, exist_ok=True)
    ds = build_pipeline(stream_env(cfg.flink.runtime()), cfg, plan, out)
    with ds.execute_and_collect(f"{JOB}-rows") as results:
        return sorted((json.loads(r) for r in results), key=lambda r: r["day"])


def grow_forest(cfg: TrainRankerConfig, plan: Plan, train_files: list[str]):
    from models.ranking.training import merge_forests

    out = plan.work_dir / "forest"
    out.mkdir(parents=True, exist_ok=True)
    ds = build_forest_pipeline(stream_env(cfg.flink.runtime()), cfg, train_files, out)
    with ds.execute_and_collect(f"{JOB}-forest") as results:
        parts = [pickle.loads(Path(r).read_bytes()) for r in results]
    return merge_forests(sorted(parts, key=lambda m: m.random_state))


def run(cfg: TrainRankerConfig, plan: Plan):
    import pandas as pd

    from models.onnx_export import OnnxScorer, curves_png, parity, to_onnx
    from models.ranking.scoring import FEATURE_ORDER
    from models.ranking.training import LABELS, evaluate, importances, report_markdown
    from models.registry import Registry, fingerprint_files

    started = time.monotonic()
    days = build_rows(cfg, plan)
    train_days, eval_days = plan.split()
    by_day = {d["day"]: d for d in days}
    train_files = [by_day[d]["path"] for d in train_days if by_day[d]["rows"]]
    eval_files = [by_day[d]["path"] for d in eval_days if by_day[d]["rows"]]
    if not train_files or not eval_files:
        raise SystemExit("no impressions on the training or the evaluation days")
    model = grow_forest(cfg, plan, train_files)

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
    evaluation = evaluate(holdout, p_hold, cfg.params().utility, cfg.eval_seed)
    registry = Registry()
    gate = gate_against_production(registry, cfg, holdout, x_hold, p_hold)
    offpolicy = evaluation.pop("offpolicy", None)
    metrics = {**evaluation, "onnx_max_abs_diff": diff,
               "train_rows": train_rows,
               "train_positive_rate": sum(by_day[d]["positives"] for d in train_days)
               / max(1, train_rows)}
    files = [Path(by_day[d]["path"]) for d in train_days + eval_days if by_day[d]["rows"]]
    fingerprint = fingerprint_files(files, plan.work_dir) | {
        "rows": {d["day"]: d["rows"] for d in days}, "lake": cfg.lake}
    extra = {"train_days": train_days, "eval_days": eval_days, "tree_tasks": cfg.tree_tasks,
             "rows_dir": str(plan.work_dir / "rows"),
             "importances": importances(model), "offpolicy": offpolicy, "gate": gate,
             "objective": "utility (value-weighted classifier: odds = expected utility)",
             "heuristic": "declared topic first, then pit_listen_count + s_listens"}
    meta = {"name": cfg.name, "params": cfg.params().as_dict(), "metrics": metrics,
            "extra": extra}
    artifacts = {"report.md": report_markdown(meta).encode(),
                 "curves.png": curves_png(holdout["label"].to_numpy() == 1, p_hold,
                                          f"{cfg.name} holdout")}
    mv = registry.register(cfg.name, onnx_bytes, feature_names=list(FEATURE_ORDER),
                           labels=LABELS, params=cfg.params().as_dict(), metrics=metrics,
                           data_fingerprint=fingerprint, extra=extra, artifacts=artifacts)
    promoted = cfg.promote and gate["promote"]
    if promoted:
        registry.promote(cfg.name, mv.version)
    elif cfg.promote:
        print(f"{JOB}: {mv.ref} registered, NOT promoted: " + "; ".join(gate["reasons"]),
              file=sys.stderr)
    print(json.dumps({"model": mv.ref, "promoted": promoted, "gate": gate["reasons"] or "passed",
                      "report": str(registry.version_dir(mv) / "report.md"),
                      "seconds": round(time.monotonic() - started, 1),
                      **{k: v for k, v in metrics.items()
                         if k.startswith(("ips_", "pbm_")) and k.endswith("_lift")},
                      **{k: metrics[k] for k in ("auc_model", "auc_heuristic", "train_rows",
                                                 "holdout_rows")}},
                     default=float))
    return mv


def gate_against_production(registry, cfg: TrainRankerConfig, holdout, x_hold,
                            p_hold) -> dict:
    """The promotion gate's verdict on this candidate: against the heuristic, and against
    the production model scored on the same holdout rows when there is one."""
    from models.onnx_export import OnnxScorer
    from models.ranking.gate import promotion_gate, refused
    from models.ranking.scoring import FEATURE_ORDER
    current = registry.find(cfg.name)
    production = None
    if current is not None:
        if current.feature_names != list(FEATURE_ORDER):
            return refused(current.ref)
        production = OnnxScorer(registry.verify(current))(x_hold)[:, 1]
    return promotion_gate(holdout, p_hold, production, cfg.params().utility, cfg.eval_seed,
                          current.ref if current else None)


def main(argv: list[str] | None = None) -> None:
    cfg = parse(TrainRankerConfig, JOB, argv, __doc__.splitlines()[0])
    try:
        plan = Plan.of(cfg)
    except ValueError as e:
        sys.exit(f"{JOB}: {e}")
    run(cfg, plan)


if __name__ == "__main__":
    main(sys.argv[1:])
