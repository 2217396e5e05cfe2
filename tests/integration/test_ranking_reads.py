"""The ranking reader against a real Redis: a user's batch hash is read once per published
run, a new run is read afresh, streaming features stay fresh."""

from __future__ import annotations

import dataclasses
import uuid

import numpy as np
import pandas as pd

from connectors.batch_store import BatchOnlineStore
from connectors.feature_store import FeatureWrite, RedisFeatureStore
from connectors.ranking_reads import RankingReader
from core.settings import RedisSettings


def _publish(store: BatchOnlineStore, run: str, listens: float, declared: list[str]) -> None:
    store.load(run, {"user_topic": pd.DataFrame({"user_id": ["u1"], "topic": ["jazz"],
                                                 "ut_listen_share": [0.5],
                                                 "ut_like_rate": [0.1],
                                                 "ut_listens_7d": [listens]})})
    store.load_declared(run, {"u1": declared})
    store.publish(run, "2026-10-01")


def test_user_hash_read_once_per_run_and_again_for_a_new_run(services):
    settings = dataclasses.replace(RedisSettings.from_env(),
                                   key_prefix=f"test-{uuid.uuid4().hex[:8]}")
    store = BatchOnlineStore(settings)
    RedisFeatureStore(settings).write_many([FeatureWrite("show", "s1", 1, 1_000, {
        "status": "live", "like_count": 3})])
    _publish(store, "run-a", 7.0, ["jazz"])
    reader = RankingReader(settings, pit_cache_ms=0)

    def read():
        return reader.read("u1", ["s1", "s2"], ["c1", "c2"], ["jazz", "talk"], 2_000)

    first = read()
    assert list(first.columns["ut_listens_7d"]) == [7.0, 0.0]
    assert list(first.declared) == [1.0, 0.0]
    assert reader.user_reads == 1

    # The run's hash changed under the reader (a run never does; this shows the cache):
    # the same run is not read again, while the streaming features are (no PIT cache here).
    store.client.hset(store.key("run-a", "user", "u1"), "ut:jazz:ut_listens_7d", "99")
    RedisFeatureStore(settings).write_many([FeatureWrite("show", "s1", 2, 3_000, {
        "like_count": 5})])
    second = read()
    assert reader.user_reads == 1
    assert list(second.columns["ut_listens_7d"]) == [7.0, 0.0]
    assert list(second.columns["pit_like_count"]) == [5.0, 0.0]

    # A newly published run is read, once.
    _publish(store, "run-b", 11.0, [])
    store._pointer = (0.0, None)
    reader.batch._pointer = (0.0, None)  # the pointer is cached for 5 s
    third = read()
    assert reader.user_reads == 2
    assert list(third.columns["ut_listens_7d"]) == [11.0, 0.0]
    assert list(third.declared) == [0.0, 0.0]
    read()
    assert reader.user_reads == 2


def test_a_reader_without_a_user_cache_reads_the_user_every_time(services):
    settings = dataclasses.replace(RedisSettings.from_env(),
                                   key_prefix=f"test-{uuid.uuid4().hex[:8]}")
    _publish(BatchOnlineStore(settings), "run-a", 3.0, [])
    reader = RankingReader(settings, max_users=0)
    for n in (1, 2):
        feats = reader.read("u1", ["s1"], ["c1"], ["jazz"], 2_000)
        assert reader.user_reads == n
        assert list(feats.columns["ut_listens_7d"]) == [3.0]


def test_a_catalog_over_the_cap_is_retrieved_then_ranked(services):
    """12 live shows, 5 scored per request: the listener's creator and topic first, then the
    most listened of the published run; the ranking is the heuristic over those 5 alone."""
    from models.ranking.catalog import Catalog
    from models.ranking.retrieval import PriorOrder, prior_scores, select
    from models.ranking.scoring import heuristic_scores, top_k
    from operators.ranking import Ranker

    settings = dataclasses.replace(RedisSettings.from_env(),
                                   key_prefix=f"test-{uuid.uuid4().hex[:8]}")
    store = BatchOnlineStore(settings)
    shows = [f"s{i}" for i in range(12)]
    creators = [f"c{i % 4}" for i in range(12)]
    topics = ["jazz" if i % 3 == 0 else "talk" for i in range(12)]
    listens = [float(10 * i) for i in range(12)]
    show_table = pd.DataFrame({"show_id": shows, "s_listens": listens, "s_like_rate": 0.0,
                               "s_avg_listen_minutes": 0.0, "s_engagement_rate": 0.0})
    store.load("run-r", {"show": show_table,
                         "user_creator": pd.DataFrame({"user_id": ["u1"], "creator_id": ["c1"],
                                                       "uc_listens": [4.0], "uc_likes": [0.0],
                                                       "uc_listen_minutes": [9.0],
                                                       "uc_follows": [1.0]})})
    store.load_declared("run-r", {"u1": ["jazz"]})
    store.publish("run-r", "2026-10-01")
    catalog = Catalog()
    for s, c, t in zip(shows, creators, topics, strict=True):
        catalog.apply({"show_id": s, "event_type": "live", "ts": 1_000, "creator_id": c,
                       "topic": t})
    ranker = Ranker(catalog, RankingReader(settings), "exp", 3_600_000, default_k=3,
                    max_candidates=5)
    out = ranker.rank({"request_id": "r1", "user_id": "u1", "ts": 2_000}, None, None)

    # c1's shows (s9, s5, s1), then the best jazz show not taken (s6): 4 places for history;
    # the fifth (25 %, rounded) for the most listened (s11).
    chosen = select(np.ones(12, bool), np.array([i % 4 for i in range(12)]),
                    np.array([int(t == "talk") for t in topics]),
                    PriorOrder(prior_scores(listens, [0.0] * 12)), {1}, {0}, 5)
    assert [shows[i] for i in chosen] == ["s1", "s5", "s6", "s9", "s11"]
    ids = [shows[i] for i in chosen]
    declared = [1.0 if topics[i] == "jazz" else 0.0 for i in chosen]
    expected = top_k(ids, heuristic_scores(declared, [listens[i] for i in chosen]), 3, "r1")
    assert [(i["show_id"], i["score"]) for i in out["items"]] == \
        [(s, round(v, 6)) for s, v in expected]
