"""A small client for Flink's REST API (jobs overview, cancel, wait for a state)."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from pathlib import Path

from core.settings import FlinkSettings

TERMINAL = {"FINISHED", "CANCELED", "FAILED"}


def call(url: str, method: str = "GET") -> dict:
    req = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(req, timeout=10) as resp:
        body = resp.read()
    return json.loads(body) if body else {}


def jobs_overview(flink: FlinkSettings | None = None) -> list[dict]:
    """``/jobs/overview``: every job with its ``jid``, ``name`` and ``state``."""
    flink = flink or FlinkSettings.from_env()
    return call(f"{flink.rest_url}/jobs/overview")["jobs"]


def job_state(job_id: str, flink: FlinkSettings | None = None) -> str:
    flink = flink or FlinkSettings.from_env()
    return call(f"{flink.rest_url}/jobs/{job_id}")["state"]


def restarts(job_id: str, flink: FlinkSettings | None = None) -> int:
    """How many times the job restarted: ``numRestarts`` as of the last metrics fetch, or the
    failures in its exception history if more (the metric was seen at 0 after a restart of
    a job whose only region failed)."""
    flink = flink or FlinkSettings.from_env()
    values = call(f"{flink.rest_url}/jobs/{job_id}/metrics?get=numRestarts")
    metric = int(float(values[0]["value"])) if values else 0
    return max(metric, len(exceptions(job_id, flink)))


def exceptions(job_id: str, flink: FlinkSettings | None = None) -> list[str]:
    """The root exceptions of the job's failures so far (its exception history), newest
    first: what made it restart."""
    flink = flink or FlinkSettings.from_env()
    history = call(f"{flink.rest_url}/jobs/{job_id}/exceptions").get("exceptionHistory", {})
    return [e.get("exceptionName", "") + ": " + (e.get("stacktrace") or "")[:2000]
            for e in history.get("entries", [])]


def records_in(job_id: str, vertex_name_part: str, flink: FlinkSettings | None = None
               ) -> int | None:
    """Records the first vertex whose name contains ``vertex_name_part`` has received, as of
    the JobManager's last metrics fetch (``metrics.fetcher.update-interval``), or None."""
    flink = flink or FlinkSettings.from_env()
    for vertex in call(f"{flink.rest_url}/jobs/{job_id}").get("vertices", []):
        if vertex_name_part in vertex["name"]:
            return vertex.get("metrics", {}).get("read-records")
    return None


def vertex_metric(job_id: str, vertex_name_start: str, metric_suffix: str,
                  flink: FlinkSettings | None = None, agg: str = "sum") -> float | None:
    """A metric aggregated (``agg``: sum, max, min or avg) over the subtasks of the first
    vertex whose name starts with ``vertex_name_start`` (its chain's first operator; sources'
    names hold topic names): the first metric id ending in ``metric_suffix`` (user metrics
    are named ``<operator>.<group>.<name>``), as of the last metrics fetch, or None."""
    flink = flink or FlinkSettings.from_env()
    for vertex in call(f"{flink.rest_url}/jobs/{job_id}").get("vertices", []):
        if vertex["name"].startswith(vertex_name_start):
            url = f"{flink.rest_url}/jobs/{job_id}/vertices/{vertex['id']}/subtasks/metrics"
            names = [m["id"] for m in call(url) if m["id"].endswith(metric_suffix)]
            if names:
                values = call(f"{url}?get={names[0]}&agg={agg}")
                return float(values[0][agg]) if values else None
    return None


def cancel(job_id: str, flink: FlinkSettings | None = None) -> None:
    flink = flink or FlinkSettings.from_env()
    call(f"{flink.rest_url}/jobs/{job_id}?mode=cancel", method="PATCH")


def latest_checkpoint(job_id: str, flink: FlinkSettings | None = None, *,
                      triggered_after_ms: int = 0) -> str | None:
    """Path of the job's latest completed checkpoint (retained on cancel), or None; with
    ``triggered_after_ms``, only a checkpoint triggered after that wall-clock time."""
    flink = flink or FlinkSettings.from_env()
    latest = call(f"{flink.rest_url}/jobs/{job_id}/checkpoints").get("latest", {})
    completed = latest.get("completed") or {}
    if completed.get("trigger_timestamp", 0) < triggered_after_ms:
        return None
    return completed.get("external_path")


def retained_checkpoint(job_id: str, flink: FlinkSettings | None = None, *,
                        triggered_after_ms: int = 0, timeout_s: float = 15) -> str | None:
    """The checkpoint a cancelled job retained (see ``latest_checkpoint``). The REST API
    caches checkpoint statistics for a few seconds, so just after the cancel it can still
    name one that a later checkpoint subsumed and deleted: a local (``file:``) one is asked
    for again until the one named exists."""
    deadline = time.monotonic() + timeout_s
    while True:
        path = latest_checkpoint(job_id, flink, triggered_after_ms=triggered_after_ms)
        if (path is None or not path.startswith("file:")
                or Path(urllib.parse.urlparse(path).path).exists()
                or time.monotonic() > deadline):
            return path
        time.sleep(0.5)


def wait_for_state(job_id: str, states: set[str], timeout_s: float = 120,
                   flink: FlinkSettings | None = None) -> str:
    """Poll until the job reaches one of ``states`` (or a terminal state); return it."""
    deadline = time.monotonic() + timeout_s
    state = "UNKNOWN"
    while time.monotonic() < deadline:
        state = job_state(job_id, flink)
        if state in states or state in TERMINAL:
            return state
        time.sleep(0.5)
    raise TimeoutError(f"job {job_id} still {state} after {timeout_s}s")
