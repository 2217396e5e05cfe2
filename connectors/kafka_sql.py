"""Kafka sources and sinks for PyFlink jobs, as Flink SQL tables.

Flink's Kafka table connector is used rather than the Python ``KafkaSource`` builder because
it exposes the record metadata (topic, partition, offset, timestamp) that the
dead-letter path needs, and it writes keys and headers on the way out. Values are carried as
raw bytes: Python decodes and validates them, so one bad record is data, not a job failure.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.settings import KafkaSettings
from core.topics import MAX_TS_MS

# Columns of every source table; ``value`` is the untouched record value.
SOURCE_COLUMNS = ("value", "topic", "partition", "offset", "kafka_ts")


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _with(options: dict[str, str]) -> str:
    return ",\n  ".join(f"{_quote(k)} = {_quote(v)}" for k, v in options.items())


def interval_literal(ms: int) -> str:
    """A SQL interval of ``ms`` milliseconds. DAY TO SECOND: a plain ``SECOND`` interval has
    two digits of precision in Flink (600 s is refused) and wider precisions are unsupported."""
    seconds, millis = divmod(ms, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return (f"INTERVAL '{days} {hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}' "
            "DAY TO SECOND(3)")


def _properties(pairs) -> dict[str, str]:
    """Kafka client settings as the connector's ``properties.*`` options."""
    return {f"properties.{k}": v for k, v in pairs}


def _client_options(kafka: KafkaSettings) -> dict[str, str]:
    return _properties(kafka.java_properties().items())


@dataclass(frozen=True)
class KafkaSourceSpec:
    """One topic read as raw bytes plus metadata.

    ``stop_offsets`` (partition -> offset, exclusive) makes the read bounded; compute it with
    ``connectors.kafka_admin.end_offsets`` so the tail of each partition is not lost (Tansu
    answers ListOffsets(latest) with the base offset of the last batch, not the end).
    """

    table: str
    topic: str
    group_id: str
    start: str = "group-offsets"
    stop_offsets: dict[int, int] | None = None
    properties: tuple[tuple[str, str], ...] = ()   # extra Kafka consumer properties
    with_key: bool = False   # a `key` BYTES column: the record's Kafka key (NULL if none)
    # Event time from the JSON value's top-level field of this name, as column `event_time`
    # with a watermark ``out_of_order_ms`` behind it; and a `proc` processing-time column.
    event_time_field: str | None = None
    out_of_order_ms: int = 0
    proctime: bool = False

    def ddl(self, kafka: KafkaSettings) -> str:
        options = {
            "connector": "kafka",
            "topic": self.topic,
            "value.format": "raw",
            "properties.group.id": self.group_id,
            # Where a new consumer group starts: the beginning, so nothing is skipped.
            "properties.auto.offset.reset": "earliest",
            # Only ever see committed records of transactional producers.
            "properties.isolation.level": "read_committed",
            "scan.startup.mode": self.start,
            **_client_options(kafka),
            **_properties(self.properties),
        }
        if self.stop_offsets is None:
            # Find new partitions (and, after a restore from a checkpoint taken before the
            # first discovery, the existing ones) within seconds instead of the 5 min default.
            options["scan.topic-partition-discovery.interval"] = "10 s"
        else:
            options["scan.bounded.mode"] = "specific-offsets"
            options["scan.bounded.specific-offsets"] = ";".join(
                f"partition:{p},offset:{o}" for p, o in sorted(self.stop_offsets.items())
            )
        key_column = ""
        if self.with_key:
            options.update({"key.format": "raw", "key.fields": "key",
                            "value.fields-include": "EXCEPT_KEY"})
            key_column = "\n  `key` BYTES,"
        return f"""CREATE TEMPORARY TABLE `{self.table}` ({key_column}
  `value` BYTES,
  `topic` STRING METADATA FROM 'topic' VIRTUAL,
  `partition` INT METADATA FROM 'partition' VIRTUAL,
  `offset` BIGINT METADATA FROM 'offset' VIRTUAL,
  `kafka_ts` TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL{self._time_columns()}
) WITH (
  {_with(options)}
)"""


    def _time_columns(self) -> str:
        cols = ",\n  `proc` AS PROCTIME()" if self.proctime else ""
        if self.event_time_field is not None:
            # A value with no usable time (bad JSON, no such field: a record validation will
            # dead-letter) reads as epoch 0, which never moves the watermark (NULL would fail
            # it), nor does a time past validation's range: one bogus far-future event would
            # make every other event late. The range is checked on the column, so the JSON
            # is parsed once per record.
            ms = (f"TRY_CAST(JSON_VALUE(CAST(`value` AS STRING), '$.{self.event_time_field}')"
                  " AS BIGINT)")
            # The outer COALESCE: TO_TIMESTAMP_LTZ is NULL for a number too large to be a time.
            cols += (f",\n  `event_time` AS COALESCE(TO_TIMESTAMP_LTZ(COALESCE({ms}, 0), 3), "
                     "TO_TIMESTAMP_LTZ(0, 3))"
                     f",\n  WATERMARK FOR `event_time` AS CASE WHEN `event_time` <= "
                     f"TO_TIMESTAMP_LTZ({MAX_TS_MS}, 3) THEN `event_time` - "
                     f"{interval_literal(self.out_of_order_ms)} ELSE TO_TIMESTAMP_LTZ(0, 3) END")
        return cols


@dataclass(frozen=True)
class KafkaSinkSpec:
    """A topic written from rows ``(key BYTES, value BYTES, headers MAP<STRING, BYTES>)``.

    ``exactly_once`` uses Kafka transactions committed on checkpoints; readers of the topic
    must use ``isolation.level=read_committed`` to see each record once.
    """

    table: str
    topic: str
    transactional_id_prefix: str
    exactly_once: bool = True
    properties: tuple[tuple[str, str], ...] = ()   # extra Kafka producer properties

    def ddl(self, kafka: KafkaSettings) -> str:
        options = {
            "connector": "kafka",
            "topic": self.topic,
            "key.format": "raw",
            "key.fields": "key",
            "value.format": "raw",
            "value.fields-include": "EXCEPT_KEY",
            "sink.delivery-guarantee": "exactly-once" if self.exactly_once else "at-least-once",
            "sink.transactional-id-prefix": self.transactional_id_prefix,
            # Must stay below the broker's transaction.max.timeout.ms (15 min by default).
            "properties.transaction.timeout.ms": "600000",
            **_client_options(kafka),
            **_properties(self.properties),
        }
        return f"""CREATE TEMPORARY TABLE `{self.table}` (
  `key` BYTES,
  `value` BYTES,
  `headers` MAP<STRING, BYTES> METADATA
) WITH (
  {_with(options)}
)"""
