"""compact_lake: the lake's raw zone (JSON lines) into the transformed zone (Parquet).

Bounded, BATCH execution. One record per (table, date) partition; subtasks compact whole
partitions (``connectors.lake_compaction``: schema enforced, deduplicated by id, idempotent),
so memory is bounded by the largest partition, never by the lake. Prints a JSON summary
(``--verbose``: one line per partition first).

    onair submit --attached compact_lake [--tables behavior_events,...] [--from D] [--to D]
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

from pyflink.common import Types
from pyflink.datastream import DataStream, StreamExecutionEnvironment

from connectors.flink_env import stream_env
from connectors.lake import LAKE_TABLES
from core.config import group, option, parse
from core.settings import BatchJobSettings, lake_root
from operators.lake import CompactPartition

JOB = "compact_lake"


@dataclass(frozen=True)
class CompactLakeConfig:
    lake: str | None = option(None, "lake root URI (default $ONAIR_LAKE, else the state "
                              "directory's lake/)")
    tables: tuple[str, ...] = option(tuple(LAKE_TABLES),
                                     "comma-separated tables to compact")
    date_from: str | None = option(None, "first date to compact (YYYY-MM-DD)", flag="--from")
    date_to: str | None = option(None, "last date to compact, inclusive (YYYY-MM-DD)",
                                 flag="--to")
    verbose: bool = option(False, "print one JSON line per partition before the summary")
    # Process mode: each subtask is a separate Python process, so pyarrow's work on two
    # partitions runs truly in parallel (thread mode shares one interpreter).
    flink: BatchJobSettings = group(BatchJobSettings)

    def __post_init__(self) -> None:
        object.__setattr__(self, "lake", self.lake or lake_root())
        unknown = [t for t in self.tables if t not in LAKE_TABLES]
        if unknown:
            raise ValueError(f"unknown table(s) {', '.join(unknown)}; "
                             f"known: {', '.join(LAKE_TABLES)}")


def partitions(cfg: CompactLakeConfig) -> list[tuple[str, str]]:
    from connectors.lake_compaction import raw_partitions

    return [(t, dt) for t in cfg.tables for dt in raw_partitions(cfg.lake, t)
            if (cfg.date_from is None or dt >= cfg.date_from)
            and (cfg.date_to is None or dt <= cfg.date_to)]


def build_pipeline(env: StreamExecutionEnvironment, cfg: CompactLakeConfig,
                   work: list[tuple[str, str]]) -> DataStream:
    """One JSON summary line per compacted partition."""
    return (env.from_collection(work, type_info=Types.TUPLE([Types.STRING(), Types.STRING()]))
            .rebalance()
            .map(CompactPartition(cfg.lake), output_type=Types.STRING()))


def run(cfg: CompactLakeConfig) -> dict:
    work = partitions(cfg)
    summary = {"partitions": len(work), "rows_in": 0, "rejected": 0, "duplicates": 0,
               "rows_out": 0}
    if not work:
        print(json.dumps(summary | {"note": f"no raw partitions under {cfg.lake}"}))
        return summary
    results = build_pipeline(stream_env(cfg.flink.runtime()), cfg, work)
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
    run(parse(CompactLakeConfig, JOB, argv, __doc__.splitlines()[0]))


if __name__ == "__main__":
    main(sys.argv[1:])
