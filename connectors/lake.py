"""The data lake: where each zone lives and how Flink writes the raw zone.

Layout under ``ONAIR_LAKE``::

    raw/<table>/dt=YYYY-MM-DD/hour=HH/part-*.json     JSON lines as lake_ingest (or the
                                                      simulator) writes them
    raw/<table>/dt=YYYY-MM-DD/part-*.json             snapshot tables (users, creators)
    transformed/<table>/dt=YYYY-MM-DD/part-0.parquet  compacted (see jobs/compact_lake.py)

Files whose name starts with ``.`` or ``_`` are in progress or markers and are never data.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

from core.topics import (
    BEHAVIOR_EVENT,
    CREATOR_PROFILE,
    IMPRESSION,
    SHOW_EVENT,
    USER_PROFILE,
    MessageSchema,
)
from models.lake_rows import PARTITION_COLUMNS, lake_columns

RAW_TABLES = {"behavior-events": "behavior_events", "show-events": "show_events"}
DAY_MS = 86_400_000


@dataclass(frozen=True)
class LakeTable:
    name: str
    schema: MessageSchema
    # Snapshot tables (profiles) are partitioned by the date of the snapshot, not by event time.
    snapshot: bool = False


LAKE_TABLES: dict[str, LakeTable] = {t.name: t for t in (
    LakeTable("behavior_events", BEHAVIOR_EVENT),
    LakeTable("show_events", SHOW_EVENT),
    LakeTable("impressions", IMPRESSION),
    LakeTable("users", USER_PROFILE, snapshot=True),
    LakeTable("creators", CREATOR_PROFILE, snapshot=True),
)}


def lake_table(name: str) -> LakeTable:
    try:
        return LAKE_TABLES[name]
    except KeyError:
        raise KeyError(f"unknown lake table {name!r}; known: {', '.join(LAKE_TABLES)}") from None


def raw_path(lake_root: str, table: str) -> str:
    return f"{lake_root.rstrip('/')}/raw/{table}"


@dataclass(frozen=True)
class RawZoneSinkSpec:
    """A raw-zone table written by Flink's file sink: exactly once (files become visible on
    checkpoint), rolled at least every ``rollover_s`` seconds, a ``_SUCCESS`` marker per
    committed partition."""

    table: str
    schema: MessageSchema
    lake_root: str
    rollover_s: int = 60

    def ddl(self) -> str:
        cols = ",\n  ".join(f"`{n}` {t}" for n, t in lake_columns(self.schema))
        parts = ", ".join(f"`{c}`" for c in PARTITION_COLUMNS)
        check_s = max(1, min(10, self.rollover_s // 2))
        return f"""CREATE TEMPORARY TABLE `lake_{self.table}` (
  {cols}
) PARTITIONED BY ({parts}) WITH (
  'connector' = 'filesystem',
  'path' = '{raw_path(self.lake_root, self.table)}',
  'format' = 'json',
  'sink.rolling-policy.rollover-interval' = '{self.rollover_s}s',
  'sink.rolling-policy.inactivity-interval' = '{self.rollover_s}s',
  'sink.rolling-policy.check-interval' = '{check_s}s',
  'sink.partition-commit.trigger' = 'process-time',
  'sink.partition-commit.delay' = '0s',
  'sink.partition-commit.policy.kind' = 'success-file'
)"""


def transformed_path(lake_root: str, table: str) -> str:
    return f"{lake_root.rstrip('/')}/transformed/{table}"


def write_raw(lake_root: str, table: LakeTable, rows: pd.DataFrame, tag: str,
              snapshot_dt: str | None = None) -> int:
    """Write rows (raw-zone shape, schema columns) as JSON lines into their partitions, one
    ``part-<tag>.json`` per partition, each file atomically (written as a dot-file, renamed).
    Returns the number of files written."""
    root = local_path(raw_path(lake_root, table.name))
    if table.snapshot:
        if snapshot_dt is None:
            raise ValueError(f"{table.name} is a snapshot table: give snapshot_dt")
        groups = [(f"dt={snapshot_dt}", rows)]
    else:
        ts = rows[table.schema.time_field].to_numpy()
        days = pd.to_datetime(ts // DAY_MS * DAY_MS, unit="ms").strftime("%Y-%m-%d")
        hours = pd.Series((ts % DAY_MS) // 3_600_000).map("{:02d}".format)
        keys = pd.Series(days).radd("dt=") + "/hour=" + hours.to_numpy()
        groups = list(rows.groupby(keys.to_numpy(), sort=True))
    for key, part in groups:
        folder = root / key
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".part-{tag}.json.tmp"
        part.to_json(tmp, orient="records", lines=True, force_ascii=False)
        tmp.replace(folder / f"part-{tag}.json")
    return len(groups)


def local_path(uri: str) -> Path:
    parsed = urlparse(uri)
    if parsed.scheme not in ("", "file"):
        raise ValueError(f"{uri} is not on the local filesystem")
    return Path(parsed.path)


def data_files(root: Path) -> list[Path]:
    """Committed data files under ``root`` (skips in-progress ``.part`` files and markers)."""
    if not root.exists():
        return []
    return sorted(
        p for p in root.rglob("*")
        if p.is_file()
        and not any(part.startswith((".", "_")) for part in p.relative_to(root).parts)
    )


def read_raw(lake_root: str, table: str) -> Iterator[dict]:
    """Every committed row of a raw-zone table, with its partition columns."""
    root = local_path(raw_path(lake_root, table))
    for f in data_files(root):
        partition = dict(
            part.split("=", 1) for part in f.relative_to(root).parts[:-1] if "=" in part
        )
        with open(f, encoding="utf-8") as lines:
            for line in lines:
                if line.strip():
                    yield {**json.loads(line), **partition}


def count_raw_rows(lake_root: str, table: str) -> int:
    """Committed rows of a raw-zone table, counted as lines (no parsing: cheap to poll)."""
    total = 0
    for f in data_files(local_path(raw_path(lake_root, table))):
        with open(f, "rb") as data:
            total += sum(chunk.count(b"\n") for chunk in iter(lambda d=data: d.read(1 << 20), b""))
    return total
