"""build_batch_features: the 21 batch features as of a day, into the offline and online stores.

Bounded, BATCH execution over the transformed zone (run ``compact_lake`` first):

    blocks of days in D-L .. D-1 --rebalance--> BlockPartials (pyarrow read + pandas partial
    aggregates, split by entity shard) --key_by(entity:shard)--> MergeShard (merge partials
    as they come, finalize at the end of the key, write offline Parquet + online Redis)

Few, heavy records cross Flink (one per block of days x entity shard, holding the block's
partial aggregates for the shard), so the per-record cost of Python in Flink stays out of the
way and the arithmetic runs vectorised in pandas. Memory: a BlockPartials subtask holds one
block (``--days-per-task`` partitions); a MergeShard subtask holds one shard's merged partials
(bounded by the number of keys, not of events).
When every shard is written, the driver marks the offline run complete and moves the online
pointer (``connectors.batch_store``).

    onair submit --attached build_batch_features --as-of 2026-10-31 [--lookback-days 60]
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import date, timedelta

from pyflink.common import Types
from pyflink.datastream import DataStream, StreamExecutionEnvironment

from connectors.flink_env import stream_env
from core.config import group, option, parse
from core.settings import BatchJobSettings, RedisSettings, lake_root
from operators.batch_features import BlockPartials, MergeShard

JOB = "build_batch_features"


@dataclass(frozen=True)
class BatchFeaturesConfig:
    as_of: date | None = option(None, "features as of the start of this day (UTC): events "
                                "before it (YYYY-MM-DD)", required=True)
    lookback_days: int = option(60, "days of events the features look back over", minimum=1,
                                maximum=3650)
    lake: str | None = option(None, "lake root URI (default $ONAIR_LAKE, else the state "
                              "directory's lake/)")
    shards: int = option(0, "entity shards per entity kind; 0 is 4 x parallelism (Flink "
                         "places keys by hash: more, smaller shards even out the subtasks' "
                         "share of the heavy user shards)", minimum=0, maximum=4096)
    days_per_task: int = option(10, "days one subtask reads and aggregates at once: its "
                                "memory is bounded by this many partitions", minimum=1)
    run_id: str | None = option(None, "id of this run's offline and online data (default "
                                "time-based and unique)")
    online: bool = option(True, "also load the online store (Redis); --no-online writes the "
                          "offline store only")
    # Process mode: pandas work of two subtasks runs in two interpreters, truly parallel.
    flink: BatchJobSettings = group(BatchJobSettings)

    def __post_init__(self) -> None:
        object.__setattr__(self, "lake", self.lake or lake_root())
        object.__setattr__(self, "shards", self.shards or 4 * self.flink.parallelism)
        if self.as_of and not self.run_id:
            object.__setattr__(self, "run_id", f"{self.as_of:%Y%m%d}-{time.strftime('%H%M%S')}"
                                               f"-{uuid.uuid4().hex[:6]}")

    def days(self) -> list[tuple[str, int]]:
        """(date, days_ago) of every day in the lookback window, newest first."""
        return [((self.as_of - timedelta(days=back)).isoformat(), back)
                for back in range(1, self.lookback_days + 1)]


def build_pipeline(env: StreamExecutionEnvironment, cfg: BatchFeaturesConfig,
                   blocks: list[str]) -> DataStream:
    """Blocks of days -> one JSON line per entity shard written."""
    redis = RedisSettings.from_env() if cfg.online else None
    return (
        env.from_collection(blocks, type_info=Types.STRING())
        .rebalance()
        .flat_map(BlockPartials(cfg.lake, cfg.lookback_days, cfg.shards),
                  output_type=Types.TUPLE([Types.STRING(), Types.PICKLED_BYTE_ARRAY()]))
        .key_by(lambda r: r[0], key_type=Types.STRING())
        .process(MergeShard(cfg.lake, cfg.as_of.isoformat(), cfg.run_id, redis),
                 output_type=Types.STRING())
    )


def count_events(cfg: BatchFeaturesConfig) -> dict[str, int]:
    """Rows the job reads, per table (from Parquet footers: no data is read)."""
    import pyarrow.parquet as pq

    from connectors.lake_compaction import partition_file

    counts = {"behavior_events": 0, "impressions": 0}
    for dt, _ in cfg.days():
        for table in counts:
            f = partition_file(cfg.lake, table, dt)
            if f.exists():
                counts[table] += pq.ParquetFile(f).metadata.num_rows
    return counts


def run(cfg: BatchFeaturesConfig) -> dict:
    from connectors.batch_store import BatchOnlineStore, mark_offline_complete, offline_root
    from connectors.lake_compaction import transformed_partitions

    present = set(transformed_partitions(cfg.lake, "behavior_events"))
    days = [d for d in cfg.days() if d[0] in present]
    if not days:
        raise SystemExit(f"no compacted behaviour events between "
                         f"{cfg.days()[-1][0]} and {cfg.days()[0][0]} under {cfg.lake}; "
                         "run `onair simulate` and `compact_lake` first")
    started = time.monotonic()
    blocks = [json.dumps(days[i:i + cfg.days_per_task])
              for i in range(0, len(days), cfg.days_per_task)]
    results = build_pipeline(stream_env(cfg.flink.runtime()), cfg, blocks)
    read = count_events(cfg)
    rows: dict[str, int] = {}
    shards = []
    with results.execute_and_collect(JOB) as lines:
        for line in lines:
            shard = json.loads(line)
            shards.append(shard)
            for table, n in shard["rows"].items():
                rows[table] = rows.get(table, 0) + n
    summary = {"as_of": cfg.as_of.isoformat(), "lookback_days": cfg.lookback_days,
               "run_id": cfg.run_id, "days_read": len(days),
               "events": sum(read.values()), "events_by_table": read,
               "shards_written": len(shards), "rows": rows}
    mark_offline_complete(offline_root(cfg.lake), cfg.as_of.isoformat(), cfg.run_id,
                          summary)
    if cfg.online:
        from connectors.lake_compaction import declared_topics

        store = BatchOnlineStore()
        summary["declared_loaded"] = store.load_declared(
            cfg.run_id, declared_topics(cfg.lake, cfg.as_of))
        summary["online_pointer"] = store.publish(cfg.run_id, cfg.as_of.isoformat())
    summary["seconds"] = round(time.monotonic() - started, 2)
    print(json.dumps(summary))
    return summary


def main(argv: list[str] | None = None) -> None:
    run(parse(BatchFeaturesConfig, JOB, argv, __doc__.splitlines()[0]))


if __name__ == "__main__":
    main(sys.argv[1:])
