"""``onair topics | produce | subscribe``: the project's topics and their records."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from core.topics import TOPICS
from onair.cli.common import kafka_settings, require_topic


def cmd_topics(args: argparse.Namespace) -> int:
    if args.action == "create":
        from connectors.kafka_admin import create_topics

        kafka = kafka_settings()
        for name, state in create_topics(kafka).items():
            print(f"{kafka.topic(name):32} {TOPICS[name].partitions} partitions  {state}")
    elif args.action == "list":
        for t in TOPICS.values():
            print(f"{t.name:24} partitions={t.partitions} key={t.key_field:12} "
                  f"schema={t.schema.name}  {t.description}")
    elif args.action == "schemas":
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for t in TOPICS.values():
            (out / f"{t.name}.schema.json").write_text(
                json.dumps(t.schema.json_schema(), indent=2) + "\n")
        print(f"wrote {len(TOPICS)} JSON Schema files to {out}")
    return 0


def cmd_produce(args: argparse.Namespace) -> int:
    from connectors.kafka_admin import producer

    require_topic(args.topic)
    key_field = TOPICS[args.topic].key_field
    source = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")  # noqa: SIM115
    kafka = kafka_settings()
    p = producer(kafka)
    sent = 0
    try:
        for line in source:
            line = line.rstrip("\n")
            if not line.strip():
                continue
            # Lines are sent as they are (bad ones too: validation is the jobs' work); the key
            # is taken from the topic's key field when the line is a JSON object that has it.
            key = None
            try:
                value = json.loads(line)
                if isinstance(value, dict) and value.get(key_field) is not None:
                    key = str(value[key_field]).encode()
            except json.JSONDecodeError:
                pass
            p.send(kafka.topic(args.topic), value=line.encode("utf-8"), key=key)
            sent += 1
        p.flush()
    finally:
        p.close()
        if source is not sys.stdin:
            source.close()
    print(f"produced {sent} records to {args.topic}", file=sys.stderr)
    return 0


def cmd_subscribe(args: argparse.Namespace) -> int:
    return subscribe(args.topic, from_beginning=args.from_beginning, max_records=args.max,
                     timeout_s=args.timeout_s, compact=args.compact)


def subscribe(topic: str, *, from_beginning: bool = False, max_records: int | None = None,
              timeout_s: float | None = None, compact: bool = False) -> int:
    """Print a topic's records as JSON as they arrive (the demo's view of alerts too)."""
    from connectors.kafka_admin import LOW_LATENCY_FETCH_WAIT_MS, end_offsets
    from connectors.kafka_committed import CommittedReader

    require_topic(topic)
    kafka = kafka_settings()
    physical = kafka.topic(topic)
    # Read straight from the partitions (no consumer group: no rebalance wait, nothing
    # committed), committed records only, with a short fetch wait: alerts and rankings are
    # printed as they arrive.
    reader = CommittedReader(kafka, physical)
    seen = 0
    try:
        if not from_beginning:
            reader.skip_to_end(end_offsets(kafka, physical, probe_timeout_ms=0))
        idle_deadline = time.monotonic() + timeout_s if timeout_s else None
        while max_records is None or seen < max_records:
            records = reader.read(max_wait_ms=LOW_LATENCY_FETCH_WAIT_MS)
            if not records:
                if idle_deadline and time.monotonic() > idle_deadline:
                    break
                continue
            for r in records:
                print(_as_text(r.value, compact), flush=True)
                seen += 1
                if max_records is not None and seen >= max_records:
                    return 0
            if timeout_s:
                idle_deadline = time.monotonic() + timeout_s
    except KeyboardInterrupt:
        pass
    finally:
        reader.close()
    return 0


def _as_text(value: bytes | None, compact: bool) -> str:
    try:
        return json.dumps(json.loads(value), ensure_ascii=False, indent=None if compact else 2)
    except (TypeError, json.JSONDecodeError, UnicodeDecodeError):
        return repr((value or b"")[:200])


def add_parsers(sub) -> None:
    p = sub.add_parser("topics", help="create or list the project's topics")
    p.add_argument("action", choices=("create", "list", "schemas"))
    p.add_argument("--out", default="schemas", help="folder for `topics schemas` output")
    p.set_defaults(func=cmd_topics)

    p = sub.add_parser("produce", help="send JSON lines to a topic (env KAFKA_BOOTSTRAP_SERVERS)")
    p.add_argument("topic")
    p.add_argument("--file", default="-", help="JSON lines file (default stdin)")
    p.set_defaults(func=cmd_produce)

    p = sub.add_parser("subscribe", help="print a topic's records as JSON (read committed)")
    p.add_argument("topic")
    p.add_argument("--from-beginning", action="store_true")
    p.add_argument("--max", type=int, default=None, help="stop after N records")
    p.add_argument("--timeout-s", type=float, default=None,
                   help="stop after this many seconds without a record")
    p.add_argument("--compact", action="store_true", help="one line per record")
    p.set_defaults(func=cmd_subscribe)

