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
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment

from connectors.flink_env import FlinkJobSettings, run_job
from connectors.flink_io import add_dead_letter_sink, raw_source_table
from connectors.job_config import add_flink_flags, env_default, flink_settings
from connectors.settings import KafkaSettings, RedisSettings
from connectors.sql_validation import column, event_time_ms, reject_reason
from connectors.topics import BEHAVIOR_EVENTS, SHOW_EVENTS, Topic
from operators.feature_functions import BATCH_SEPARATOR, BATCH_TYPE, EntityFeaturesFunction
from operators.features import DEDUPE_MS, ROUTES
from operators.validate_function import KAFKA_ROW_TYPE, RejectedFunction

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


def source_columns(topic: Topic, out_of_order_ms: int) -> tuple[str, ...]:
    """Computed columns of a source table: the value as text, processing and event time."""
    doc = "CAST(`value` AS STRING)"
    return ("`proc` AS PROCTIME()",
            f"`ev_time` AS TO_TIMESTAMP_LTZ({event_time_ms(topic.schema, doc=doc)}, 3)",
            f"WATERMARK FOR `ev_time` AS `ev_time` - {sql_interval(out_of_order_ms)}")


def checked_view(table: str, topic: Topic) -> str:
    """The source's rows with ``doc`` (the value as text) and ``reason`` (NULL: valid)."""
    return (f"SELECT *, {reject_reason(topic.schema)} AS reason FROM "
            f"(SELECT `value`, `topic`, `partition`, `offset`, CAST(`value` AS STRING) AS doc, "
            f"proc FROM `{table}`)")


def events_view(checked: list[str]) -> str:
    """Valid events of all sources, the first of each event id only."""
    fields = ", ".join(f"{column('doc', f)} AS {f}" for f in ID_FIELDS)
    valid = "\nUNION ALL\n".join(f"SELECT {fields}, doc, proc FROM {c} WHERE reason IS NULL"
                                  for c in checked)
    return (f"SELECT {', '.join(ID_FIELDS)}, doc, proc FROM (SELECT *, ROW_NUMBER() OVER "
            f"(PARTITION BY event_id ORDER BY proc) AS rn FROM ({valid})) WHERE rn = 1")


def routed_view(events: str, kinds: tuple[str, ...]) -> str:
    """(entity, doc, proc) for every entity of ``kinds`` an event updates (``ROUTES``)."""
    return "\nUNION ALL\n".join(
        f"SELECT CONCAT('{kind}:', {field}) AS entity, doc, proc FROM {events} "
        f"WHERE event_type IN ({_sql_list(types)})"
        for kind, field, types in ROUTES if kind in kinds)


def batches_query(routed: str, batch_ms: int) -> str:
    """Each entity's events per ``batch_ms`` of processing time: rows (entity, docs)."""
    return (f"SELECT entity, LISTAGG(doc, {SQL_SEPARATOR}) AS docs FROM TABLE(TUMBLE("
            f"TABLE {routed}, DESCRIPTOR(proc), {sql_interval(batch_ms)})) "
            "GROUP BY entity, window_start, window_end")


def build_pipeline(env: StreamExecutionEnvironment, t_env: StreamTableEnvironment,
                   cfg: ComputeFeaturesConfig) -> None:
    config = t_env.get_config()
    config.set("table.exec.source.idle-timeout", f"{cfg.idle_s} s")
    # Only the event-id de-duplication keeps SQL state beyond a window: a day, as documented.
    config.set("table.exec.state.ttl", f"{DEDUPE_MS} ms")
    checked, schemas = [], {}
    for topic in SOURCES:
        table = raw_source_table(t_env, cfg.kafka, topic, group_id=cfg.group_id,
                                 bounded=cfg.flink.bounded,
                                 extra_columns=source_columns(topic, cfg.out_of_order_ms))
        view = f"checked_{table}"
        t_env.execute_sql(f"CREATE TEMPORARY VIEW {view} AS {checked_view(table, topic)}")
        checked.append(view)
        schemas[cfg.kafka.topic(topic.name)] = topic.schema
    t_env.execute_sql(f"CREATE TEMPORARY VIEW unique_events AS {events_view(checked)}")

    def batches(kinds: tuple[str, ...]) -> DataStream:
        routed = f"routed_{'_'.join(kinds)}"
        t_env.execute_sql(f"CREATE TEMPORARY VIEW {routed} AS "
                          f"{routed_view('unique_events', kinds)}")
        return t_env.to_data_stream(t_env.sql_query(batches_query(routed, cfg.batch_ms)))

    derived = (batches(("show", "user"))
               .key_by(lambda r: r[0], key_type=Types.STRING())
               .process(cfg.features_function(), output_type=BATCH_TYPE)
               .name("show-user-features").uid(f"{JOB}-show-user-features"))
    creators = (batches(("creator",)).map(lambda r: r, output_type=BATCH_TYPE)
                .union(derived)
                .key_by(lambda r: r[0], key_type=Types.STRING())
                .process(cfg.features_function(), output_type=BATCH_TYPE)
                .name("creator-features").uid(f"{JOB}-creator-features"))

    rejected = " UNION ALL ".join(
        f"SELECT `value`, `topic`, `partition`, `offset`, reason FROM {c} "
        "WHERE reason IS NOT NULL" for c in checked)
    dead = (t_env.to_data_stream(t_env.sql_query(rejected))
            .map(RejectedFunction(JOB, schemas), output_type=KAFKA_ROW_TYPE)
            .name("dead-letters").uid(f"{JOB}-dead-letters"))
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
