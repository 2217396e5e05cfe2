"""The ranker's daily pipeline: compact_lake -> build_batch_features -> train_ranker (with its
promotion gate), each a bounded Flink job run to completion, in that order, for one day.

For ``--as-of D`` it compacts the lake's raw zone up to D-1, builds the batch features as of
the start of D (offline and online: what serving reads that day), and trains on the
impressions up to D-1 (the last ``--eval-days`` of them held out). The candidate is promoted
only if the gate passes (``models.ranking.gate``).

Every run leaves a **run record**: the inputs' fingerprints (each compacted partition the
training read: path, size, sha256), the code version, the parameters, each step's arguments,
summary and duration, and the outputs (batch feature run, model version, its ONNX sha256, the
gate's verdict). It is written under ``$ONAIR_HOME/pipeline/runs/`` and, when a model was
registered, beside it in the registry (``pipeline_run.json``): the model's lineage. The same
lake, as-of day and seed give the same ONNX sha256.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path

from core.settings import state_dir

RUN_FILE = "pipeline_run.json"
TRAINING_TABLES = ("impressions", "behavior_events", "show_events", "users", "creators")


@dataclass(frozen=True)
class DailyRun:
    """What one daily run does (``onair pipeline daily`` flags)."""

    as_of: date
    lake: str
    name: str = "show_ranker"
    seed: int = 7
    eval_days: int = 5
    lookback_days: int = 60
    promote: bool = True
    train_args: tuple[str, ...] = ()  # more train_ranker flags, e.g. ("--w-like", "3")

    def steps(self) -> list[tuple[str, list[str]]]:
        day_before = (self.as_of - timedelta(days=1)).isoformat()
        train = ["--lake", self.lake, "--to", day_before, "--name", self.name,
                 "--seed", str(self.seed), "--eval-seed", str(self.seed),
                 "--eval-days", str(self.eval_days), "--lookback-days",
                 str(self.lookback_days), *self.train_args]
        return [("compact_lake", ["--lake", self.lake, "--to", day_before]),
                ("build_batch_features", ["--lake", self.lake, "--as-of",
                                          self.as_of.isoformat(), "--lookback-days",
                                          str(self.lookback_days)]),
                ("train_ranker", train + (["--promote"] if self.promote else []))]


@dataclass
class RunRecord:
    run_id: str
    config: dict
    code_version: str
    started_at: str
    steps: list[dict] = field(default_factory=list)
    inputs: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)
    status: str = "running"
    seconds: float = 0.0


def lake_inputs(lake: str, last_day: date) -> dict:
    """Fingerprints of the compacted partitions up to ``last_day``: what training read."""
    from connectors.lake import local_path, transformed_path
    from connectors.lake_compaction import partition_file, transformed_partitions
    from models.registry import fingerprint_files

    out = {}
    for table in TRAINING_TABLES:
        files = [partition_file(lake, table, dt) for dt in transformed_partitions(lake, table)
                 if dt <= last_day.isoformat()]
        root = local_path(transformed_path(lake, table))
        out[table] = fingerprint_files([f for f in files if f.exists()], root)
    return out


def run_daily(run: DailyRun, echo=print) -> RunRecord:
    """Run the day's jobs in order; stop at the first that fails (the record says which)."""
    from models.registry import Registry, code_version
    from onair.submit import run_attached

    run_id = f"{run.as_of.isoformat()}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}"
    record = RunRecord(run_id=run_id, config=asdict(run) | {"as_of": run.as_of.isoformat()},
                       code_version=code_version(),
                       started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    started = time.monotonic()
    try:
        for job, args in run.steps():
            echo(f"== {job} {' '.join(args)}")
            t0 = time.monotonic()
            job_id, summary, _ = run_attached(job, args)
            record.steps.append({"job": job, "args": args, "flink_job_id": job_id,
                                 "seconds": round(time.monotonic() - t0, 1),
                                 "summary": summary})
            echo(f"   {json.dumps(summary)[:300]}")
            if job == "compact_lake":
                record.inputs = lake_inputs(run.lake, run.as_of - timedelta(days=1))
        trained = record.steps[-1]["summary"]
        registry = Registry()
        mv = registry.resolve(run.name, trained["model"].split(":", 1)[1])
        record.outputs = {
            "batch_features": record.steps[1]["summary"].get("run_id"),
            "model": mv.ref, "onnx_sha256": mv.onnx_sha256,
            "promoted": trained.get("promoted"), "gate": trained.get("gate"),
            "production": getattr(registry.find(run.name), "ref", None)}
        record.status = "succeeded"
    except Exception as e:
        record.status = f"failed: {type(e).__name__}: {str(e)[:2000]}"
        raise
    finally:
        record.seconds = round(time.monotonic() - started, 1)
        _save(record)
    return record


def runs_dir() -> Path:
    return state_dir() / "pipeline" / "runs"


def _save(record: RunRecord) -> None:
    from models.registry import Registry

    text = json.dumps(asdict(record), indent=1, default=str)
    folder = runs_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{record.run_id}.json").write_text(text)
    model = record.outputs.get("model")
    if model:
        registry = Registry()
        name, version = model.split(":", 1)
        registry.attach(registry.resolve(name, version), RUN_FILE, text.encode())
