"""Operators can see and be alerted: compute_features fed good and bad records on the stack
with Prometheus (`onair up --metrics`): `onair top --once --json` shows its figures, the named
series are in Prometheus with plausible values, every query of the Grafana dashboard returns
a series, the dead-letter alert fires while bad records keep coming, and the job-down alert
fires once the job is cancelled."""

from __future__ import annotations

import json
import threading
import time

import pytest

from connectors import flink_rest
from connectors.kafka_admin import create_topics, producer
from core.settings import KafkaSettings
from onair.cli import main
from onair.dashboard import Prometheus, concrete, panels
from onair.stack import HOST, PROMETHEUS_PORT
from onair.submit import submit

PROMETHEUS = f"http://{HOST}:{PROMETHEUS_PORT}"


_get = Prometheus(PROMETHEUS).get


def _query(expr: str) -> dict[str, float]:
    return {r["metric"].get("job_name", ""): float(r["value"][1])
            for r in _get("/api/v1/query", query=expr)["result"]}


def _alerts(name: str, job: str) -> list[str]:
    return [a["state"] for a in _get("/api/v1/alerts")["alerts"]
            if a["labels"]["alertname"] == name and a["labels"].get("job_name") == job]


def _until(check, timeout_s: float):
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(2)


@pytest.mark.integration
def test_top_prometheus_series_and_alerts(services, topic_prefix, capsys, tmp_path):
    try:
        _get("/api/v1/status/buildinfo")
    except OSError:
        pytest.fail("no Prometheus at 127.0.0.1:9090: install it (apt-get install prometheus)")
    kafka = KafkaSettings.from_env()
    create_topics(kafka)
    job = submit("compute_features", ["--checkpoint-interval-ms", "2000"])
    try:
        assert flink_rest.wait_for_state(job, {"RUNNING"}, 120) == "RUNNING"
        p = producer(kafka)
        now = int(time.time() * 1000)
        for burst in range(4):      # dead letters at several scrapes: a rate, not a blip
            for i in range(300):
                event = {"event_id": f"m{burst}-{i}", "event_type": "listen_start",
                         "ts": now + i, "user_id": f"u{i % 30}", "show_id": f"s{i % 9}",
                         "creator_id": "c1", "topic": "tech"}
                p.send(kafka.topic("behavior-events"), json.dumps(event).encode(), key=b"u")
            for _ in range(1000):
                p.send(kafka.topic("behavior-events"), b'{"bad": true}', key=b"x")
            p.flush()
            time.sleep(4)

        capsys.readouterr()
        assert main(["top", "--once", "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)["jobs"]
        row = next(r for r in rows if r["job_id"] == job)
        assert row["name"] == "compute_features" and row["state"] == "RUNNING"
        assert row["restarts"] == 0 and row["lag"] is not None
        spelt = kafka.topic("behavior-events").replace(".", "_")  # as Flink's metrics spell it
        assert {f"{spelt}:{p}" for p in range(4)} <= set(row["lag_by_partition"])
        assert row["records_in_per_s"] > 0 and row["dead_letters_per_s"] > 0
        assert row["checkpoint_ms"] is not None and row["latency_p99_ms"] >= \
            row["latency_p50_ms"] > 0

        # The named series, scraped from the reporters, with plausible values.
        assert _until(lambda: _query('sum by (job_name) (flink_taskmanager_job_task_operator_'
                                     'onair_dead_letters{job_name="compute_features"})'
                                     ).get("compute_features", 0) >= 4000, 60)
        series = {
            "flink_jobmanager_job_uptime": lambda v: v > 0,
            "flink_jobmanager_job_numRestarts": lambda v: v == 0,
            "flink_jobmanager_job_lastCheckpointDuration": lambda v: v >= 0,
            "flink_taskmanager_job_task_operator_onair_records_in": lambda v: v >= 5200,
            "flink_taskmanager_job_task_operator_onair_latency_p99_ms": lambda v: 0 < v < 60_000,
            "flink_taskmanager_job_task_operator_pendingRecords": lambda v: v >= 0,
            # RocksDB's (compute_features' default backend), for any state of the job
            "flink_taskmanager_job_task_operator_column_family_rocksdb_estimate_num_keys":
                lambda v: v > 0,
            "flink_taskmanager_job_task_operator_column_family_rocksdb_is_write_stopped":
                lambda v: v == 0,
            "flink_taskmanager_job_task_operator_column_family_rocksdb_background_errors":
                lambda v: v == 0,
        }
        for name, plausible in series.items():
            got = _query(f'max by (job_name) ({name}{{job_id="{job}"}})')
            assert "compute_features" in got and plausible(got["compute_features"]), (name, got)

        # Every query of the Grafana dashboard returns a series for this job: the dashboard
        # cannot drift from the metric names.
        charts = panels()
        # Panels of one job's own figures say so ("jobs: ..."): compute_features has the rest.
        own = [c for c in charts if c.jobs is not None]
        assert [(c.title, c.jobs) for c in own] == [("Rolling WER (correct_transcripts)",
                                                     ("correct_transcripts",))]
        exprs = [e for c in charts if c not in own for e in c.exprs]
        assert len(exprs) >= 10
        for expr in exprs:
            assert _get("/api/v1/query", query=concrete(expr, "compute_features"))["result"], expr
        # `onair dashboard` draws the same queries over time: a line in each of those panels.
        png = tmp_path / "dashboard.png"
        assert main(["dashboard", "--out", str(png), "--minutes", "3"]) == 0
        assert png.read_bytes()[:4] == b"\x89PNG"
        assert f"{len(charts)} panels" in capsys.readouterr().out

        # Bad records keep coming (10 a second) until the dead-letter alert has been active
        # for its 2 minutes and fires.
        stop = threading.Event()

        def hostile() -> None:
            while not stop.wait(0.1):
                p.send(kafka.topic("behavior-events"), b'{"bad": true}', key=b"x")
                p.flush()

        sender = threading.Thread(target=hostile, daemon=True)
        sender.start()
        try:
            assert _until(lambda: "firing" in _alerts("OnairDeadLetters", "compute_features"),
                          240)
        finally:
            stop.set()
            sender.join(5)
        assert not _alerts("OnairJobGone", "compute_features")
    finally:
        flink_rest.cancel(job)
    assert flink_rest.wait_for_state(job, {"CANCELED"}, 60) == "CANCELED"
    assert _until(lambda: "firing" in _alerts("OnairJobGone", "compute_features"), 150)
