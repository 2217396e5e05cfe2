"""``onair pipeline daily --as-of D``: the ranker's daily bounded jobs, in order, with a run
record (see ``onair.pipeline``)."""

from __future__ import annotations

import argparse
import json
import sys

from onair.cli.common import CliError, iso_date


def cmd_daily(args: argparse.Namespace) -> int:
    from onair.pipeline import DailyRun, run_daily
    from onair.submit import SubmitError

    run = DailyRun(as_of=args.as_of, lake=args.lake, name=args.name, seed=args.seed,
                   eval_days=args.eval_days, lookback_days=args.lookback_days,
                   promote=not args.no_promote, train_args=tuple(args.train_args))
    try:
        record = run_daily(run, echo=lambda line: print(line, file=sys.stderr))
    except SubmitError as e:
        raise CliError(f"the daily run stopped (its record is under the state directory's "
                       f"pipeline/runs/): {e}") from None
    print(json.dumps({"run_id": record.run_id, "status": record.status,
                      "seconds": record.seconds, **record.outputs,
                      "steps": {s["job"]: s["seconds"] for s in record.steps}}))
    return 0



def add_parsers(sub) -> None:
    from core.settings import lake_root

    p = sub.add_parser("pipeline", help="batch pipelines: daily = compact_lake -> "
                                        "build_batch_features -> train_ranker -> gate")
    daily = p.add_subparsers(dest="pipeline", required=True).add_parser(
        "daily", help="one day's run: features as of --as-of, a ranker trained on the days "
                      "before, promoted if it passes the gate; prints its run record")
    daily.add_argument("--as-of", type=iso_date, required=True, help="the day served (YYYY-MM-DD)")
    daily.add_argument("--lake", default=lake_root(), help="lake root URI (env ONAIR_LAKE)")
    daily.add_argument("--name", default="show_ranker", help="registry name of the ranker")
    daily.add_argument("--seed", type=int, default=7, help="forest and evaluation seed")
    daily.add_argument("--eval-days", type=int, default=5, help="holdout days (5)")
    daily.add_argument("--lookback-days", type=int, default=60,
                       help="history behind the features (60)")
    daily.add_argument("--no-promote", action="store_true",
                       help="register the candidate, never promote it")
    daily.add_argument("train_args", nargs="*", metavar="-- TRAIN_RANKER_FLAGS",
                       help="more train_ranker flags after --, e.g. -- --w-like 3")
    daily.set_defaults(func=cmd_daily)
