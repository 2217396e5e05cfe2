"""The ``onair`` command: one module per command group, assembled here."""

from __future__ import annotations

import argparse
import sys

from onair.cli import (
    alarms,
    demo,
    docs,
    jobs,
    lake,
    pipeline,
    stack,
    top,
    topics,
    transcripts,
    world,
)
from onair.cli.common import CliError, kafka_settings

GROUPS = (stack, topics, jobs, top, lake, transcripts, alarms, world, pipeline, demo, docs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="onair", description="onair: streaming ML on Flink")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from kafka.errors import KafkaError

    from onair.stack import StackError
    from onair.submit import SubmitError

    try:
        return args.func(args)
    except (CliError, StackError, SubmitError) as e:
        print(f"onair: {e}", file=sys.stderr)
        return 2
    except KafkaError as e:
        kafka = kafka_settings().bootstrap_servers
        print(f"onair: Kafka at {kafka}: {type(e).__name__}: {e}. Is a "
              "broker running there? Start the embedded one with `onair up`, or set "
              "KAFKA_BOOTSTRAP_SERVERS.", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"onair: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
