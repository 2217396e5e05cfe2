"""compute_features: point-in-time features of shows, creators and users, kept in Flink keyed
state and written to the Redis online store.

behavior-events, show-events -> validate (bad records to dead-letters) -> event time with
bounded out-of-orderness -> shows and users (keyed) -> creators (keyed; follows, plus plays and
live changes derived from shows) -> Redis hashes ``onair:{show,creator,user}:{id}``.
Feature definitions: ``operators/features.py``; the store: ``connectors/feature_store.py``.

    flink run -py jobs/compute_features.py -pyfs operators,models,connectors [-- --help]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from pyflink.common import Duration, Types, WatermarkStrategy
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment

from connectors.flink_env import FlinkJobSettings, run_job
from connectors.flink_io import add_dead_letter_sink, key_by_first_field, validated_messages
from connectors.job_config import add_flink_flags, env_default, flink_settings
from connectors.settings import KafkaSettings, RedisSettings
from connectors.topics import BEHAVIOR_EVENTS, SHOW_EVENTS
from operators.feature_functions import (
    ENTITY_TYPE,
    EVENT_TYPE,
    EntityFeaturesFunction,
    RouteEventsFunction,
)

JOB = "compute_features"


class EventTime(TimestampAssigner):
    def extract_timestamp(self, value, record_timestamp: int) -> int:
        return value["ts"]


@dataclass(frozen=True)
class ComputeFeaturesConfig:
    kafka: KafkaSettings
    redis: RedisSettings
    flink: FlinkJobSettings
    group_id: str = "onair-compute-features"
    out_of_order_ms: int = 5000
    idle_s: int = 10
    batch_size: int = 500
    flush_ms: int = 50
    ended_ttl_s: int = 86_400

    @classmethod
    def from_args(cls, argv: list[str] | None = None) -> ComputeFeaturesConfig:
        parser = argparse.ArgumentParser(prog=JOB, description=__doc__.splitlines()[0])
        # Whole entity states are written back to the JVM once per key per bundle: larger
        # bundles measured 2.2x faster (2,537 vs 1,128 events/s); bundles still end every
        # second (python.fn-execution.bundle.time), which bounds the added latency.
        add_flink_flags(parser, JOB, python_mode="process", bundle_size=20000)
        parser.add_argument("--group-id", default=env_default("FEATURES_GROUP_ID", cls.group_id),
                            help="Kafka consumer group (env FEATURES_GROUP_ID)")
        parser.add_argument("--out-of-order-ms", type=int,
                            default=int(env_default("FEATURES_OUT_OF_ORDER_MS", "5000")),
                            help="bounded out-of-orderness of event time "
                                 "(env FEATURES_OUT_OF_ORDER_MS, default 5000)")
        parser.add_argument("--idle-s", type=int, default=cls.idle_s,
                            help="a partition silent this long stops holding back event time")
        parser.add_argument("--batch-size", type=int,
                            default=int(env_default("FEATURES_BATCH_SIZE", "500")),
                            help="Redis writes per pipelined batch (env FEATURES_BATCH_SIZE)")
        parser.add_argument("--flush-ms", type=int,
                            default=int(env_default("FEATURES_FLUSH_MS", "50")),
                            help="longest a feature change waits for its batch "
                                 "(env FEATURES_FLUSH_MS, default 50)")
        parser.add_argument("--ended-ttl-s", type=int, default=cls.ended_ttl_s,
                            help="ended shows expire from Redis after this long")
        args = parser.parse_args(argv)
        return cls(KafkaSettings.from_env(), RedisSettings.from_env(), flink_settings(args),
                   args.group_id, args.out_of_order_ms, args.idle_s, args.batch_size,
                   args.flush_ms, args.ended_ttl_s)

    def features_function(self) -> EntityFeaturesFunction:
        # PyFlink 2.0's thread mode fails to convert a state TTL (FileNotFoundError in
        # to_java_state_ttl_config): without one, abandoned keys stay until a savepoint cleanup.
        ttl_days = 0 if self.flink.python_mode == "thread" else 14
        return EntityFeaturesFunction(self.redis, batch_size=self.batch_size,
                                      flush_ms=self.flush_ms,
                                      ended_ttl_ms=self.ended_ttl_s * 1000,
                                      state_ttl_days=ttl_days)


def build_pipeline(env: StreamExecutionEnvironment, t_env: StreamTableEnvironment,
                   cfg: ComputeFeaturesConfig) -> None:
    valid, dead = validated_messages(t_env, cfg.kafka, [BEHAVIOR_EVENTS, SHOW_EVENTS], job=JOB,
                                     group_id=cfg.group_id, bounded=cfg.flink.bounded)
    watermarks = (WatermarkStrategy
                  .for_bounded_out_of_orderness(Duration.of_millis(cfg.out_of_order_ms))
                  .with_timestamp_assigner(EventTime())
                  .with_idleness(Duration.of_seconds(cfg.idle_s)))
    events = valid.assign_timestamps_and_watermarks(watermarks)

    # Keyed in the JVM (key_by_first_field), not by key_by's Python selector.
    routed = events.flat_map(RouteEventsFunction(("show", "user")), output_type=ENTITY_TYPE)
    derived = (key_by_first_field(routed, EVENT_TYPE)
               .process(cfg.features_function(), output_type=ENTITY_TYPE)
               .name("show-user-features").uid(f"{JOB}-show-user-features"))
    creator_events = (events.flat_map(RouteEventsFunction(("creator",)), output_type=ENTITY_TYPE)
                      .union(derived))
    creators = (key_by_first_field(creator_events, EVENT_TYPE)
                .process(cfg.features_function(), output_type=ENTITY_TYPE)
                .name("creator-features").uid(f"{JOB}-creator-features"))

    statements = t_env.create_statement_set()
    add_dead_letter_sink(t_env, statements, cfg.kafka, dead, job=JOB)
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
