"""compute_features: point-in-time features of shows, creators and users, kept in Flink keyed
state and written to the Redis online store.

behavior-events, show-events -> [JVM, Flink SQL] validate (bad records to dead-letters), event
time with bounded out-of-orderness, de-duplicate by event id, route to entities, group each
entity's events per ``--batch-ms`` of processing time -> [Python] shows and users (keyed) ->
creators (keyed; follows, plus plays and live changes derived by shows) -> Redis hashes
``onair:{show,creator,user}:{id}``.
Feature definitions: ``operators/features.py``; the store: ``connectors/feature_store.py``.

    flink run -py jobs/compute_features.py -pyfs operators,models,connectors [-- --help]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from pyflink.common import Types
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.table import Schema, StreamTableEnvironment

from connectors.flink_env import FlinkJobSettings, run_job
from connectors.flink_io import add_dead_letter_sink, raw_source_table
from connectors.job_config import add_flink_flags, env_default, flink_settings
from connectors.settings import KafkaSettings, RedisSettings
from connectors.topics import BEHAVIOR_EVENTS, SHOW_EVENTS
from operators.feature_functions import (
    BATCH_SEPARATOR,
    BATCH_TYPE,
    CREATOR_TAG,
    EntityFeaturesFunction,
    SplitBatchesFunction,
)
from operators.features import DEDUPE_MS, ROUTES
from operators.validate_function import DEAD_LETTER_TAG, check_function
from operators.validation import MAX_TS_MS, MIN_TS_MS

JOB = "compute_features"


@dataclass(frozen=True)
class ComputeFeaturesConfig:
    kafka: KafkaSettings
    redis: RedisSettings
    flink: FlinkJobSettings
    group_id: str = "onair-compute-features"
    out_of_order_ms: int = 5000
    idle_s: int = 10
    batch_ms: int = 200
    batch_size: int = 500
    flush_ms: int = 50
    ended_ttl_s: int = 86_400

    @classmethod
    def from_args(cls, argv: list[str] | None = None) -> ComputeFeaturesConfig:
        parser = argparse.ArgumentParser(prog=JOB, description=__doc__.splitlines()[0])
        # Each key's state is read from and written back to the JVM once per bundle, so bundles
        # end by time (1 s), not by size: 100 ms bundles measured 1,390 events/s against
        # 5,949. The bundle time is also most of the reflection time (README, Known limits).
        add_flink_flags(parser, JOB, python_mode="process", bundle_size=20000)
        parser.add_argument("--group-id", default=env_default("FEATURES_GROUP_ID", cls.group_id),
                            help="Kafka consumer group (env FEATURES_GROUP_ID)")
        parser.add_argument("--out-of-order-ms", type=int,
                            default=int(env_default("FEATURES_OUT_OF_ORDER_MS", "5000")),
                            help="bounded out-of-orderness of event time "
                                 "(env FEATURES_OUT_OF_ORDER_MS, default 5000)")
        parser.add_argument("--idle-s", type=int, default=cls.idle_s,
                            help="a partition silent this long stops holding back event time")
        parser.add_argument("--batch-ms", type=int,
                            default=int(env_default("FEATURES_BATCH_MS", "200")),
                            help="each entity's events are handed to Python once per this many "
                                 "ms of processing time (env FEATURES_BATCH_MS, default 200)")
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
                   args.group_id, args.out_of_order_ms, args.idle_s, args.batch_ms,
                   args.batch_size,
                   args.flush_ms, args.ended_ttl_s)

    def features_function(self) -> EntityFeaturesFunction:
        # PyFlink 2.0's thread mode fails to convert a state TTL (FileNotFoundError in
        # to_java_state_ttl_config): without one, abandoned keys stay until a savepoint cleanup.
        ttl_days = 0 if self.flink.python_mode == "thread" else 14
        return EntityFeaturesFunction(self.redis, batch_size=self.batch_size,
                                      flush_ms=self.flush_ms,
                                      ended_ttl_ms=self.ended_ttl_s * 1000,
                                      state_ttl_days=ttl_days)


SOURCES = (BEHAVIOR_EVENTS, SHOW_EVENTS)
ID_FIELDS = ("event_id", "event_type", *dict.fromkeys(f for _, f, _ in ROUTES))
# The separator as a SQL Unicode literal.
SQL_SEPARATOR = f"U&'\\{ord(BATCH_SEPARATOR):04x}'"


def sql_interval(ms: int) -> str:
    """A SQL interval literal of ``ms`` milliseconds (plain SECOND allows only 2 digits)."""
    seconds, millis = divmod(ms, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"INTERVAL '{days} {hours:02}:{minutes:02}:{seconds:02}.{millis:03}' DAY TO SECOND(3)"


def _sql_list(values) -> str:
    return ", ".join(f"'{v}'" for v in values)


def source_columns(out_of_order_ms: int) -> tuple[str, ...]:
    """Computed columns of a source table: processing time, and an event time for watermarks
    only (read with a regular expression, which costs nothing next to parsing; a record whose
    time is not plausible never moves event time on, and validation comes later)."""
    ts = ("TRY_CAST(REGEXP_EXTRACT(CAST(`value` AS STRING), '\"ts\"\\s*:\\s*([0-9]+)', 1) "
          "AS BIGINT)")
    plausible = f"CASE WHEN {ts} >= {MIN_TS_MS} AND {ts} < {MAX_TS_MS} THEN {ts} ELSE 0 END"
    return ("`proc` AS PROCTIME()",
            f"`ev_time` AS TO_TIMESTAMP_LTZ({plausible}, 3)",
            f"WATERMARK FOR `ev_time` AS `ev_time` - {sql_interval(out_of_order_ms)}")


def checked_query(tables: list[str]) -> str:
    """Every source row with ``doc`` (the value as text) and ``chk``, the vectorised
    ``check_event``: ``[reason (NULL: valid), *ID_FIELDS]``."""
    return "\nUNION ALL\n".join(
        f"SELECT `value`, `topic`, `partition`, `offset`, CAST(`value` AS STRING) AS doc, "
        f"check_event(`value`, `topic`) AS chk FROM `{table}`" for table in tables)


def events_view(checked: str) -> str:
    """Valid events, the first of each event id only."""
    columns = ", ".join(f"chk[{i + 2}] AS {f}" for i, f in enumerate(ID_FIELDS))
    valid = f"SELECT {columns}, doc, proc FROM {checked} WHERE chk[1] IS NULL"
    return (f"SELECT {', '.join(ID_FIELDS)}, doc, proc FROM (SELECT *, ROW_NUMBER() OVER "
            f"(PARTITION BY event_id ORDER BY proc) AS rn FROM ({valid})) WHERE rn = 1")


def routed_view(events: str) -> str:
    """(entity, doc, proc) for every entity an event updates (``ROUTES``). One UNNEST rather
    than a UNION of filters: the planner would push each filter below the de-duplication
    and de-duplicate three times."""
    entities = ", ".join(
        f"CASE WHEN event_type IN ({_sql_list(types)}) THEN CONCAT('{kind}:', {field}) END"
        for kind, field, types in ROUTES)
    return (f"SELECT entity, doc, proc FROM {events} CROSS JOIN UNNEST(ARRAY[{entities}]) "
            "AS t (entity) WHERE entity IS NOT NULL")


def batches_query(routed: str, batch_ms: int) -> str:
    """Each entity's events per ``batch_ms`` of processing time: rows (entity, docs)."""
    return (f"SELECT entity, LISTAGG(doc, {SQL_SEPARATOR}) AS docs FROM TABLE(TUMBLE("
            f"TABLE {routed}, DESCRIPTOR(proc), {sql_interval(batch_ms)})) "
            "GROUP BY entity, window_start, window_end")


def output_query(batches: str, checked: str) -> str:
    """The job's one SQL output: batches (entity, docs) and rejected raw rows (value, topic,
    partition, offset, reason), NULL where a column is the other kind's."""
    return ("SELECT entity, docs, CAST(NULL AS BYTES) AS `value`, CAST(NULL AS STRING) AS "
            "`topic`, CAST(NULL AS INT) AS `partition`, CAST(NULL AS BIGINT) AS `offset`, "
            f"CAST(NULL AS STRING) AS reason FROM ({batches})\nUNION ALL\n"
            "SELECT CAST(NULL AS STRING), CAST(NULL AS STRING), `value`, `topic`, `partition`, "
            f"`offset`, chk[1] FROM {checked} WHERE chk[1] IS NOT NULL")


def build_pipeline(env: StreamExecutionEnvironment, t_env: StreamTableEnvironment,
                   cfg: ComputeFeaturesConfig) -> None:
    config = t_env.get_config()
    config.set("table.exec.source.idle-timeout", f"{cfg.idle_s} s")
    # Only the event-id de-duplication keeps SQL state beyond a window: a day, as documented.
    config.set("table.exec.state.ttl", f"{DEDUPE_MS} ms")
    schemas = {cfg.kafka.topic(topic.name): topic.schema for topic in SOURCES}
    t_env.create_temporary_function("check_event", check_function(
        schemas, ID_FIELDS, vectorised=cfg.flink.python_mode != "thread"))
    tables = [raw_source_table(t_env, cfg.kafka, topic, group_id=cfg.group_id,
                               bounded=cfg.flink.bounded,
                               extra_columns=source_columns(cfg.out_of_order_ms))
              for topic in SOURCES]
    # Through a stream and back: the planner would otherwise evaluate check_event once per
    # use of its result (the valid and the rejected branch, the filter and the projection).
    checked = t_env.to_data_stream(t_env.sql_query(checked_query(tables)))
    t_env.create_temporary_view("checked", t_env.from_data_stream(
        checked, Schema.new_builder().column_by_expression("proc", "PROCTIME()").build()))
    t_env.execute_sql(f"CREATE TEMPORARY VIEW unique_events AS {events_view('checked')}")
    t_env.execute_sql(f"CREATE TEMPORARY VIEW routed AS {routed_view('unique_events')}")
    split = (t_env.to_data_stream(t_env.sql_query(output_query(
        batches_query("routed", cfg.batch_ms), "checked")))
        .process(SplitBatchesFunction(JOB, schemas), output_type=BATCH_TYPE)
        .name("split").uid(f"{JOB}-split"))
    derived = (split
               .key_by(lambda r: r[0], key_type=Types.STRING())
               .process(cfg.features_function(), output_type=BATCH_TYPE)
               .name("show-user-features").uid(f"{JOB}-show-user-features"))
    creators = (split.get_side_output(CREATOR_TAG)
                .union(derived)
                .key_by(lambda r: r[0], key_type=Types.STRING())
                .process(cfg.features_function(), output_type=BATCH_TYPE)
                .name("creator-features").uid(f"{JOB}-creator-features"))
    dead = split.get_side_output(DEAD_LETTER_TAG)
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
