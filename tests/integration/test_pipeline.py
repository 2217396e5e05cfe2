"""``onair pipeline daily`` on the cluster: compact_lake -> build_batch_features ->
train_ranker -> gate, twice on the same lake and day. The first run promotes its model; the
second builds the very same ONNX bytes, which the gate refuses to promote over production;
both leave a run record with the inputs' fingerprints, beside the model in the registry."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta

import pytest

from models.registry import Registry
from onair.cli import main
from onair.pipeline import RUN_FILE, runs_dir
from onair.sim.world import WorldConfig
from onair.sim.world_history import write_world

USERS, DAYS, START = 1500, 16, date(2026, 9, 1)  # enough for the gate to decide


@pytest.mark.integration
def test_daily_runs_are_reproducible_gated_and_recorded(services, tmp_path, monkeypatch,
                                                        capsys):
    monkeypatch.setenv("ONAIR_REDIS_PREFIX", f"test{uuid.uuid4().hex[:8]}")
    lake = (tmp_path / "lake").as_uri()
    write_world(lake, WorldConfig(users=USERS, days=DAYS, start=START))
    name = f"it_daily_{uuid.uuid4().hex[:6]}"
    as_of = (START + timedelta(days=DAYS)).isoformat()
    argv = ["pipeline", "daily", "--as-of", as_of, "--lake", lake, "--name", name,
            "--eval-days", "4", "--", "--trees", "30", "--tree-tasks", "2"]
    outputs = []
    for _ in range(2):
        capsys.readouterr()
        assert main(argv) == 0
        outputs.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))
    first, second = outputs
    assert first["status"] == second["status"] == "succeeded"
    assert first["promoted"] and first["gate"] == "passed"
    assert first["production"] == first["model"]
    # Same lake, day, code and seed: the same model; no lift over itself, so not promoted.
    assert second["onnx_sha256"] == first["onnx_sha256"]
    assert not second["promoted"] and first["model"] in second["gate"][0]
    assert second["production"] == first["model"]

    registry = Registry()
    for out in outputs:
        mv = registry.resolve(name, out["model"].split(":")[1])
        record = json.loads((registry.version_dir(mv) / RUN_FILE).read_text())
        assert record == json.loads((runs_dir() / f"{out['run_id']}.json").read_text())
        assert [s["job"] for s in record["steps"]] == ["compact_lake", "build_batch_features",
                                                       "train_ranker"]
        assert all(s["seconds"] > 0 and s["flink_job_id"] for s in record["steps"])
        assert record["config"]["as_of"] == as_of and record["code_version"]
        impressions = record["inputs"]["impressions"]
        assert impressions["files"] == DAYS and len(impressions["sha256"]) == 64
        assert record["outputs"]["onnx_sha256"] == mv.onnx_sha256
    # The inputs were the same bytes both times.
    records = [json.loads((runs_dir() / f"{o['run_id']}.json").read_text()) for o in outputs]
    assert records[0]["inputs"] == records[1]["inputs"]
