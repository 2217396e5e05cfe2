"""The ``onair`` command: run the embedded stack, manage topics, produce, subscribe, submit jobs."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from connectors.settings import FlinkSettings, KafkaSettings, lake_root
from connectors.topics import TOPICS

PROJECT_ROOT = Path(__file__).resolve().parents[1]
JOB_PACKAGES = ("operators", "models", "connectors")


class CliError(Exception):
    """An error the user can fix; printed without a traceback."""


def _kafka() -> KafkaSettings:
    return KafkaSettings.from_env()


def _require_topic(name: str) -> None:
    if name not in TOPICS:
        raise CliError(f"unknown topic {name!r}. Known topics: {', '.join(TOPICS)}")


# ---------------------------------------------------------------------------- stack
def cmd_up(args: argparse.Namespace) -> int:
    from onair.stack import Stack

    stack = Stack.default()
    endpoints = stack.up()
    if not args.no_topics:
        from connectors.kafka_admin import create_topics

        kafka = dataclasses.replace(_kafka(), bootstrap_servers=endpoints["kafka"])
        created = create_topics(kafka)
        print(f"topics: {sum(v == 'created' for v in created.values())} created, "
              f"{sum(v == 'exists' for v in created.values())} already there")
    print("endpoints:")
    print(f"  KAFKA_BOOTSTRAP_SERVERS={endpoints['kafka']}")
    print(f"  REDIS_URL={endpoints['redis']}")
    print(f"  FLINK_REST_URL={endpoints['flink']}  (web UI)")
    print(f"state, logs and pids: {stack.home}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from onair.stack import Stack

    status = Stack.default().status()
    if args.json:
        print(json.dumps(status))
    else:
        for name, s in status.items():
            state = "healthy" if s["healthy"] else "DOWN"
            extra = {k: v for k, v in s.items() if k not in ("endpoint", "healthy")}
            print(f"{name:6} {state:8} {s['endpoint']}  "
                  + " ".join(f"{k}={v}" for k, v in extra.items()))
    return 0 if all(s["healthy"] for s in status.values()) else 1


def cmd_down(args: argparse.Namespace) -> int:
    from onair.stack import Stack

    Stack.default().down()
    return 0


# ---------------------------------------------------------------------------- topics
def cmd_topics(args: argparse.Namespace) -> int:
    if args.action == "create":
        from connectors.kafka_admin import create_topics

        kafka = _kafka()
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


# ---------------------------------------------------------------------------- produce/subscribe
def cmd_produce(args: argparse.Namespace) -> int:
    from connectors.kafka_admin import producer

    _require_topic(args.topic)
    key_field = TOPICS[args.topic].key_field
    source = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")  # noqa: SIM115
    kafka = _kafka()
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
    from kafka import TopicPartition

    from connectors.kafka_admin import LOW_LATENCY_FETCH_WAIT_MS, consumer, partitions_of

    _require_topic(args.topic)
    kafka = _kafka()
    # Partitions are assigned, not joined as a group: no rebalance wait, nothing committed.
    # A short fetch wait: alerts and rankings are printed as they arrive, not up to 500 ms on.
    c = consumer(kafka, fetch_max_wait_ms=LOW_LATENCY_FETCH_WAIT_MS)
    physical = kafka.topic(args.topic)
    parts = [TopicPartition(physical, p) for p in partitions_of(kafka, physical)]
    c.assign(parts)
    if args.from_beginning:
        c.seek_to_beginning(*parts)
    else:
        c.seek_to_end(*parts)
    seen = 0
    idle_deadline = time.monotonic() + args.timeout_s if args.timeout_s else None
    try:
        while args.max is None or seen < args.max:
            batch = c.poll(timeout_ms=500)
            if not batch:
                if idle_deadline and time.monotonic() > idle_deadline:
                    break
                continue
            for records in batch.values():
                for r in records:
                    try:
                        value = json.loads(r.value)
                        text = json.dumps(value, ensure_ascii=False, indent=None if args.compact
                                          else 2)
                    except (json.JSONDecodeError, UnicodeDecodeError):
                        text = repr(r.value[:200])
                    print(text, flush=True)
                    seen += 1
                    if args.max is not None and seen >= args.max:
                        return 0
            if args.timeout_s:
                idle_deadline = time.monotonic() + args.timeout_s
    except KeyboardInterrupt:
        pass
    finally:
        c.close()
    return 0


# ---------------------------------------------------------------------------- jobs
def flink_run_argv(job: str, job_args: list[str], detached: bool = True,
                   from_savepoint: str | None = None) -> list[str]:
    """The ``flink run`` line that submits ``jobs/<job>.py`` to the configured cluster,
    optionally resuming from a savepoint or retained checkpoint."""
    from onair.stack import pyflink_home

    script = PROJECT_ROOT / "jobs" / f"{job}.py"
    if not script.exists():
        known = sorted(p.stem for p in (PROJECT_ROOT / "jobs").glob("*.py") if p.stem[0] != "_")
        raise CliError(f"no job {job!r}. Jobs: {', '.join(known)}")
    argv = [str(pyflink_home() / "bin" / "flink"), "run", "-m", FlinkSettings.from_env().address]
    if detached:
        argv.append("-d")
    if from_savepoint:
        argv += ["-s", from_savepoint]
    argv += [
        "-py", str(script), "-pyfs", ",".join(str(PROJECT_ROOT / p) for p in JOB_PACKAGES),
        "-pyexec", sys.executable, "-pyclientexec", sys.executable,
        # `--` ends flink's own options: without it `flink run` takes a job's `--parallelism N`
        # as its own `-p` and the job never sees the flag (it then ran at its default, 1).
        "--", *job_args,
    ]
    return argv


def submit(job: str, job_args: list[str], detached: bool = True,
           from_savepoint: str | None = None) -> str:
    """Submit a job; return its Flink job id."""
    from onair.stack import Stack, check_java

    check_java()
    argv = flink_run_argv(job, job_args, detached, from_savepoint)
    print("$ " + shlex.join(argv), file=sys.stderr)
    proc = subprocess.run(argv, env=Stack.default().flink_env(), cwd=PROJECT_ROOT,
                          capture_output=True, text=True)
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise CliError(f"flink run failed (exit {proc.returncode}):\n{output[-4000:]}\n"
                       "Is the cluster up (`onair status`)?")
    if not detached:
        sys.stdout.write(proc.stdout)  # what the job's main() printed (bounded jobs' results)
    for line in output.splitlines():
        if "JobID" in line:
            return line.split()[-1]
    raise CliError(f"flink run printed no job id:\n{output[-2000:]}")


def cmd_submit(args: argparse.Namespace) -> int:
    job_id = submit(args.job, args.job_args, detached=not args.attached,
                    from_savepoint=args.from_savepoint)
    print(job_id)
    print(f"watch it at {FlinkSettings.from_env().rest_url}/#/job/running/{job_id}/overview",
          file=sys.stderr)
    return 0


def cmd_lake(args: argparse.Namespace) -> int:
    from connectors.lake import data_files, local_path

    root = local_path(args.lake) / args.zone
    files = data_files(root)
    for f in files:
        print(f"{f.stat().st_size:>10}  {f.relative_to(root)}")
    print(f"{len(files)} files under {root}", file=sys.stderr)
    return 0


def _read_lines(path: str) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise CliError(f"cannot read {path}: {e.strerror}") from None


def cmd_wer(args: argparse.Namespace) -> int:
    from operators.wer import format_report, report_json, score_lines

    refs, hyps = _read_lines(args.reference), _read_lines(args.hypothesis)
    try:
        before = score_lines(refs, hyps, ignore_case=args.ignore_case)
    except ValueError as e:
        raise CliError(str(e)) from None
    if not args.vocab:
        print(json.dumps(report_json(before), ensure_ascii=False) if args.json
              else format_report(before))
        return 0

    from operators.vocabulary import VocabularyError, load_vocabulary
    from operators.vocabulary_match import VocabularyMatcher

    try:
        matcher = VocabularyMatcher(load_vocabulary(args.vocab))
    except (VocabularyError, OSError) as e:
        raise CliError(str(e)) from None
    corrected = [matcher.apply(h) for h in hyps]
    after = score_lines(refs, [text for text, _ in corrected], ignore_case=args.ignore_case)
    changes = [{"line": n, "replacements": [r.as_dict() for r in reps]}
               for n, (_, reps) in enumerate(corrected, start=1) if reps]
    if args.json:
        print(json.dumps({"before": report_json(before), "after": report_json(after),
                          "changes": changes}, ensure_ascii=False))
        return 0
    print("=== before the vocabulary")
    print(format_report(before))
    print("\n=== after the vocabulary")
    print(format_report(after))
    print("\n=== what the vocabulary changed")
    for change in changes:
        for r in change["replacements"]:
            print(f"line {change['line']}: {r['original']!r} -> {r['replacement']!r} "
                  f"({r['rule']}, distance {r['distance']})")
    print(f"WER {before.wer:.3%} -> {after.wer:.3%}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from onair.demo import run_demo

    return run_demo(keep=args.keep)


# ---------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="onair", description="onair: streaming ML on Flink")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("up", help="start the embedded Kafka, Redis and Flink (if not running)")
    p.add_argument("--no-topics", action="store_true", help="do not create the project topics")
    p.set_defaults(func=cmd_up)
    p = sub.add_parser("status", help="health of Kafka, Redis and Flink")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)
    sub.add_parser("down", help="stop what `onair up` started").set_defaults(func=cmd_down)

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

    p = sub.add_parser("submit", help="submit jobs/JOB.py to the Flink cluster with `flink run`")
    p.add_argument("job")
    p.add_argument("job_args", nargs=argparse.REMAINDER, help="arguments for the job")
    p.add_argument("--attached", action="store_true", help="wait for the job to finish")
    p.add_argument("--from-savepoint", metavar="PATH",
                   help="resume from this savepoint or retained checkpoint")
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("lake", help="list committed files of a lake zone")
    p.add_argument("zone", nargs="?", default="raw", choices=("raw", "transformed"))
    p.add_argument("--lake", default=lake_root(), help="lake root (env ONAIR_LAKE)")
    p.set_defaults(func=cmd_lake)

    p = sub.add_parser("wer", help="word error rate of HYPOTHESIS against REFERENCE, line by line")
    p.add_argument("reference")
    p.add_argument("hypothesis")
    p.add_argument("-i", "--ignore-case", action="store_true", help="compare case-insensitively")
    p.add_argument("--vocab", help="apply this vocabulary (Phrase/IPA/SoundsLike/DisplayAs TSV) "
                                   "to the hypothesis first and report before and after")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_wer)

    from onair import alarm_cli, world_cli

    alarm_cli.add_parsers(sub)
    world_cli.add_parsers(sub)

    p = sub.add_parser("demo", help="run the end-to-end demo on the embedded stack")
    p.add_argument("--keep", action="store_true", help="leave the stack and jobs running")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from kafka.errors import KafkaError

    from onair.stack import StackError

    try:
        return args.func(args)
    except (CliError, StackError) as e:
        print(f"onair: {e}", file=sys.stderr)
        return 2
    except KafkaError as e:
        print(f"onair: Kafka at {_kafka().bootstrap_servers}: {type(e).__name__}: {e}. Is a "
              "broker running there? Start the embedded one with `onair up`, or set "
              "KAFKA_BOOTSTRAP_SERVERS.", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"onair: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
