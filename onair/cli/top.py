"""``onair top``: the cluster's jobs at a glance, refreshed every second (``--once --json``:
one reading as a JSON line for scripts). Figures and where they come from: onair/top.py."""

from __future__ import annotations

import argparse
import json
import time


def _table(rows: list[dict]):
    from rich.table import Table

    table = Table(title="onair jobs", expand=True)
    heads = ("job", "state", "up", "restarts", "in/s", "out/s", "lag", "dead/s", "ckpt ms",
             "p50 ms", "p99 ms", "model")
    for head in heads:
        table.add_column(head, justify="left" if head in ("job", "state") else "right")

    def show(value) -> str:
        return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)

    for r in rows:
        style = None if r["state"] == "RUNNING" else "bold red"
        table.add_row(r["name"], r["state"], f"{r['uptime_s'] // 60}m", show(r["restarts"]),
                      show(r["records_in_per_s"]), show(r["records_out_per_s"]), show(r["lag"]),
                      show(r["dead_letters_per_s"]), show(r["checkpoint_ms"]),
                      show(r["latency_p50_ms"]), show(r["latency_p99_ms"]),
                      show(r["model_version"]), style=style)
    return table


def cmd_top(args: argparse.Namespace) -> int:
    from onair.top import Top

    top = Top()
    if args.once:
        top.jobs(args.all)      # a first reading, so counters become rates
        time.sleep(1.0)
        rows = top.jobs(args.all)
        print(json.dumps({"jobs": rows}) if args.json else "")
        if not args.json:
            from rich.console import Console

            Console().print(_table(rows))
        return 0
    from rich.live import Live

    with Live(_table(top.jobs(args.all)), refresh_per_second=2, screen=False) as live:
        try:
            while True:
                time.sleep(1.0)
                live.update(_table(top.jobs(args.all)))
        except KeyboardInterrupt:
            return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("top", help="the cluster's jobs at a glance: state, restarts, rates, "
                                   "lag, dead letters, checkpoints, latency, model")
    p.add_argument("--once", action="store_true", help="one reading, then exit")
    p.add_argument("--json", action="store_true", help="with --once: one JSON line")
    p.add_argument("--all", action="store_true", help="include finished and cancelled jobs")
    p.set_defaults(func=cmd_top)
