"""Validate raw Kafka values against a topic's schema; describe rejects as dead letters.

Pure logic, no PyFlink: ``parse`` either returns the decoded message or raises
``InvalidRecord`` with a reason a human can act on; ``dead_letter`` turns a reject into the
``dead-letters`` message.
"""

from __future__ import annotations

import base64
import json
import math
import time
from typing import Any

import orjson

from connectors.topics import JSON_TYPES, MessageSchema

RAW_PREVIEW_BYTES = 1024
# Event times outside [2000-01-01, 2100-01-01) are certainly unit mistakes (seconds, micros).
MIN_TS_MS = 946_684_800_000
MAX_TS_MS = 4_102_444_800_000


class InvalidRecord(ValueError):
    """A record that does not fit its schema; the message is the dead-letter reason."""


def _check_type(name: str, value: Any, json_type: str) -> None:
    accepted = JSON_TYPES[json_type]
    if isinstance(value, bool) and bool not in accepted:
        raise InvalidRecord(f"field {name!r} must be {json_type}, got boolean")
    if not isinstance(value, accepted):
        raise InvalidRecord(f"field {name!r} must be {json_type}, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidRecord(f"field {name!r} must be a finite number, got {value}")


def validate(message: Any, schema: MessageSchema) -> dict[str, Any]:
    """Check a decoded JSON value against ``schema``; return it (unchanged) or raise."""
    if not isinstance(message, dict):
        raise InvalidRecord(f"{schema.name} must be a JSON object, got {type(message).__name__}")
    for f in schema.fields:
        value = message.get(f.name)
        if value is None:
            if f.required:
                raise InvalidRecord(f"missing required field {f.name!r}")
            continue
        _check_type(f.name, value, f.type)
        if f.enum and value not in f.enum:
            raise InvalidRecord(f"field {f.name!r} is {value!r}, expected one of {list(f.enum)}")
    if schema.kind_field:
        kind = message[schema.kind_field]
        if kind not in schema.kinds:
            raise InvalidRecord(
                f"unknown {schema.kind_field} {kind!r}, expected one of {sorted(schema.kinds)}"
            )
        for extra in schema.kinds[kind]:
            if message.get(extra) is None:
                raise InvalidRecord(f"{schema.kind_field} {kind!r} requires field {extra!r}")
    ts = message[schema.time_field]
    if not MIN_TS_MS <= ts < MAX_TS_MS:
        raise InvalidRecord(
            f"field {schema.time_field!r} is {ts}, not epoch milliseconds in 2000..2100"
        )
    if not message[schema.id_field]:
        raise InvalidRecord(f"field {schema.id_field!r} is empty")
    return message


def parse(raw: bytes | None, schema: MessageSchema) -> dict[str, Any]:
    """Decode and validate one Kafka value."""
    if raw is None:
        raise InvalidRecord("empty value (null or tombstone)")
    if len(raw) > schema.max_bytes:
        raise InvalidRecord(
            f"value is {len(raw)} bytes, larger than the {schema.max_bytes} allowed"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidRecord(f"value is not UTF-8: {e.reason} at byte {e.start}") from None
    try:
        # orjson: 2.4x faster than json on an audio chunk, the largest value validated per
        # record. It is strict RFC 8259: NaN and Infinity are bad JSON, not numbers.
        message = orjson.loads(text)
    except json.JSONDecodeError as e:   # orjson.JSONDecodeError is a subclass
        raise InvalidRecord(f"bad JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    return validate(message, schema)


def dead_letter(
    *, raw: bytes | None, source_topic: str, partition: int, offset: int, error: str, job: str,
    now_ms: int | None = None,
) -> dict[str, Any]:
    """The ``dead-letters`` message for a rejected record (raw bytes truncated)."""
    raw = raw or b""
    preview = raw[:RAW_PREVIEW_BYTES]
    try:
        raw.decode("utf-8")
        # The cut may split a multi-byte character; drop only that partial tail.
        text, encoding = preview.decode("utf-8", errors="ignore"), "utf8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(preview).decode("ascii"), "base64"
    return {
        "dead_letter_id": f"{source_topic}:{partition}:{offset}",
        "source_topic": source_topic,
        "partition": partition,
        "offset": offset,
        "error": error,
        "raw": text,
        "raw_encoding": encoding,
        "raw_size": len(raw),
        "job": job,
        "ts": int(time.time() * 1000) if now_ms is None else now_ms,
    }
