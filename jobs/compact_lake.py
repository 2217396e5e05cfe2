"""compact_lake: the lake's raw zone (JSON lines) into the transformed zone (Parquet).

Bounded, BATCH execution. One record per (table, date) partition; subtasks compact whole
partitions (``connectors.lake_compaction``: schema enforced, deduplicated by id, idempotent),
so memory is bounded by the largest partition, never by the lake. Prints a JSON summary
(``--verbose``: one line per partition first).

    onair submit --attached compact_lake [--tables behavior_events,...] [--from D] [--to D]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

from pyflink.common import Types
from pyflink.datastream import MapFunction

from connectors.flink_env import FlinkJobSettings, stream_env
from connectors.job_config import env_default
from connectors.settings import lake_root

JOB = "compact_lake"


@dataclass(frozen=True)
class CompactLakeConfig:
    lake_root: str
    tables: tuple[str, ...]
    date_from: str | None
    date_to: str | None
    flink: FlinkJobSettings
    verbose: bool = False

    @classmethod
    def from_args(cls, argv: list[str] | None = None) -> CompactLakeConfig:
        from connectors.lake import LAKE_TABLES

        parser = argparse.ArgumentParser(prog=JOB, description=__doc__.splitlines()[0])
        parser.add_argument("--lake", default=lake_root(),
                            help="lake root URI (env ONAIR_LAKE, default .onair/lake)")
        parser.add_argument("--tables", default=",".join(LAKE_TABLES),
                            help=f"comma-separated tables (default all: {','.join(LAKE_TABLES)})")
        parser.add_argument("--from", dest="date_from", help="first date to compact (YYYY-MM-DD)")
        parser.add_argument("--to", dest="date_to", help="last date to compact (inclusive)")
        parser.add_argument("--verbose", action="store_true",
                            help="print one JSON line per partition before the summary")
        parser.add_argument("--parallelism", type=int,
                            default=int(env_default("COMPACT_LAKE_PARALLELISM", "2")),
                            help="subtasks (env COMPACT_LAKE_PARALLELISM, default 2)")
        a = parser.parse_args(argv)
        tables = tuple(t for t in a.tables.split(",") if t)
        unknown = [t for t in tables if t not in LAKE_TABLES]
        if unknown:
            parser.error(f"unknown table(s) {', '.join(unknown)}; known: {', '.join(LAKE_TABLES)}")
        # Process mode: each subtask is a separate Python process, so pyarrow's work on two
        # partitions runs truly in parallel (thread mode shares one interpreter).
        return cls(a.lake, tables, a.date_from, a.date_to,
                   FlinkJobSettings(parallelism=a.parallelism, python_mode="process",
                                    batch=True, bundle_size=1), a.verbose)


class CompactPartition(MapFunction):
    def __init__(self, lake: str):
        self.lake = lake

    def map(self, value):
        from connectors.lake import lake_table
        from connectors.lake_compaction import compact_partition

        table, dt = value
        return json.dumps(compact_partition(self.lake, lake_table(table), dt).as_dict())


def partitions(cfg: CompactLakeConfig) -> list[tuple[str, str]]:
    from connectors.lake_compaction import raw_partitions

    return [(t, dt) for t in cfg.tables for dt in raw_partitions(cfg.lake_root, t)
            if (cfg.date_from is None or dt >= cfg.date_from)
            and (cfg.date_to is None or dt <= cfg.date_to)]


def run(cfg: CompactLakeConfig) -> dict:
    work = partitions(cfg)
    summary = {"partitions": len(work), "rows_in": 0, "rejected": 0, "duplicates": 0,
               "rows_out": 0}
    if not work:
        print(json.dumps(summary | {"note": f"no raw partitions under {cfg.lake_root}"}))
        return summary
    env = stream_env(cfg.flink)
    results = (env.from_collection(work, type_info=Types.TUPLE([Types.STRING(), Types.STRING()]))
               .rebalance()
               .map(CompactPartition(cfg.lake_root), output_type=Types.STRING()))
    with results.execute_and_collect(JOB) as lines:
        for line in lines:
            if cfg.verbose:
                print(line)
            r = json.loads(line)
            for k in ("rows_in", "rejected", "duplicates", "rows_out"):
                summary[k] += r[k]
    print(json.dumps(summary))
    return summary


def main(argv: list[str] | None = None) -> None:
    run(CompactLakeConfig.from_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
