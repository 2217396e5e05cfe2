"""What `onair top` shows: each job's figures, read from Flink's REST API by metric name
conventions (docs/operations.md, "Metrics"), with nothing known about any particular job.

* records in per second: the sources' ``Source…numRecordsInPerSecond``;
* records out per second: the sinks' ``…Writer.numRecordsOutPerSecond`` other than the
  dead-letter sink's, plus the feature store's ``onair.redis_writes`` rate;
* lag: per partition of the project's topics, the broker's end offset minus the Kafka
  source's ``currentOffset`` (the last record read) minus one, summed (``lag_by_partition``
  has each, named as Flink's metrics spell topics: dots as underscores); the sources'
  ``pendingRecords`` when the broker cannot be asked;
* dead letters per second: the dead-letter sink's ``Writer.numRecordsOutPerSecond``;
* latency p50 / p99 and model version: ``onair.latency_p50_ms``, ``onair.latency_p99_ms``
  and ``onair.model_version``, the largest over subtasks (``operators/metrics.py``);
* restarts (``flink_rest.restarts``: ``numRestarts`` or the exception history), checkpoint
  duration (the latest completed one's end to end).
"""

from __future__ import annotations

import re
import time
import urllib.parse

from connectors.flink_rest import call, restarts
from core.settings import FlinkSettings, KafkaSettings

FIELDS = ("name", "job_id", "state", "uptime_s", "restarts", "records_in_per_s",
          "records_out_per_s", "lag", "dead_letters_per_s", "checkpoint_ms",
          "latency_p50_ms", "latency_p99_ms", "model_version", "lag_by_partition")
OFFSET = re.compile(
    r"KafkaSourceReader\.topic\.(?P<topic>.+)\.partition\.(?P<p>\d+)\.currentOffset$")


SourceOffset = tuple[str, int]   # (topic as the metric spells it, partition)


def classify(metric_id: str) -> str | SourceOffset | None:
    """Which figure a subtask metric feeds, by its name alone (None: none); a Kafka source's
    current offset: the partition it is of."""
    if found := OFFSET.search(metric_id):
        return found["topic"], int(found["p"])
    operator, _, name = metric_id.rpartition(".")
    if name == "numRecordsInPerSecond" and operator.startswith("Source"):
        return "records_in_per_s"
    if name == "numRecordsOutPerSecond" and operator.endswith("Writer"):
        return "dead_letters_per_s" if "dead_letters" in operator else "records_out_per_s"
    if name == "pendingRecords":
        return "lag"
    if operator.endswith("onair") or ".onair" in operator:
        return {"redis_writes": "redis_writes", "latency_p50_ms": "latency_p50_ms",
                "latency_p99_ms": "latency_p99_ms", "model_version": "model_version"}.get(name)
    return None


SUMMED = {"records_in_per_s", "records_out_per_s", "lag", "dead_letters_per_s", "redis_writes"}


def partition_lag(offsets: dict[SourceOffset, float],
                  end_offsets: dict[str, dict[int, int]]) -> dict[str, int]:
    """``topic:partition`` -> records behind its end, from the sources' current offsets."""
    lag = {}
    for (topic, p), current in offsets.items():
        if p in end_offsets.get(topic, {}):
            lag[f"{topic}:{p}"] = max(0, end_offsets[topic][p] - int(current) - 1)
    return dict(sorted(lag.items()))


def combine(job: dict, values: list[tuple[str, float, float]], restarts: int,
            checkpoint_ms: float | None, redis_writes_rate: float | None,
            lag_by_partition: dict[str, int] | None = None) -> dict:
    """One job's row from its metrics ``(figure, sum over subtasks, max over subtasks)``."""
    row: dict = {"name": job["name"], "job_id": job["jid"], "state": job["state"],
                 "uptime_s": round(job.get("duration", 0) / 1000),
                 "restarts": restarts, "checkpoint_ms": checkpoint_ms}
    seen: dict[str, float] = {}
    for figure, total, biggest in values:
        if figure in SUMMED:
            seen[figure] = seen.get(figure, 0.0) + total
        else:
            seen[figure] = max(seen.get(figure, 0.0), biggest)
    seen.pop("redis_writes", None)
    row.update(seen)
    if lag_by_partition:
        row["lag"], row["lag_by_partition"] = sum(lag_by_partition.values()), lag_by_partition
    if redis_writes_rate:
        row["records_out_per_s"] = (row.get("records_out_per_s") or 0.0) + redis_writes_rate
    row["model_version"] = int(row["model_version"]) if row.get("model_version") else None
    for name in FIELDS:
        row.setdefault(name, None)
        if isinstance(row[name], float):
            row[name] = round(row[name], 1)
    return {name: row[name] for name in FIELDS}


class Top:
    """Reads the cluster's jobs; keeps the last counter readings to turn them into rates."""

    def __init__(self, flink: FlinkSettings | None = None, kafka: KafkaSettings | None = None):
        self.flink = flink or FlinkSettings.from_env()
        self.kafka = kafka or KafkaSettings.from_env()
        self.last: dict[str, tuple[float, float]] = {}  # job id -> (time, redis writes)

    def jobs(self, include_ended: bool = False) -> list[dict]:
        jobs = call(f"{self.flink.rest_url}/jobs/overview")["jobs"]
        if not include_ended:
            jobs = [j for j in jobs if j["state"] not in ("FINISHED", "CANCELED")]
        return [self.row(j) for j in sorted(jobs, key=lambda j: (j["name"], j["jid"]))]

    def row(self, job: dict) -> dict:
        base = f"{self.flink.rest_url}/jobs/{job['jid']}"
        values, offsets = [], {}
        running = job["state"] in ("RUNNING", "RESTARTING")
        for vertex in call(base).get("vertices", []) if running else []:
            url = f"{base}/vertices/{vertex['id']}/subtasks/metrics"
            wanted = {m["id"]: classify(m["id"]) for m in call(url)}
            wanted = {k: v for k, v in wanted.items() if v}
            if not wanted:
                continue
            query = urllib.parse.quote(",".join(wanted), safe=",")
            for m in call(f"{url}?get={query}&agg=sum,max"):
                figure = wanted[m["id"]]
                if isinstance(figure, tuple):
                    offsets[figure] = float(m.get("max", 0))
                else:
                    values.append((figure, float(m.get("sum", 0)), float(m.get("max", 0))))
        checkpoints = call(f"{base}/checkpoints") if running else {}
        completed = (checkpoints.get("latest") or {}).get("completed") or {}
        writes = sum(total for figure, total, _ in values if figure == "redis_writes")
        now, rate = time.monotonic(), None
        if any(figure == "redis_writes" for figure, _, _ in values):
            if job["jid"] in self.last:
                then, before = self.last[job["jid"]]
                rate = max(0.0, (writes - before) / max(now - then, 1e-3))
            self.last[job["jid"]] = (now, writes)
        return combine(job, values, restarts(job["jid"], self.flink),
                       completed.get("end_to_end_duration"), rate,
                       partition_lag(offsets, self._end_offsets({t for t, _ in offsets})))

    def _end_offsets(self, topics: set[str]) -> dict[str, dict[int, int]]:
        """End offsets by topic as metric names spell it (Flink writes a name's dots as _)."""
        from connectors.kafka_admin import end_offsets
        from core.topics import TOPICS

        physical = {self.kafka.topic(name).replace(".", "_"): self.kafka.topic(name)
                    for name in TOPICS}
        try:
            return {t: end_offsets(self.kafka, physical[t], probe_timeout_ms=0)
                    for t in topics if t in physical}
        except Exception:   # the broker away: the sources' pendingRecords stand in
            return {}
