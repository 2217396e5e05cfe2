"""compute_features: point-in-time features of shows, creators and users, kept in Flink keyed
state and written to the Redis online store.

behavior-events, show-events -> event time and watermarks in the JVM (per partition) -> raw
records batched per partition every ``--batch-ms`` (processing time) -> split: validate (bad records
to dead-letters), route to entities, group by entity bucket -> show and user buckets (keyed)
-> creator buckets (follows, plus plays and live changes derived from shows) -> Redis hashes
``onair:{show,creator,user}:{id}``. Feature definitions: ``operators/features.py``; buckets:
``operators/entity_buckets.py``; the Flink functions: ``operators/feature_functions.py``; the
store: ``connectors/feature_store.py``.

    flink run -py jobs/compute_features.py -pyfs operators,models,connectors [-- --help]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from pyflink.common import Types
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment

from connectors.flink_env import FlinkJobSettings, run_job
from connectors.flink_io import add_dead_letter_sink, key_by_first_field, raw_batches
from connectors.job_config import add_flink_flags, env_default, flink_settings
from connectors.settings import KafkaSettings, RedisSettings
from connectors.topics import BEHAVIOR_EVENTS, SHOW_EVENTS
from operators.feature_functions import (
    BATCH_TYPE,
    CREATOR_TAG,
    EVENTS_TYPE,
    EntityBucketsFunction,
    SplitBatchFunction,
)
from operators.validate_function import DEAD_LETTER_TAG

JOB = "compute_features"


@dataclass(frozen=True)
class ComputeFeaturesConfig:
    kafka: KafkaSettings
    redis: RedisSettings
    flink: FlinkJobSettings
    group_id: str = "onair-compute-features"
    out_of_order_ms: int = 5000
    idle_s: int = 10
    batch_ms: int = 100
    buckets: int = 16
    ended_ttl_s: int = 86_400
    write_interval_ms: int = 100
    evict_idle_days: int = 30
    evict_ended_days: int = 7

    @classmethod
    def from_args(cls, argv: list[str] | None = None) -> ComputeFeaturesConfig:
        parser = argparse.ArgumentParser(prog=JOB, description=__doc__.splitlines()[0])
        # Thread mode: Python sees a few batch records per second, so what process mode
        # saves per record no longer pays, and its bundles cost latency and throughput both:
        # each Python hop holds its input up to a bundle (bundle time), and every bundle end
        # commits the state it touched (README, Performance). Short network buffer timeouts:
        # a batch crosses four exchanges between Kafka and Redis.
        add_flink_flags(parser, JOB, python_mode="thread", bundle_size=1000,
                        bundle_time_ms=100, buffer_timeout_ms=10)
        parser.add_argument("--group-id", default=env_default("FEATURES_GROUP_ID", cls.group_id),
                            help="Kafka consumer group (env FEATURES_GROUP_ID)")
        parser.add_argument("--out-of-order-ms", type=int,
                            default=int(env_default("FEATURES_OUT_OF_ORDER_MS", "5000")),
                            help="bounded out-of-orderness of event time "
                                 "(env FEATURES_OUT_OF_ORDER_MS, default 5000)")
        parser.add_argument("--idle-s", type=int, default=cls.idle_s,
                            help="a partition silent this long stops holding back event time")
        parser.add_argument("--batch-ms", type=int,
                            default=int(env_default("FEATURES_BATCH_MS", str(cls.batch_ms))),
                            help="raw records reach Python in one batch per partition per this "
                                 f"many ms (env FEATURES_BATCH_MS, default {cls.batch_ms})")
        parser.add_argument("--buckets", type=int,
                            default=int(env_default("FEATURES_BUCKETS", str(cls.buckets))),
                            help="entity buckets per stage, the keys of its state: fewer make "
                                 "bigger batches, more spread them over subtasks; changing it "
                                 "needs a fresh start, not a restore "
                                 f"(env FEATURES_BUCKETS, default {cls.buckets})")
        parser.add_argument("--ended-ttl-s", type=int, default=cls.ended_ttl_s,
                            help="ended shows expire from Redis after this long")
        parser.add_argument("--evict-idle-days", type=int,
                            default=int(env_default("FEATURES_EVICT_IDLE_DAYS",
                                                    str(cls.evict_idle_days))),
                            help="users and creators with nothing the store needs (no follows, "
                                 "nothing live, no plays in the window) leave state after this "
                                 "many days of event time without events; 0 keeps them "
                                 f"(env FEATURES_EVICT_IDLE_DAYS, default {cls.evict_idle_days})")
        parser.add_argument("--evict-ended-days", type=int,
                            default=int(env_default("FEATURES_EVICT_ENDED_DAYS",
                                                    str(cls.evict_ended_days))),
                            help="ended shows leave state (and Redis) this many days of event "
                                 "time after their end (env FEATURES_EVICT_ENDED_DAYS, default "
                                 f"{cls.evict_ended_days})")
        parser.add_argument("--write-interval-ms", type=int,
                            default=int(env_default("FEATURES_WRITE_INTERVAL_MS",
                                                    str(cls.write_interval_ms))),
                            help="each stage's worker writes its changed entities to Redis at "
                                 "most once per this many ms, in one round trip; 0 after every "
                                 "batch (env FEATURES_WRITE_INTERVAL_MS, default "
                                 f"{cls.write_interval_ms}; --bounded always uses 0)")
        args = parser.parse_args(argv)
        if args.buckets < 1 or args.batch_ms < 1 or args.write_interval_ms < 0:
            parser.error("--buckets and --batch-ms must be at least 1, --write-interval-ms "
                         "at least 0")
        return cls(KafkaSettings.from_env(), RedisSettings.from_env(), flink_settings(args),
                   args.group_id, args.out_of_order_ms, args.idle_s, args.batch_ms,
                   args.buckets, args.ended_ttl_s, args.write_interval_ms,
                   args.evict_idle_days, args.evict_ended_days)

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
    cfg = ComputeFeaturesConfig.from_args(argv)
    run_job(JOB, cfg.flink, lambda env, t_env: build_pipeline(env, t_env, cfg))


if __name__ == "__main__":
    main(sys.argv[1:])
