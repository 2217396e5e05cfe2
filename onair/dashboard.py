"""The Grafana dashboard without Grafana: each panel's PromQL (``infra/grafana/dashboards/
onair.json``) run against a Prometheus over a time range, one line per job, drawn as a grid of
charts in one PNG. For the embedded stack, which has Prometheus (``onair up --metrics``) but no
Grafana, and for the docs; the integration test runs the same queries, so the dashboard cannot
drift from the metric names.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from core.settings import PROJECT_ROOT

DASHBOARD = PROJECT_ROOT / "infra" / "grafana" / "dashboards" / "onair.json"
JOBS_METRIC = "flink_jobmanager_job_uptime"   # the dashboard's $job variable's source


@dataclass(frozen=True)
class Panel:
    title: str
    exprs: tuple[str, ...]
    unit: str
    jobs: tuple[str, ...] | None      # None: every job; else the panel's description names them


def panels(dashboard: dict | None = None) -> list[Panel]:
    """The dashboard's charts, in order."""
    dashboard = dashboard or json.loads(DASHBOARD.read_text())
    found = []
    for p in dashboard["panels"]:
        if not p.get("targets"):
            continue
        description = p.get("description", "")
        jobs = None
        if description.startswith("jobs:"):   # "jobs: a, b" -- a figure only these publish
            jobs = tuple(j.strip() for j in description[5:].split(".")[0].split(","))
        found.append(Panel(p["title"], tuple(t["expr"] for t in p["targets"]),
                           p.get("fieldConfig", {}).get("defaults", {}).get("unit", ""), jobs))
    return found


def concrete(expr: str, job: str, rate_interval: str = "1m") -> str:
    """A panel's query for one job, with Grafana's variables filled in."""
    return expr.replace("$job", job).replace("$__rate_interval", rate_interval)


class Prometheus:
    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def get(self, path: str, **params) -> dict:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=15) as resp:
            return json.loads(resp.read())["data"]

    def instant(self, expr: str) -> list[dict]:
        return self.get("/api/v1/query", query=expr)["result"]

    def series(self, expr: str, start: float, end: float, step: float) -> list[tuple[float, float]]:
        """One series' points (the first the query returns; the panels' queries aggregate)."""
        result = self.get("/api/v1/query_range", query=expr, start=start, end=end, step=step)
        values = result["result"][0]["values"] if result["result"] else []
        return [(float(t), float(v)) for t, v in values]

    def jobs(self, start: float, end: float) -> list[str]:
        result = self.get("/api/v1/query_range", query=JOBS_METRIC, start=start, end=end,
                          step=max(15.0, (end - start) / 200))["result"]
        return sorted({r["metric"].get("job_name", "") for r in result} - {""})


def render(prometheus_url: str, out: Path, minutes: float = 15,
           dashboard: dict | None = None) -> dict[str, int]:
    """Draw every panel over the last ``minutes`` into ``out`` (PNG); return the number of
    series drawn per panel title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prom = Prometheus(prometheus_url)
    end = time.time()
    start = end - minutes * 60
    step = max(5.0, minutes * 60 / 240)
    charts = panels(dashboard)
    jobs = prom.jobs(start, end)
    cols = 3
    rows = -(-len(charts) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 2.9 * rows), squeeze=False)
    colour = {job: f"C{i % 10}" for i, job in enumerate(jobs)}   # a job's colour everywhere
    drawn: dict[str, int] = {}
    for ax, panel in zip(axes.flat, charts, strict=False):
        drawn[panel.title] = 0
        spread: list[float] = []
        for job in jobs:
            if panel.jobs is not None and job not in panel.jobs:
                continue
            for i, expr in enumerate(panel.exprs):
                points = prom.series(concrete(expr, job), start, end, step)
                if not points:
                    continue
                label = job + (f" ({'p50' if i == 0 else 'p99'})" if len(panel.exprs) > 1
                               and "latency" in panel.title.lower() else "")
                ax.plot([(t - end) / 60 for t, _ in points], [v for _, v in points],
                        label=label, linewidth=1.2, linestyle="-" if i == 0 else "--",
                        color=colour[job])
                spread += [v for _, v in points if v > 0]
                drawn[panel.title] += 1
        if panel.unit == "ms" and spread and max(spread) > 100 * min(spread):
            # a first slow minute (JIT, a backlog) would flatten the rest
            ax.set_yscale("log")
        ax.set_title(f"{panel.title}" + (f"  [{panel.unit}]" if panel.unit else ""),
                     fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("minutes before now", fontsize=7)
        ax.grid(alpha=0.3)
        if drawn[panel.title]:
            ax.legend(fontsize=6, loc="upper left")
        else:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", color="grey")
    for ax in list(axes.flat)[len(charts):]:
        ax.axis("off")
    fig.suptitle(f"onair dashboard, last {minutes:g} min ({prometheus_url})", fontsize=11)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return drawn
