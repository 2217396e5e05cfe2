"""A small simulated world -> compact -> batch features -> train_ranker (registered, promoted)
-> rank_shows through Kafka on the cluster: every ranking equals scoring the same features
offline with the registered model, a newly promoted version is used without a restart, and
the job resumed from its checkpoint still ranks the catalog it had."""

from __future__ import annotations

import json
import time
import uuid
from datetime import date, timedelta

import numpy as np
import pytest
from conftest import cancel_at_checkpoint, wait_for_count

from connectors import flink_rest
from connectors.feature_store import FeatureWrite, RedisFeatureStore
from connectors.kafka_admin import create_topics, producer, read_all
from connectors.ranking_reads import RankingReader
from core.settings import KafkaSettings
from models.onnx_export import OnnxScorer, to_onnx
from models.ranking.scoring import FEATURE_ORDER, assemble, heuristic_scores, top_k, variant
from models.ranking.training import RankerParams, train_part
from models.registry import Registry, RegistryError
from onair.sim.world import WorldConfig
from onair.sim.world_history import write_world
from onair.submit import last_json, submit

USERS, DAYS, START = 1500, 16, date(2026, 9, 1)  # enough for the gate to decide
EXPERIMENT = "it-ranker"


def _offline(reader: RankingReader, scorer, ranking: dict, shows: dict[str, tuple[str, str]]):
    ids = [s for s in shows]
    feats = reader.read(ranking["user_id"], ids, [shows[s][0] for s in ids],
                        [shows[s][1] for s in ids], ranking["ts"])
    if scorer is None:
        scores = heuristic_scores(feats.declared, feats.popularity)
    else:
        scores = scorer(assemble(feats.columns, len(ids)))[:, 1]
    return top_k(ids, scores, 10, ranking["request_id"])


def _check(rankings: list[dict], reader, scorers: dict, shows) -> None:
    for r in rankings:
        scorer = scorers[r["model_version"]] if r["model_version"] else None
        assert (r["model_version"] is not None) == (r["variant"] == "ml")
        want = _offline(reader, scorer, r, shows)
        assert [i["show_id"] for i in r["items"]] == [s for s, _ in want]
        np.testing.assert_allclose([i["score"] for i in r["items"]], [v for _, v in want],
                                   atol=2e-6)


@pytest.mark.integration
def test_train_register_promote_rank_and_hot_reload(services, topic_prefix, tmp_path,
                                                    monkeypatch, capsys):
    monkeypatch.setenv("ONAIR_REDIS_PREFIX", f"test{uuid.uuid4().hex[:8]}")
    lake = (tmp_path / "lake").as_uri()
    write_world(lake, WorldConfig(users=USERS, days=DAYS, start=START))
    submit("compact_lake", ["--lake", lake], detached=False)
    as_of = START + timedelta(days=DAYS)
    submit("build_batch_features", ["--lake", lake, "--as-of", as_of.isoformat()],
           detached=False)
    name = f"it_ranker_{uuid.uuid4().hex[:6]}"
    capsys.readouterr()
    submit("train_ranker", ["--lake", lake, "--name", name, "--trees", "30",
                            "--tree-tasks", "2", "--eval-days", "4", "--promote"],
           detached=False)
    trained = last_json(capsys.readouterr().out)
    registry = Registry()
    v1 = registry.resolve(name, "production")
    assert trained["model"] == v1.ref
    assert v1.feature_names == list(FEATURE_ORDER)
    for key in ("ndcg10_model", "ndcg10_heuristic", "eng10_model", "eng10_heuristic"):
        assert key in v1.metrics
    assert v1.metrics["onnx_max_abs_diff"] <= 1e-5
    assert (registry.version_dir(v1) / "report.md").exists()
    assert (registry.version_dir(v1) / "curves.png").exists()
    assert v1.extra["gate"]["promote"]

    # Streaming features for a few of the shows, as compute_features would have written them.
    now = int(time.time() * 1000)
    shows = {f"s{i}": (f"c{i % 7}", ("tech", "news", "comedy")[i % 3]) for i in range(40)}
    RedisFeatureStore().write_many(
        FeatureWrite("show", s, 1, now, {"status": "live", "like_count": i, "listen_count": 3 * i,
                                         "unique_listeners": i, "notify_count": i % 4})
        for i, s in enumerate(list(shows)[:20]))

    kafka = KafkaSettings.from_env()
    create_topics(kafka)
    job_args = ["--model", name, "--experiment", EXPERIMENT, "--reload-s", "1",
                "--checkpoint-interval-ms", "2000"]
    job = submit("rank_shows", job_args)
    try:
        assert flink_rest.wait_for_state(job, {"RUNNING"}, 120) == "RUNNING"
        p = producer(kafka)
        for sid, (creator, topic) in shows.items():
            event = {"event_id": f"e-{sid}", "event_type": "live", "ts": now - 60_000,
                     "show_id": sid, "creator_id": creator, "topic": topic}
            p.send(kafka.topic("show-events"), json.dumps(event).encode(), key=sid.encode())
        p.flush()
        time.sleep(8)  # the catalog is broadcast: let the show events in before the requests
        users = [f"u{i}" for i in range(60)]
        assert {variant(u, EXPERIMENT) for u in users} == {"ml", "heuristic"}

        def send(batch: str) -> list[str]:
            ids = []
            for u in users:
                rid = f"{batch}-{u}"
                ids.append(rid)
                msg = {"request_id": rid, "user_id": u, "ts": int(time.time() * 1000)}
                p.send(kafka.topic("rec-requests"), json.dumps(msg).encode(), key=u.encode())
            p.flush()
            return ids

        def rankings(ids):
            wanted = set(ids)
            return [r for r in (json.loads(m.value) for m in
                                read_all(kafka, kafka.topic("rec-rankings")))
                    if r["request_id"] in wanted]

        # Requests are validated inside the rank operator: a bad one is a dead letter with
        # its reason, and the job goes on ranking the good ones around it.
        p.send(kafka.topic("rec-requests"), b'{"request_id": "bad-1", "ts": 1}', key=b"x")
        first_ids = send("a")
        first = wait_for_count(lambda: rankings(first_ids), len(first_ids), 90)
        # Dead letters are written exactly once: visible when the checkpoint after them commits.
        letters = wait_for_count(lambda: [json.loads(m.value) for m in
                                          read_all(kafka, kafka.topic("dead-letters"))], 1, 60)
        assert [(d["source_topic"], d["job"]) for d in letters] == [
            (kafka.topic("rec-requests"), "rank_shows")]
        assert "user_id" in letters[0]["error"]
        assert len(first) == len(first_ids)
        reader = RankingReader()
        scorer_v1 = OnnxScorer(registry.load_session(name, v1.version)[0])
        _check(first, reader, {v1.ref: scorer_v1}, shows)
        assert {r["variant"] for r in first} == {"ml", "heuristic"}
        assert all(len(r["items"]) == 10 for r in first)

        # A new version, promoted while the job runs, ranks the later requests.
        rng = np.random.default_rng(1)
        x = rng.normal(size=(400, len(FEATURE_ORDER))).astype(np.float32)
        y = (x[:, FEATURE_ORDER.index("pit_like_count")] > 0).astype(int)
        model = train_part(x, y, np.ones(len(y)), RankerParams(trees=5, max_depth=4),
                           seed=99, trees=5)
        v2 = registry.register(name, to_onnx(model, len(FEATURE_ORDER)),
                               feature_names=list(FEATURE_ORDER), labels=v1.labels)
        registry.promote(name, v2.version)
        time.sleep(3)
        later_ids = send("b")
        later = wait_for_count(lambda: rankings(later_ids), len(later_ids), 90)
        assert {r["model_version"] for r in later if r["variant"] == "ml"} == {v2.ref}
        scorer_v2 = OnnxScorer(registry.load_session(name, v2.version)[0])
        _check(later, reader, {v2.ref: scorer_v2}, shows)

        # A version changed after it was signed (its metrics inflated) cannot be promoted;
        # put in production anyway by someone who can write the registry's files, it is
        # refused at reload and v2 goes on ranking.
        v3 = registry.register(name, to_onnx(model, len(FEATURE_ORDER)),
                               feature_names=list(FEATURE_ORDER), labels=v1.labels)
        meta = registry.version_dir(v3) / "meta.json"
        meta.write_text(json.dumps(json.loads(meta.read_text()) | {"metrics": {"auc": 0.99}}))
        with pytest.raises(RegistryError, match="signature does not match"):
            registry.promote(name, v3.version)
        aliases = registry.root / name / "aliases.json"
        aliases.write_text(json.dumps({"production": v3.version}))
        time.sleep(3)
        tampered_ids = send("t")
        tampered = wait_for_count(lambda: rankings(tampered_ids), len(tampered_ids), 90)
        assert {r["model_version"] for r in tampered if r["variant"] == "ml"} == {v2.ref}
        aliases.write_text(json.dumps({"production": v2.version}))

        # Resumed from its last checkpoint (unaligned: the job's default), the job reads on
        # after the show events, so the catalog it ranks comes from its broadcast state.
        first_job, job = job, None
        checkpoint = cancel_at_checkpoint(first_job, int(time.time() * 1000), 60)
        job = submit("rank_shows", job_args, from_savepoint=checkpoint)
        assert flink_rest.wait_for_state(job, {"RUNNING"}, 120) == "RUNNING"
        resumed_ids = send("c")
        resumed = wait_for_count(lambda: rankings(resumed_ids), len(resumed_ids), 90)
        assert len(resumed) == len(resumed_ids)
        _check(resumed, reader, {v2.ref: scorer_v2}, shows)
    finally:
        if job is not None:
            flink_rest.cancel(job)
