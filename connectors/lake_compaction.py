"""Raw zone -> transformed zone, one partition (table, date) at a time.

A partition's raw JSON-lines files (every hour folder) become one Parquet file,
``transformed/<table>/dt=<date>/part-0.parquet``:

* **schema enforced**: columns and types from the table's ``core.topics`` schema; fields
  the schema does not know are dropped (producers may add fields before the schema does); a
  line that is not JSON, has a value of the wrong type or lacks a required field is rejected
  and counted, never fatal to the partition;
* **deduplicated** by the schema's id field: the earliest copy by event time is kept (ties:
  the first in file order; files are read in name order);
* **idempotent**: rows are sorted by (time, id) and written by a deterministic writer, so
  compacting the same raw files again yields the same bytes; the file is written under a
  dot-name and renamed, so readers see the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from connectors.lake import LakeTable, data_files, local_path, raw_path, transformed_path
from core.topics import JSON_TYPES, MessageSchema

ARROW_TYPES = {"string": pa.string(), "integer": pa.int64(), "number": pa.float64(),
               "boolean": pa.bool_(), "array": pa.string(), "object": pa.string()}
PARQUET_FILE = "part-0.parquet"


def arrow_schema(schema: MessageSchema) -> pa.Schema:
    """The transformed zone's Parquet schema of a message schema (nested values as JSON text)."""
    return pa.schema([pa.field(f.name, ARROW_TYPES[f.type], nullable=not f.required)
                      for f in schema.fields])


@dataclass(frozen=True)
class CompactionResult:
    table: str
    dt: str
    files: int
    rows_in: int
    rejected: int
    duplicates: int
    rows_out: int
    path: str

    def as_dict(self) -> dict:
        return asdict(self)


def raw_partitions(lake_root: str, table: str) -> list[str]:
    """Dates (``YYYY-MM-DD``) that have a raw partition folder for ``table``."""
    root = local_path(raw_path(lake_root, table))
    if not root.exists():
        return []
    return sorted(p.name.split("=", 1)[1] for p in root.glob("dt=*") if p.is_dir())


def transformed_partitions(lake_root: str, table: str) -> list[str]:
    root = local_path(transformed_path(lake_root, table))
    if not root.exists():
        return []
    return sorted(p.parent.name.split("=", 1)[1] for p in root.glob(f"dt=*/{PARQUET_FILE}"))


def partition_file(lake_root: str, table: str, dt: str) -> Path:
    return local_path(transformed_path(lake_root, table)) / f"dt={dt}" / PARQUET_FILE


def _coerce_line(line: str, schema: MessageSchema) -> dict | None:
    """One raw line as a row of the schema, or None when it cannot be one."""
    try:
        msg = json.loads(line)
    except ValueError:
        return None
    if not isinstance(msg, dict):
        return None
    row = {}
    for f in schema.fields:
        value = msg.get(f.name)
        if value is None:
            if f.required:
                return None
        elif f.type in ("array", "object"):
            if not isinstance(value, str):  # the raw zone keeps nested values as JSON text
                value = json.dumps(value, separators=(",", ":"), sort_keys=True)
        elif not isinstance(value, JSON_TYPES[f.type]) or (
                f.type != "boolean" and isinstance(value, bool)):
            return None
        row[f.name] = value
    return row


def read_raw_file(path: Path, schema: MessageSchema) -> tuple[pa.Table, int, int]:
    """(rows, lines read, lines rejected). Arrow's JSON reader does the common case; a file it
    refuses is re-read line by line so one bad line costs only itself."""
    target = arrow_schema(schema)
    try:
        table = pa_json.read_json(path, parse_options=pa_json.ParseOptions(
            explicit_schema=target, unexpected_field_behavior="ignore"))
        table = table.select(target.names)
        ok = None
        for f in schema.fields:
            if f.required:
                valid = pc.is_valid(table[f.name])
                ok = valid if ok is None else pc.and_(ok, valid)
        kept = table if ok is None else table.filter(ok)
        return kept.cast(target), table.num_rows, table.num_rows - kept.num_rows
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        rows, lines = [], 0
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.strip():
                    lines += 1
                    row = _coerce_line(line, schema)
                    if row is not None:
                        rows.append(row)
        return pa.Table.from_pylist(rows, schema=target), lines, lines - len(rows)


def dedupe(table: pa.Table, id_field: str, time_field: str) -> pa.Table:
    """Rows sorted by (time, id), one per id: the earliest, first in input order on ties."""
    table = table.append_column("__order", pa.array(range(table.num_rows), pa.int64()))
    table = table.sort_by([(time_field, "ascending"), (id_field, "ascending"),
                           ("__order", "ascending")])
    table = table.drop_columns(["__order"])
    table = table.append_column("__rank", pa.array(range(table.num_rows), pa.int64()))
    firsts = table.group_by(id_field, use_threads=False).aggregate([("__rank", "min")])
    keep = pc.is_in(table["__rank"], value_set=firsts["__rank_min"])
    return table.filter(keep).drop_columns(["__rank"])


def compact_partition(lake_root: str, table: LakeTable, dt: str) -> CompactionResult:
    schema = table.schema
    files = data_files(local_path(raw_path(lake_root, table.name)) / f"dt={dt}")
    parts, lines, rejected = [], 0, 0
    for f in files:
        rows, n, bad = read_raw_file(f, schema)
        parts.append(rows)
        lines += n
        rejected += bad
    merged = pa.concat_tables(parts) if parts else arrow_schema(schema).empty_table()
    out = dedupe(merged, schema.id_field, schema.time_field)
    target = partition_file(lake_root, table.name, dt)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{PARQUET_FILE}.tmp")
    pq.write_table(out, tmp, compression="zstd", write_statistics=True)
    tmp.replace(target)
    for stale in target.parent.iterdir():  # files of an older layout would be read as data
        if stale.name != PARQUET_FILE and not stale.name.startswith((".", "_")):
            stale.unlink()
    return CompactionResult(table.name, dt, len(files), lines, rejected,
                            merged.num_rows - out.num_rows, out.num_rows, str(target))


def read_partition(lake_root: str, table: str, dt: str,
                   columns: list[str] | None = None) -> pa.Table | None:
    """One compacted partition (None when the day has no file)."""
    path = partition_file(lake_root, table, dt)
    if not path.exists():
        return None
    return pq.read_table(path, columns=columns)


def declared_topics(lake: str, day: date) -> dict[str, set[str]]:
    """Declared topics per user from the newest users snapshot dated on or before ``day``."""
    dates = [d for d in transformed_partitions(lake, "users") if d <= day.isoformat()]
    if not dates:
        return {}
    users = read_partition(lake, "users", dates[-1], ["user_id", "declared_topics"]).to_pandas()
    return {u: set(json.loads(t)) for u, t in zip(users["user_id"], users["declared_topics"],
                                                  strict=True)}
