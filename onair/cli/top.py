"""``onair top``: the cluster's jobs at a glance, refreshed every second (``--once --json``:
one reading as a JSON line for scripts). Figures and where they come from: onair/top.py."""

from __future__ import annotations

import argparse
import json
import os
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
        if args.json:
            print(json.dumps({"jobs": rows}))
            return 0
        from rich.console import Console

        console = Console(record=bool(args.svg), width=140 if args.svg else None)
        console.print(_table(rows))
        if args.svg:
            console.save_svg(args.svg, title="onair top")
        return 0
    from rich.live import Live

    with Live(_table(top.jobs(args.all)), refresh_per_second=2, screen=False) as live:
        try:
            while True:
                time.sleep(1.0)
                live.update(_table(top.jobs(args.all)))
        except KeyboardInterrupt:
            return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from pathlib import Path

    from onair.dashboard import render

    drawn = render(args.prometheus, Path(args.out), args.minutes)
    empty = [title for title, n in drawn.items() if not n]
    print(f"{args.out}: {len(drawn)} panels, {sum(drawn.values())} series"
          + (f"; no data: {', '.join(empty)}" if empty else ""))
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("top", help="the cluster's jobs at a glance: state, restarts, rates, "
                                   "lag, dead letters, checkpoints, latency, model")
    p.add_argument("--once", action="store_true", help="one reading, then exit")
    p.add_argument("--json", action="store_true", help="with --once: one JSON line")
    p.add_argument("--all", action="store_true", help="include finished and cancelled jobs")
    p.add_argument("--svg", metavar="FILE", help="with --once: also save the table as SVG")
    p.set_defaults(func=cmd_top)

    from onair.stack import HOST, PROMETHEUS_PORT

    p = sub.add_parser("dashboard", help="the Grafana dashboard's panels drawn from "
                                         "Prometheus into a PNG (no Grafana needed)")
    p.add_argument("--out", default="dashboard.png", help="PNG file to write")
    p.add_argument("--minutes", type=float, default=15, help="time range, up to now")
    p.add_argument("--prometheus", default=os.environ.get(
        "PROMETHEUS_URL", f"http://{HOST}:{PROMETHEUS_PORT}"),
        help="Prometheus' URL (env PROMETHEUS_URL; default: `onair up --metrics`' server)")
    p.set_defaults(func=cmd_dashboard)
