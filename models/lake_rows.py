"""Flatten validated messages into the lake's raw-zone rows (pure logic, no PyFlink).

The raw zone holds one table per source topic, JSON lines partitioned Hive-style by event date
and hour (``dt=YYYY-MM-DD/hour=HH``, UTC). Columns are the schema's fields in order; nested
values (``props``, arrays) are kept as JSON text so every row has the same flat shape.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from core.topics import MessageSchema

SQL_TYPES = {
    "string": "STRING",
    "integer": "BIGINT",
    "number": "DOUBLE",
    "boolean": "BOOLEAN",
    "array": "STRING",
    "object": "STRING",
}
PARTITION_COLUMNS = ("dt", "hour")


def schema_columns(schema: MessageSchema) -> list[tuple[str, str]]:
    """(name, Flink SQL type) of each field of a message as a flat row."""
    return [(f.name, SQL_TYPES[f.type]) for f in schema.fields]


def lake_columns(schema: MessageSchema) -> list[tuple[str, str]]:
    """(name, Flink SQL type) of each raw-zone column, partition columns last."""
    return schema_columns(schema) + [(c, "STRING") for c in PARTITION_COLUMNS]


def partition_of(ts_ms: int) -> tuple[str, str]:
    """(dt, hour) of an event time in UTC."""
    t = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    return t.strftime("%Y-%m-%d"), t.strftime("%H")


def schema_values(message: dict[str, Any], schema: MessageSchema) -> list[Any]:
    """A validated message as a flat row, in ``schema_columns`` order."""
    row: list[Any] = []
    for f in schema.fields:
        value = message.get(f.name)
        if value is not None and f.type in ("array", "object"):
            value = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
        elif value is not None and f.type == "number":
            value = float(value)
        row.append(value)
    return row


def flatten(message: dict[str, Any], schema: MessageSchema) -> list[Any]:
    """The raw-zone row of a validated message, in ``lake_columns`` order."""
    return schema_values(message, schema) + list(partition_of(message[schema.time_field]))
