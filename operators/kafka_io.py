"""Wiring Kafka into PyFlink jobs: validated input streams and Kafka sinks, in a few calls.

``validated_inputs`` reads topics as raw bytes + metadata (``raw_input``), routes every record
through ``ValidateFunction`` and returns one typed stream per topic plus the dead-letter stream;
``raw_batches`` hands raw records to Python in batches, with event time taken in the JVM;
``add_kafka_sink`` attaches a (transactional) Kafka sink for rows ``(key, value, headers)``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from pyflink.common import Types
from pyflink.common.typeinfo import TypeInformation
from pyflink.datastream import DataStream, KeyedStream, OutputTag
from pyflink.java_gateway import get_gateway
from pyflink.table import StatementSet, StreamTableEnvironment

from connectors.kafka_admin import LOW_LATENCY_FETCH_WAIT_MS, end_offsets
from connectors.kafka_sql import KafkaSinkSpec, KafkaSourceSpec, interval_literal
from core.settings import KafkaSettings
from core.topics import DEAD_LETTERS, Topic
from models.lake_rows import schema_columns, schema_values
from operators.validate import DEAD_LETTER_TAG, ValidateFunction, as_message, row_type

LOW_LATENCY_PRODUCER = (("linger.ms", "0"),)


@dataclass(frozen=True)
class Input:
    """A topic to read: ``columns`` of its typed rows and how to build them from a message,
    or ``columns=None`` for the validated message itself as a (pickled) dict."""

    topic: Topic
    columns: list[tuple[str, str]] | None
    to_row: Callable[[dict], list | dict]

    @classmethod
    def of(cls, topic: Topic) -> Input:
        """The schema's fields as a flat row."""
        return cls(topic, schema_columns(topic.schema),
                   functools.partial(schema_values, schema=topic.schema))

    @classmethod
    def as_dicts(cls, topic: Topic) -> Input:
        """Validated messages as Python dicts (cheapest between Python operators)."""
        return cls(topic, None, as_message)


def _source_table(t_env: StreamTableEnvironment, kafka: KafkaSettings, topic: Topic, *,
                  group_id: str, bounded: bool, fetch_max_wait_ms: int | None,
                  with_key: bool = False, out_of_order_ms: int | None = None) -> str:
    physical = kafka.topic(topic.name)
    table = "src_" + topic.name.replace("-", "_")
    source = KafkaSourceSpec(table, physical, group_id,
                             stop_offsets=end_offsets(kafka, physical) if bounded else None,
                             properties=(() if fetch_max_wait_ms is None else
                                         (("fetch.max.wait.ms", str(fetch_max_wait_ms)),)),
                             with_key=with_key,
                             event_time_field=(None if out_of_order_ms is None
                                               else topic.schema.time_field),
                             out_of_order_ms=out_of_order_ms or 0,
                             proctime=out_of_order_ms is not None)
    t_env.execute_sql(source.ddl(kafka))
    return table


def raw_batches(t_env: StreamTableEnvironment, kafka: KafkaSettings, topics: list[Topic], *,
                group_id: str, bounded: bool, batch_ms: int, out_of_order_ms: int,
                idle_s: int) -> DataStream:
    """Raw Kafka records of ``topics`` handed to Python in batches: rows ``(topic,
    partitions, offsets, values)``, three arrays in the same order, one row per partition
    per ``batch_ms`` of processing time (per partition, not per topic: the rows of one topic
    would all go to one subtask of the next operator). Event time (each schema's
    ``time_field``) and its watermark, ``out_of_order_ms`` behind, are taken in the JVM
    per partition; a partition silent for ``idle_s`` stops holding the watermark back.

    Why: one Python call per record caps a job at ~11,000 records/s on this machine;
    arrays of primitives cross into Python at ~100,000 records/s (docs/design-notes.md).
    Bounded reads get one record per row instead: a processing-time window still open when
    its input ends never fires, which would drop the last batch."""
    t_env.get_config().set("table.exec.source.idle-timeout", f"{idle_s} s")
    selects = []
    for topic in topics:
        # Kafka's default fetch wait (500 ms). Tansu answers a fetch when its wait ends, yet
        # shorter waits measured worse here: at 20 and 100 ms the sources' fetches loaded the
        # broker until the producers slowed (docs/performance.md).
        table = _source_table(t_env, kafka, topic, group_id=group_id, bounded=bounded,
                              fetch_max_wait_ms=None, out_of_order_ms=out_of_order_ms)
        # A tombstone's NULL value travels as empty bytes (the validation's "empty value").
        value = "COALESCE(`value`, CAST('' AS BYTES))"
        if bounded:
            selects.append(f"SELECT `topic`, ARRAY[`partition`], ARRAY[`offset`], "
                           f"ARRAY[{value}] FROM `{table}`")
        else:
            selects.append(
                f"SELECT `topic`, ARRAY_AGG(`partition`), ARRAY_AGG(`offset`), "
                f"ARRAY_AGG({value}) FROM TABLE(TUMBLE(TABLE `{table}`, DESCRIPTOR(proc), "
                f"{interval_literal(batch_ms)})) "
                "GROUP BY `topic`, `partition`, window_start, window_end")
    return t_env.to_data_stream(t_env.sql_query(" UNION ALL ".join(selects)))


def raw_input(t_env: StreamTableEnvironment, kafka: KafkaSettings, topic: Topic, *,
              group_id: str, bounded: bool, fetch_max_wait_ms: int | None = None) -> DataStream:
    """Raw Kafka rows of ``topic`` (value, topic, partition, offset), for a Python operator
    that validates them itself (``operators.validate.validate_row``).
    ``fetch_max_wait_ms`` shortens the consumer's fetch wait (Kafka's default: 500 ms)."""
    table = _source_table(t_env, kafka, topic, group_id=group_id, bounded=bounded,
                          fetch_max_wait_ms=fetch_max_wait_ms)
    return t_env.to_data_stream(t_env.from_path(table))


def keyed_raw_input(t_env: StreamTableEnvironment, kafka: KafkaSettings, topic: Topic,
                    json_key: str, *, group_id: str, bounded: bool,
                    fetch_max_wait_ms: int | None = None) -> KeyedStream:
    """Raw Kafka rows of ``topic`` keyed in the JVM by the record's Kafka key, or where a
    record has none by the message's top-level field ``json_key``: the keyed Python function
    is the first Python code a record meets, and it validates the row itself
    (``validate_row`` with ``expect_key``, which dead-letters a record whose Kafka key is not
    its ``json_key``).

    ``DataStream.key_by`` runs its key selector in a Python operator of its own, and a
    validated stream reaches it through one more (the side output's): each record crossed
    the JVM/Python boundary three times before the keyed function, pickled each time, which
    cost detect_alarms more CPU than its audio work (docs/performance.md). The Kafka key
    spares the JVM parsing each value for its key (``JSON_VALUE`` parses the whole document:
    an 8.7 KB audio chunk here). A record with neither is keyed by "" and dead-lettered by
    the validation downstream, with the reason."""
    table = _source_table(t_env, kafka, topic, group_id=group_id, bounded=bounded,
                          fetch_max_wait_ms=fetch_max_wait_ms, with_key=True)
    # CASE, not COALESCE: only a record without a Kafka key pays for JSON_VALUE.
    keyed = t_env.sql_query(
        "SELECT CASE WHEN `key` IS NOT NULL THEN CAST(`key` AS STRING) "
        f"ELSE COALESCE(JSON_VALUE(CAST(`value` AS STRING), '$.{json_key}'), '') END AS k, "
        "CAST(ROW(`value`, `topic`, `partition`, `offset`) AS ROW<`value` BYTES, "
        "`topic` STRING, `partition` INT, `offset` BIGINT>) AS r "
        f"FROM `{table}`")
    stream = t_env.to_data_stream(keyed)
    value_type = Types.ROW_NAMED(["value", "topic", "partition", "offset"],
                                 [Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.STRING(),
                                  Types.INT(), Types.LONG()])
    # The keyed Python operator reads its input as a RowTypeInfo (key, value); the table
    # conversion declares the same rows as an ExternalTypeInfo, which it cannot cast.
    stream._j_data_stream.getTransformation().setOutputType(
        Types.ROW([Types.STRING(), value_type]).get_java_type_info())
    return key_by_first_field(stream, value_type)


def key_by_first_field(stream: DataStream, value_type: TypeInformation) -> KeyedStream:
    """``stream`` of rows ``(key STRING, value)`` keyed by ``key`` in the JVM; the keyed
    Python function then gets ``value`` (and the key from its context).

    What ``DataStream.key_by`` does after its own Python operator has made such rows: PyFlink's
    Java selector takes field 0. Rows made by SQL or by the Python operator before skip that
    operator: one Python call per record fewer, and a whole hand-over to Python where the
    stream comes from a union (which cannot chain)."""
    j_keyed = stream._j_data_stream.keyBy(get_gateway().jvm.KeyByKeySelector(),
                                          Types.ROW([Types.STRING()]).get_java_type_info())
    return KeyedStream(j_keyed, value_type, stream)


def set_buffer_timeout(stream: DataStream, timeout_ms: int) -> None:
    """The network buffer timeout of ``stream``'s operator and all those before it up to the
    sources (0: each record is sent at once). ``DataStream.set_buffer_timeout`` cannot do it
    for a stream converted from a table (a plain Java ``DataStream``), and which operator's
    setting a chain's output uses is an implementation detail of Flink: set it on all."""
    pending = [stream._j_data_stream.getTransformation()]
    while pending:
        transformation = pending.pop()
        transformation.setBufferTimeout(timeout_ms)
        pending.extend(transformation.getInputs())


def validated_inputs(
    t_env: StreamTableEnvironment, kafka: KafkaSettings, inputs: list[Input], *, job: str,
    group_id: str, bounded: bool, low_latency: bool = False,
) -> tuple[dict[str, DataStream], DataStream]:
    """Typed streams by logical topic name, and the dead-letter stream (Kafka rows).
    ``low_latency``: fetches wait at most ``LOW_LATENCY_FETCH_WAIT_MS``."""
    tags = {inp.topic.name: OutputTag(f"valid-{inp.topic.name}",
                                      Types.PICKLED_BYTE_ARRAY() if inp.columns is None
                                      else row_type(inp.columns))
            for inp in inputs}
    streams = [raw_input(t_env, kafka, inp.topic, group_id=group_id, bounded=bounded,
                         fetch_max_wait_ms=LOW_LATENCY_FETCH_WAIT_MS if low_latency else None)
               for inp in inputs]
    routes = {kafka.topic(inp.topic.name): (inp.topic.schema, tags[inp.topic.name], inp.to_row)
              for inp in inputs}
    raw = streams[0].union(*streams[1:]) if len(streams) > 1 else streams[0]
    validated = (raw.process(ValidateFunction(job, routes), output_type=Types.STRING())
                 .name("validate").uid(f"{job}-validate"))
    return ({name: validated.get_side_output(tag) for name, tag in tags.items()},
            validated.get_side_output(DEAD_LETTER_TAG))


def add_kafka_sink(t_env: StreamTableEnvironment, statements: StatementSet, kafka: KafkaSettings,
                   topic: Topic, rows: DataStream, *, job: str, exactly_once: bool = True,
                   low_latency: bool = False) -> None:
    """Write ``rows`` (``KAFKA_ROW_TYPE``) to ``topic``: exactly once (visible to read-committed
    readers at each checkpoint), or at least once (visible at once; readers dedupe by id)."""
    physical = kafka.topic(topic.name)
    spec = KafkaSinkSpec(f"sink_{topic.name.replace('-', '_')}", physical,
                         transactional_id_prefix=f"onair-{job}-{physical}",
                         exactly_once=exactly_once,
                         properties=LOW_LATENCY_PRODUCER if low_latency else ())
    t_env.execute_sql(spec.ddl(kafka))
    statements.add_insert(spec.table, t_env.from_data_stream(rows))


def add_dead_letter_sink(t_env: StreamTableEnvironment, statements: StatementSet,
                         kafka: KafkaSettings, dead: DataStream, *, job: str) -> None:
    add_kafka_sink(t_env, statements, kafka, DEAD_LETTERS, dead, job=job)
