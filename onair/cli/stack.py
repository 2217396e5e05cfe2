"""``onair up | status | down``: the embedded Kafka, Redis and Flink."""

from __future__ import annotations

import argparse
import dataclasses
import json

from core.settings import RedisSettings, redact
from onair.cli.common import kafka_settings


def cmd_up(args: argparse.Namespace) -> int:
    from onair.stack import Stack

    stack = Stack.default()
    endpoints = stack.up(metrics=args.metrics, insecure=args.insecure or None,
                         tls=args.tls or None)
    if not args.no_topics:
        from connectors.kafka_admin import create_topics

        kafka = dataclasses.replace(kafka_settings(), bootstrap_servers=endpoints["kafka"])
        created = create_topics(kafka)
        print(f"topics: {sum(v == 'created' for v in created.values())} created, "
              f"{sum(v == 'exists' for v in created.values())} already there")
    print("endpoints:")
    print(f"  KAFKA_BOOTSTRAP_SERVERS={endpoints['kafka']}")
    print(f"  REDIS_URL={redact(endpoints['redis'])}"
          + (f"  (user and password: {stack.secrets}/stack.env, read by every onair client)"
             if RedisSettings.from_env().username else "  (no password)"))
    print(f"  FLINK_REST_URL={endpoints['flink']}  (web UI)")
    if endpoints.get("prometheus"):
        print(f"  Prometheus: {endpoints['prometheus']}  (alerts: /alerts; `onair top` for a "
              "terminal view)")
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
            print(f"{name:10} {state:8} {s['endpoint']}  "
                  + " ".join(f"{k}={v}" for k, v in extra.items()))
    return 0 if all(s["healthy"] for s in status.values()) else 1


def cmd_down(args: argparse.Namespace) -> int:
    from onair.stack import Stack

    Stack.default().down()
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("up", help="start the embedded Kafka, Redis and Flink (if not running)")
    p.add_argument("--no-topics", action="store_true", help="do not create the project topics")
    p.add_argument("--metrics", action="store_true",
                   help="also a Prometheus server (system package) on 127.0.0.1:9090 scraping "
                        "the cluster, with the alert rules of infra/prometheus loaded")
    p.add_argument("--insecure", action="store_true",
                   help="Redis without a password, as before (loopback only; see "
                        "docs/security.md)")
    p.add_argument("--tls", action="store_true",
                   help="Redis over TLS only, with a CA made for this stack "
                        "($ONAIR_HOME/secrets/tls); needs the system redis-server")
    p.set_defaults(func=cmd_up)
    p = sub.add_parser("status", help="health of Kafka, Redis and Flink")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)
    sub.add_parser("down", help="stop what `onair up` started").set_defaults(func=cmd_down)
