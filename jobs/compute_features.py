"""compute_features: point-in-time features of shows, creators and users, kept in Flink keyed
state and written to the Redis online store.

behavior-events, show-events -> event time and watermarks in the JVM (per partition) -> raw
records batched per partition every ``--batch-ms`` (processing time) -> split: validate (bad records
to dead-letters), route to entities, group by entity bucket -> show and user buckets (keyed)
-> creator buckets (follows, plus plays and live changes derived from shows) -> Redis hashes
``onair:{show,creator,user}:{id}``. Feature definitions: ``models/features/entities.py``; buckets:
``models/features/buckets.py``; the Flink functions: ``operators/features.py``; the
store: ``connectors/feature_store.py``.

    flink run -py jobs/compute_features.py -pyfs core,models,connectors,operators [-- --help]
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from pyflink.common import Types
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment

from connectors.flink_env import run_job
from core.config import connection, group, option, parse
from core.settings import FlinkJobSettings, KafkaSettings, RedisSettings
from core.topics import BEHAVIOR_EVENTS, SHOW_EVENTS
from operators.features import (
    BATCH_TYPE,
    CREATOR_TAG,
    EVENTS_TYPE,
    EntityBucketsFunction,
    SplitBatchFunction,
)
from operators.kafka_io import add_dead_letter_sink, key_by_first_field, raw_batches
from operators.validate import DEAD_LETTER_TAG

JOB = "compute_features"


@dataclass(frozen=True)
class ComputeFeaturesConfig:
    kafka: KafkaSettings = connection(KafkaSettings)
    redis: RedisSettings = connection(RedisSettings)
    # Thread mode: Python sees a few batch records per second, so what process mode saves per
    # record no longer pays, while its bundles hold every hop's input and commit state at each
    # bundle end. Short network buffer timeouts: a batch crosses four exchanges. RocksDB: the
    # state grows with the population, and at a million listeners the heap backend's full
    # checkpoints took seconds and held reflection back (docs/performance.md).
    flink: FlinkJobSettings = group(FlinkJobSettings, python_mode="thread", bundle_size=1000,
                                    bundle_time_ms=100, buffer_timeout_ms=10,
                                    state_backend="rocksdb")
    group_id: str = option("onair-compute-features", "Kafka consumer group",
                           legacy_env=("FEATURES_GROUP_ID",))
    out_of_order_ms: int = option(5000, "bounded out-of-orderness of event time, ms", minimum=0,
                                  legacy_env=("FEATURES_OUT_OF_ORDER_MS",))
    idle_s: int = option(10, "a partition silent this long stops holding back event time, s",
                         minimum=1)
    batch_ms: int = option(100, "raw records reach Python in one batch per partition per this "
                           "many ms", minimum=1, legacy_env=("FEATURES_BATCH_MS",))
    buckets: int = option(16, "entity buckets per stage, the keys of its state: fewer make "
                          "bigger batches, more spread them over subtasks; changing it needs a "
                          "fresh start, not a restore", minimum=1, maximum=4096,
                          legacy_env=("FEATURES_BUCKETS",))
    ended_ttl_s: int = option(86_400, "ended shows expire from Redis after this long, s",
                              minimum=1)
    write_interval_ms: int = option(100, "each stage writes its changed entities to Redis at "
                                    "most once per this many ms, in one round trip; 0 after "
                                    "every batch (--bounded always uses 0)", minimum=0,
                                    legacy_env=("FEATURES_WRITE_INTERVAL_MS",))
    evict_idle_days: int = option(30, "users and creators with nothing the store needs leave "
                                  "state after this many days of event time without events; "
                                  "0 keeps them", minimum=0,
                                  legacy_env=("FEATURES_EVICT_IDLE_DAYS",))
    cache_per_bucket: int = option(20_000, "users and creators each bucket keeps "
                                   "deserialised in the Python worker, least recently used "
                                   "out (read again from Flink state on their next event); 0 "
                                   "keeps them all",
                                   minimum=0)
    gc_freeze_s: int = option(10, "the Python worker collects its young garbage and freezes "
                              "what survives this often, s, so that the collector's passes walk "
                              "only newer objects, not the whole state (models/heap.py); 0 "
                              "leaves CPython's collector as it is", minimum=0)
    evict_ended_days: int = option(7, "ended shows leave state (and Redis) this many days of "
                                   "event time after their end; 0 keeps them", minimum=0,
                                   legacy_env=("FEATURES_EVICT_ENDED_DAYS",))

    def buckets_function(self) -> EntityBucketsFunction:
        # PyFlink 2.0's thread mode fails to convert a state TTL (FileNotFoundError in
        # to_java_state_ttl_config): without one, abandoned keys stay until a savepoint cleanup.
        ttl_days = 0 if self.flink.python_mode == "thread" else 14
        # A bounded run writes after every call: a processing-time timer still pending when
        # the input ends is not fired, and its writes would be lost.
        interval = 0 if self.flink.bounded else self.write_interval_ms
        return EntityBucketsFunction(self.redis, buckets=self.buckets,
                                     write_interval_ms=interval,
                                     ended_ttl_ms=self.ended_ttl_s * 1000,
                                     state_ttl_days=ttl_days,
                                     evict_idle_days=self.evict_idle_days,
                                     cache_per_bucket=self.cache_per_bucket,
                                     gc_freeze_s=self.gc_freeze_s,
                                     evict_ended_days=self.evict_ended_days)


def build_pipeline(env: StreamExecutionEnvironment, t_env: StreamTableEnvironment,
                   cfg: ComputeFeaturesConfig) -> None:
    topics = [BEHAVIOR_EVENTS, SHOW_EVENTS]
    raw = raw_batches(t_env, cfg.kafka, topics, group_id=cfg.group_id,
                      bounded=cfg.flink.bounded, batch_ms=cfg.batch_ms,
                      out_of_order_ms=cfg.out_of_order_ms, idle_s=cfg.idle_s)
    schemas = {cfg.kafka.topic(t.name): t.schema for t in topics}
    split = (raw.process(SplitBatchFunction(JOB, schemas, cfg.buckets), output_type=BATCH_TYPE)
             .name("validate-split").uid(f"{JOB}-validate-split"))
    # Keyed in the JVM (key_by_first_field), not by key_by's Python selector.
    derived = (key_by_first_field(split, EVENTS_TYPE)
               .process(cfg.buckets_function(), output_type=BATCH_TYPE)
               .name("show-user-features").uid(f"{JOB}-show-user-features"))
    creators = (key_by_first_field(split.get_side_output(CREATOR_TAG).union(derived),
                                   EVENTS_TYPE)
                .process(cfg.buckets_function(), output_type=BATCH_TYPE)
                .name("creator-features").uid(f"{JOB}-creator-features"))

    statements = t_env.create_statement_set()
    add_dead_letter_sink(t_env, statements, cfg.kafka, split.get_side_output(DEAD_LETTER_TAG),
                         job=JOB)
    # The creator stage writes to Redis itself and emits nothing; Flink needs a sink anyway.
    t_env.execute_sql("CREATE TEMPORARY TABLE creators_done (k STRING) "
                      "WITH ('connector' = 'blackhole')")
    statements.add_insert("creators_done", t_env.from_data_stream(
        creators.map(lambda v: v[0], output_type=Types.STRING())))
    statements.attach_as_datastream()


def main(argv: list[str] | None = None) -> None:
    cfg = parse(ComputeFeaturesConfig, JOB, argv, __doc__.splitlines()[0])
    run_job(JOB, cfg.flink, lambda env, t_env: build_pipeline(env, t_env, cfg))


if __name__ == "__main__":
    main(sys.argv[1:])
