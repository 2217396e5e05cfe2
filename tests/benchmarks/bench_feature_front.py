"""Benchmark: how fast raw events can reach Python when the JVM hands them over in batches.

compute_features is held below ~11,000 events/s on this machine because every event crosses
into Python at least twice (docs/design-notes.md). The way out measured here: a processing-time
``TUMBLE`` window in Flink SQL groups each Kafka partition's raw records into one row per
window, so Python sees a few rows per second carrying thousands of events. Which column types
carry the batch decides whether that pays:

- ``rows``: ``ARRAY_AGG(ROW(value, topic, partition, offset))``: each element is decoded as a
  Row on the Python side;
- ``arrays``: ``ARRAY_AGG(value)`` and ``ARRAY_AGG(offset)``, two arrays of primitives in the
  same order (topic and partition are the group key);
- ``listagg``: ``LISTAGG`` of ``offset,base64(value)`` lines into one string;
- ``jvm``: the window alone, ``COUNT(*)`` out, no Python (the JVM side's own ceiling);
- ``jvm-json-ts``: the same with the event time parsed from the JSON value
  (``JSON_VALUE``), which a SQL watermark on event time costs per record;
- ``jvm-listagg``: the same with ``listagg``'s string built (only its length leaves the JVM),
  to tell the JVM's share of ``listagg`` from Python's.

Every Python variant parses each value with orjson, as validation would. Events are
behaviour-event JSON made by SQL datagen on the local mini-cluster (no Kafka: the hand-over is
what is measured). The rate is taken between the first and the last window seen, so job start
and teardown are excluded. Prints one JSON line.

Run: ``./dev bench feature_front [--events 300000] [--python-mode process] [--variants ...]``.
"""

from __future__ import annotations

import argparse
import json
import os
import site
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = ("arrays", "rows", "listagg", "jvm", "jvm-json-ts", "jvm-listagg")

EVENT_JSON = (
    "CAST(CONCAT('{\"event_id\":\"e', CAST(n AS STRING), '\",\"event_type\":\"listen_start\","
    "\"user_id\":\"u', CAST(MOD(n, 2000) AS STRING), '\",\"ts\":', "
    "CAST(1764000000000 + n AS STRING), ',\"show_id\":\"s', CAST(MOD(n, 60) AS STRING), "
    "'\",\"topic\":\"music\"}') AS BYTES)"
)
PAYLOAD = {
    "arrays": "ARRAY_AGG(`value`) AS vals, ARRAY_AGG(`offset`) AS offs",
    "rows": "ARRAY_AGG(CAST(ROW(`value`, `topic`, `partition`, `offset`) AS ROW<`value` BYTES, "
            "`topic` STRING, `partition` INT, `offset` BIGINT>)) AS recs",
    "listagg": "LISTAGG(CONCAT(CAST(`offset` AS STRING), ',', TO_BASE64(`value`)), "
               "U&'\\000A') AS lines",
    "jvm": "COUNT(*) AS n",
    "jvm-json-ts": "COUNT(*) AS n, MAX(TRY_CAST(JSON_VALUE(CAST(`value` AS STRING), '$.ts') "
                   "AS BIGINT)) AS max_ts",
}
LISTAGG_LINES = PAYLOAD["listagg"].removesuffix(" AS lines")
PAYLOAD["jvm-listagg"] = f"COUNT(*) AS n, CHAR_LENGTH({LISTAGG_LINES}) AS chars"


def _events_of(variant: str, row) -> int:
    """Parse every event of one window row as validation would; return how many."""
    import orjson

    if variant == "arrays":
        for value, _offset in zip(row[2], row[3], strict=True):
            orjson.loads(value)
        return len(row[2])
    if variant == "rows":
        for rec in row[2]:
            orjson.loads(rec.value)
        return len(row[2])
    import pybase64

    lines = row[2].split("\n")
    for line in lines:
        orjson.loads(pybase64.b64decode(line.partition(",")[2]))
    return len(lines)


def run_variant(variant: str, events: int, python_mode: str, window_ms: int) -> dict:
    from pyflink.common import Configuration, Types
    from pyflink.datastream import StreamExecutionEnvironment

    from connectors.flink_env import table_env

    conf = Configuration()
    conf.set_string("python.execution-mode", python_mode)
    conf.set_string("python.executable", sys.executable)
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(1)
    t_env = table_env(env)
    src, view = f"src_{variant.replace('-', '_')}", f"raw_{variant.replace('-', '_')}"
    t_env.execute_sql(f"""CREATE TEMPORARY TABLE {src} (n BIGINT, proc AS PROCTIME()) WITH (
      'connector' = 'datagen', 'rows-per-second' = '1000000', 'number-of-rows' = '{events}',
      'fields.n.kind' = 'sequence', 'fields.n.start' = '1', 'fields.n.end' = '{events}')""")
    t_env.execute_sql(f"""CREATE TEMPORARY VIEW {view} AS SELECT {EVENT_JSON} AS `value`,
      'behavior-events' AS `topic`, CAST(MOD(n, 4) AS INT) AS `partition`, n AS `offset`,
      proc FROM {src}""")
    table = t_env.sql_query(
        f"SELECT `topic`, `partition`, {PAYLOAD[variant]} "
        f"FROM TABLE(TUMBLE(TABLE {view}, DESCRIPTOR(proc), "
        f"INTERVAL '{window_ms / 1000:.3f}' SECOND)) "
        "GROUP BY `topic`, `partition`, window_start, window_end")
    stamps: list[tuple[float, int]] = []
    if variant.startswith("jvm"):
        with table.execute().collect() as rows:
            for row in rows:
                stamps.append((time.time(), row[2]))
    else:
        counted = t_env.to_data_stream(table).map(
            lambda row: (time.time(), _events_of(variant, row)),
            output_type=Types.TUPLE([Types.DOUBLE(), Types.INT()]))
        with counted.execute_and_collect() as rows:
            stamps = [tuple(r) for r in rows]
    stamps.sort()
    # A processing-time window still open when the bounded source ends may never fire: the
    # last window's events can be missing. The rate is taken over the windows that did.
    seen = sum(n for _, n in stamps)
    span = stamps[-1][0] - stamps[0][0]
    return {"events_per_s": round(sum(n for _, n in stamps[1:]) / span) if span > 0 else None,
            "events_seen": seen, "windows": len(stamps),
            "events_per_window": round(seen / len(stamps))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--python-mode", default="thread", choices=("thread", "process"))
    parser.add_argument("--window-ms", type=int, default=100)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    args = parser.parse_args()
    # Thread mode embeds CPython in the mini-cluster's JVM: it finds pyflink and this
    # checkout only on PYTHONPATH, which must be set before that JVM starts.
    os.environ["PYTHONPATH"] = os.pathsep.join([*site.getsitepackages(), str(ROOT)])
    results = {v: run_variant(v, args.events, args.python_mode, args.window_ms)
               for v in args.variants}
    print(json.dumps({"bench": "feature_front", "events": args.events,
                      "python_mode": args.python_mode, "window_ms": args.window_ms,
                      **{f"{v}_events_per_s": r["events_per_s"] for v, r in results.items()},
                      "detail": results}))


if __name__ == "__main__":
    main()
