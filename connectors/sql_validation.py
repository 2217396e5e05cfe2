"""A topic's schema as Flink SQL: validation and typed columns evaluated on the JVM.

Jobs whose throughput is bound by PyFlink's per-record cost (``compute_features``) validate
in SQL so that only aggregated records reach Python. ``reject_reason`` is a SQL expression that
is NULL for a record ``operators.validation.parse`` accepts and otherwise names the first rule
it breaks; ``column`` reads one field of a valid record. Rejected records still go through the
Python parser on their way to dead letters, so their reason is the same as elsewhere;
``tests/integration/test_sql_validation.py`` checks that both accept the same records.

JSON types are told apart by the first character of the field wrapped in an array
(``JSON_QUERY ... WITH ARRAY WRAPPER``): Flink's ``JSON_VALUE`` converts numbers to strings
and back, so it cannot tell ``"7"`` from ``7``.
"""

from __future__ import annotations

from connectors.topics import MessageSchema
from operators.validation import MAX_TS_MS, MIN_TS_MS

# Regular expressions on the wrapped field (``[value]``) per JSON type of a schema field.
_TYPE_PATTERNS = {
    "string": r'^\["',
    "integer": r"^\[-?[0-9]+\]$",
    "number": r"^\[-?[0-9]",
    "boolean": r"^\[(true|false)\]$",
    "array": r"^\[\[",
    "object": r"^\[\{",
}
SQL_TYPES = {"string": "STRING", "integer": "BIGINT", "number": "DOUBLE", "boolean": "BOOLEAN"}
# JSON_VALUE's RETURNING knows no BIGINT: integers are read as text and cast.
_RETURNING = {"string": "STRING", "number": "DOUBLE", "boolean": "BOOLEAN"}


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _wrapped(doc: str, name: str) -> str:
    return f"JSON_QUERY({doc}, '$.{name}' WITH ARRAY WRAPPER)"


def _absent(doc: str, name: str) -> str:
    """The field is missing or JSON null (``validate`` treats both as missing)."""
    return f"COALESCE({_wrapped(doc, name)}, '[]') IN ('[]', '[null]')"


def column(doc: str, name: str, json_type: str = "string") -> str:
    """The field's value as its SQL type (NULL when absent or not of that type)."""
    if json_type == "integer":
        return f"TRY_CAST(JSON_VALUE({doc}, '$.{name}') AS BIGINT)"
    return f"JSON_VALUE({doc}, '$.{name}' RETURNING {_RETURNING[json_type]})"


def reject_reason(schema: MessageSchema, *, doc: str = "doc", raw: str = "`value`") -> str:
    """SQL: NULL when the record is valid, else the reason (``raw`` the bytes, ``doc`` them
    decoded as UTF-8)."""
    rules: list[tuple[str, str]] = [
        (f"{raw} IS NULL", "empty value (null or tombstone)"),
        # Flink SQL has no byte length: a value of more characters is certainly too large (one
        # of fewer characters but more UTF-8 bytes passes here and not in Python).
        (f"CHAR_LENGTH({doc}) > {schema.max_bytes}",
         f"value is larger than the {schema.max_bytes} bytes allowed"),
        # Undecodable bytes come back as U+FFFD, which re-encodes to different bytes.
        (f"CAST({doc} AS BYTES) <> {raw}", "value is not UTF-8"),
        (f"NOT ({doc} IS JSON OBJECT)", f"{schema.name} must be a JSON object (or bad JSON)"),
    ]
    for f in schema.fields:
        present = f"NOT {_absent(doc, f.name)}"
        if f.required:
            rules.append((_absent(doc, f.name), f"missing required field {f.name!r}"))
        rules.append((f"{present} AND NOT REGEXP({_wrapped(doc, f.name)}, "
                      f"{_lit(_TYPE_PATTERNS[f.type])})", f"field {f.name!r} must be {f.type}"))
        if f.enum:
            rules.append((f"{present} AND {column(doc, f.name)} NOT IN "
                          f"({', '.join(map(_lit, f.enum))})",
                          f"field {f.name!r} is not one of {list(f.enum)}"))
    if schema.kind_field:
        kind = column(doc, schema.kind_field)
        rules.append((f"{kind} NOT IN ({', '.join(map(_lit, sorted(schema.kinds)))})",
                      f"unknown {schema.kind_field}, expected one of {sorted(schema.kinds)}"))
        for value, extras in sorted(schema.kinds.items()):
            for extra in extras:
                rules.append((f"{kind} = {_lit(value)} AND {_absent(doc, extra)}",
                              f"{schema.kind_field} {value!r} requires field {extra!r}"))
    ts = column(doc, schema.time_field, "integer")
    rules.append((f"NOT ({ts} >= {MIN_TS_MS} AND {ts} < {MAX_TS_MS})",
                  f"field {schema.time_field!r} is not epoch milliseconds in 2000..2100"))
    rules.append((f"{column(doc, schema.id_field)} = ''", f"field {schema.id_field!r} is empty"))
    branches = "\n    ".join(f"WHEN {cond} THEN {_lit(reason)}" for cond, reason in rules)
    return f"CASE\n    {branches}\n    ELSE CAST(NULL AS STRING)\n  END"


def event_time_ms(schema: MessageSchema, *, doc: str) -> str:
    """The record's event time for a watermark: its time field when plausible, else 0 (a
    rejected record never moves event time on)."""
    ts = column(doc, schema.time_field, "integer")
    return (f"CASE WHEN {ts} >= {MIN_TS_MS} AND {ts} < {MAX_TS_MS} THEN {ts} "
            f"ELSE CAST(0 AS BIGINT) END")
