"""The ranking reader against a real Redis: a user's batch hash is read once per published
run, a new run is read afresh, streaming features stay fresh."""

from __future__ import annotations

import dataclasses
import uuid

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
