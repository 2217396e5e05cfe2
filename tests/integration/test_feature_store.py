"""The Redis online store on a real server: versioned writes, TTLs, matrix reads."""

from __future__ import annotations

import dataclasses
import uuid

import numpy as np
import pytest

from connectors.feature_store import SHOW_DEFAULTS, SHOW_NUMERIC, FeatureWrite, RedisFeatureStore
from core.settings import RedisSettings


@pytest.fixture()
def store(services) -> RedisFeatureStore:
    # The configured client (the stack's user), at the test session's Redis.
    return RedisFeatureStore(dataclasses.replace(RedisSettings.from_env(), url=services.redis,
                                                 key_prefix=f"t{uuid.uuid4().hex[:8]}"))


def show(seq: int, likes: int, status: str = "live", ttl: int = 0) -> FeatureWrite:
    return FeatureWrite("show", "s1", seq, 1_764_000_000_000 + seq,
                        {"status": status, "like_count": likes, "live_listeners": 3}, ttl)


def test_older_versions_never_overwrite_newer_ones(store):
    assert store.write_many([show(5, 50)]) == 1
    assert store.write_many([show(4, 40)]) == 0          # a replay of an older state
    assert store.read("show", "s1")["like_count"] == "50"
    assert store.write_many([show(5, 51)]) == 1          # same version: a timer-driven change
    got = store.read("show", "s1")
    assert (got["like_count"], got["_seq"], got["_event_ts"]) == ("51", "5", "1764000000005")
    assert int(got["_write_ts"]) > 0


def test_ended_shows_expire(store):
    store.write_many([show(1, 1, "ended", ttl=60_000)])
    ttl = store.client.pttl(store.key("show", "s1"))
    assert 0 < ttl <= 60_000
    assert 0 < store.client.pttl(store.key("showvec", "s1")) <= 60_000
    store.write_many([show(2, 1, "live")])                # back to live: no expiry
    assert store.client.pttl(store.key("show", "s1")) == -1


def test_matrix_read_with_defaults_for_missing_ids(store):
    store.write_many([show(1, 7)])
    m = store.read_shows(["s1", "nope"] * 500)
    assert m.shape == (1000, len(SHOW_NUMERIC)) and m.dtype == np.float32
    col = {name: i for i, (name, _) in enumerate(SHOW_NUMERIC)}
    assert m[0, col["like_count"]] == 7 and m[0, col["is_live"]] == 1
    assert m[0, col["live_listeners"]] == 3 and m[0, col["is_scheduled"]] == 0
    np.testing.assert_array_equal(m[1], SHOW_DEFAULTS)
