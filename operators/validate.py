"""Flink glue for the validate-or-dead-letter path.

``ValidateFunction`` takes rows from a ``connectors.kafka_sql`` source (raw value + metadata),
parses them against the topic's schema and emits each valid message as a typed row on the side
output of its topic; everything else goes to the dead-letter side output as a Kafka sink row.
A bad record is counted and routed, never raised: the job keeps running.

Metrics (group ``onair``, stable names): ``records_in``, ``records_valid``, ``dead_letters``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import redis
from pyflink.common import Row, Types
from pyflink.common.typeinfo import TypeInformation
from pyflink.datastream import OutputTag, ProcessFunction, RuntimeContext

from core.topics import MessageSchema
from models.validation import InvalidRecord, dead_letter, logic_failure, parse

log = logging.getLogger(__name__)
# Failures of the job's own I/O (Redis, files, sockets) and of the worker itself: faults,
# left to the restart strategy and the retries around them, never a record's dead letter.
IO_FAULTS: tuple[type[BaseException], ...] = (OSError, MemoryError, redis.RedisError)

SQL_TO_TYPE: dict[str, Callable[[], TypeInformation]] = {
    "STRING": Types.STRING,
    "BIGINT": Types.LONG,
    "DOUBLE": Types.DOUBLE,
    "BOOLEAN": Types.BOOLEAN,
    "BYTES": lambda: Types.PRIMITIVE_ARRAY(Types.BYTE()),
}

# Rows for connectors.kafka_sql.KafkaSinkSpec: (key, value, headers).
KAFKA_ROW_TYPE = Types.ROW_NAMED(
    ["key", "value", "headers"],
    [Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.PRIMITIVE_ARRAY(Types.BYTE()),
     Types.MAP(Types.STRING(), Types.PRIMITIVE_ARRAY(Types.BYTE()))],
)
DEAD_LETTER_TAG = OutputTag("dead-letters", KAFKA_ROW_TYPE)


def row_type(columns: list[tuple[str, str]]) -> TypeInformation:
    return Types.ROW_NAMED([n for n, _ in columns], [SQL_TO_TYPE[t]() for _, t in columns])


def kafka_row(key: str, message: dict[str, Any], headers: dict[str, bytes] | None = None) -> Row:
    """A ``KAFKA_ROW_TYPE`` row: UTF-8 key, the message as JSON, headers."""
    value = json.dumps(message, ensure_ascii=False).encode("utf-8")
    return Row(key.encode("utf-8"), value, headers or {})


def dead_letter_row(letter: dict[str, Any]) -> Row:
    return kafka_row(letter["source_topic"], letter,
                     {"error": letter["error"][:200].encode("utf-8")})


def as_message(message: dict) -> dict:
    """The validated message itself (a dict), for Python operators downstream."""
    return message


def validate_row(value: Row, route: tuple[MessageSchema, Callable[[dict], Any]] | None,
                 job: str, expect_key: tuple[str, str] | None = None) -> tuple[bool, Any]:
    """``(True, typed row)`` for a raw Kafka row that parses against ``route``'s schema (the
    row built by its ``to_value``), else ``(False, dead-letter row)`` naming what is wrong.
    ``expect_key`` ``(field, key)``: the message's ``field`` must be the ``key`` the record
    was keyed by (``operators.kafka_io.keyed_raw_input``)."""
    return validate_value(value.value, value.topic, value.partition, value.offset, route, job,
                          expect_key)


def validate_value(raw: bytes | None, topic: str | None, partition: int | None,
                   offset: int | None, route: tuple[MessageSchema, Callable[[dict], Any]] | None,
                   job: str, expect_key: tuple[str, str] | None = None) -> tuple[bool, Any]:
    """``validate_row`` for a record given by its parts (a batch of records arrives as
    arrays of values and offsets, not as rows)."""
    try:
        if route is None:
            raise InvalidRecord(f"no schema routed for topic {topic!r}")
        schema, to_value = route
        message = parse(raw, schema)
        if expect_key is not None:
            field, key = expect_key
            if message.get(field) != key:
                # Keyed state is per key: a stream split over two keys would be two streams.
                raise InvalidRecord(f"Kafka key {key!r} is not the message's {field} "
                                    f"{message.get(field)!r}; produce {topic} keyed by {field}")
        typed = to_value(message)
        return True, Row(*typed) if isinstance(typed, list) else typed
    except Exception as e:
        # Whatever one record breaks (a schema gap, a converter bug) is that record's
        # dead letter with the error named, never a restart loop for the whole job.
        reason = str(e) if isinstance(e, InvalidRecord) else f"{type(e).__name__}: {e}"
        return False, dead_letter_row(dead_letter(
            raw=raw, source_topic=topic or "?",
            partition=partition if partition is not None else -1,
            offset=offset if offset is not None else -1, error=reason, job=job,
        ))


class RecordBarrier:
    """The per-record barrier of a Python operator: ``letter`` turns what one record's logic
    raised into that record's dead letter (counted as ``record_failures``, group ``onair``),
    and re-raises I/O faults (``IO_FAULTS``), which are the job's, not the record's."""

    def __init__(self, job: str, operator: str, runtime_context: RuntimeContext):
        self.job, self.operator = job, operator
        self.failures = runtime_context.get_metrics_group().add_group("onair").counter(
            "record_failures")

    def letter(self, error: BaseException, message: Any, *, source_topic: str,
               message_id: str) -> tuple[OutputTag, Row]:
        if isinstance(error, IO_FAULTS):
            raise error
        self.failures.inc()
        log.warning("%s: %s failed on %s %s: %r", self.job, self.operator, source_topic,
                    message_id, error)
        return DEAD_LETTER_TAG, dead_letter_row(logic_failure(
            message, error, source_topic=source_topic, message_id=message_id, job=self.job,
            operator=self.operator))


class RowValidator:
    """``validate_row`` with its metrics (``records_in``, ``records_valid``, ``dead_letters``),
    for ``ValidateFunction`` and for functions that validate their own input."""

    def __init__(self, job: str, runtime_context: RuntimeContext):
        self.job = job
        group = runtime_context.get_metrics_group().add_group("onair")
        self.records_in = group.counter("records_in")
        self.records_valid = group.counter("records_valid")
        self.dead_letters = group.counter("dead_letters")

    def __call__(self, value: Row, route: tuple[MessageSchema, Callable[[dict], Any]] | None,
                 expect_key: tuple[str, str] | None = None) -> tuple[bool, Any]:
        ok, row = validate_row(value, route, self.job, expect_key)
        self.count_batch(1, int(not ok))
        return ok, row

    def count_batch(self, records: int, bad: int) -> None:
        """Count a batch of ``records`` checked with ``validate_value``, ``bad`` of them bad."""
        self.records_in.inc(records)
        self.records_valid.inc(records - bad)
        if bad:
            self.dead_letters.inc(bad)


class ValidateFunction(ProcessFunction):
    """Route each raw Kafka row to its topic's side output or to dead letters.

    ``routes`` maps a topic name to (schema, output tag, to_value); ``to_value`` turns the
    validated message into what the tag carries (a list of the row's values, or for a pickled
    tag, any object: it is emitted as is). A tag of None sends the topic's messages to the
    main output instead.
    """

    def __init__(
        self, job: str,
        routes: dict[str, tuple[MessageSchema, OutputTag | None, Callable[[dict], list]]],
    ):
        self.job = job
        self.routes = routes

    def open(self, runtime_context: RuntimeContext) -> None:
        self.validate = RowValidator(self.job, runtime_context)

    def process_element(self, value: Row, ctx: ProcessFunction.Context):
        route = self.routes.get(value.topic)
        ok, row = self.validate(value, route and (route[0], route[2]))
        if not ok:
            yield DEAD_LETTER_TAG, row
        elif route[1] is None:
            yield row
        else:
            yield route[1], row
