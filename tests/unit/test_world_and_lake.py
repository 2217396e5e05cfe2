"""The world simulator (determinism, what engagement depends on) and lake compaction."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

from connectors.lake import LAKE_TABLES, write_raw
from connectors.lake_compaction import compact_partition, partition_file, raw_partitions
from onair.sim.world import TOPICS, WorldConfig
from onair.sim.world_history import World, as_messages


def test_the_world_is_deterministic_by_seed():
    cfg = WorldConfig(users=300, days=2, seed=3)
    a, b = World.create(cfg), World.create(cfg)
    for (_, da), (_, db) in zip(a.history(), b.history(), strict=True):
        pd.testing.assert_frame_equal(da.behavior, db.behavior)
        pd.testing.assert_frame_equal(da.impressions, db.impressions)
        pd.testing.assert_frame_equal(da.shows, db.shows)
    other = World.create(WorldConfig(users=300, days=2, seed=4)).day(0)
    assert not other.impressions["show_id"].equals(a.day(0).impressions["show_id"])


def test_history_is_well_formed():
    world = World.create(WorldConfig(users=2000, days=3))
    hist = [h for _, h in world.history()]
    behavior = pd.concat([h.behavior for h in hist])
    stops = behavior[behavior["event_type"] == "listen_stop"]
    assert (stops["duration_ms"] > 0).all()
    assert behavior.loc[behavior["event_type"] != "listen_stop", "duration_ms"].isna().all()
    follows = behavior[behavior["event_type"].isin(["follow", "unfollow"])]
    assert follows["show_id"].isna().all() and follows["creator_id"].notna().all()
    imp = pd.concat([h.impressions for h in hist])
    assert imp["engaged"].equals(imp["liked"] | imp["followed"] | imp["notified"]
                                 | imp["listened_5m"])
    assert 0.03 < imp["engaged"].mean() < 0.4
    # A few duplicates, as at-least-once producers make.
    assert 0 < behavior["event_id"].duplicated().sum() < 0.01 * len(behavior)


def test_world_flags_change_what_they_say():
    base = WorldConfig(users=1500, days=2, seed=5)

    def impressions(**flags):
        world = World.create(WorldConfig(**{**base.__dict__, **flags}))
        return pd.concat([h.impressions for _, h in world.history()])

    default = impressions()
    sizes = impressions(feed_min=1).groupby("request_id").size()
    full = default.groupby("request_id").size()  # shorter only when fewer shows are on
    assert sizes.min() == 1 and sizes.max() == full.max() == 20
    assert sizes.mean() < full.mean() - 2
    upcoming = {h: (impressions(lookahead_hours=h)["show_status"] == "upcoming").mean()
                for h in (0.5, 6)}
    assert upcoming[6] > upcoming[0.5] + 0.2
    loyal = impressions(loyalty=4.0)["engaged"].mean()
    assert loyal > default["engaged"].mean()
    # Propensities still sum to one per slot of a feed of any length.
    mixed = impressions(feed_min=1)
    first = mixed[mixed["position"] == 0]
    assert np.all((first["propensity"] > 0) & (first["propensity"] <= 1))


def test_engagement_follows_behaviour_more_than_declared_topics():
    """Affinities learnt from 23 days of behaviour (listening-time share of the topic, listens
    of the creator) predict the next week's engagement better than declared topics do."""
    world = World.create(WorldConfig(users=3000, days=30, seed=11))
    hist = dict(world.history())
    early = pd.concat([hist[d].behavior for d in range(23)])
    stops = early[early["event_type"] == "listen_stop"]
    topic_share = (stops.groupby(["user_id", "topic"])["duration_ms"].sum()
                   / stops.groupby("user_id")["duration_ms"].sum())
    starts = early[early["event_type"] == "listen_start"]
    creator_listens = starts.groupby(["user_id", "creator_id"]).size()
    late = pd.concat([hist[d].impressions for d in range(23, 30)])

    def lookup(series, cols):
        return series.reindex(pd.MultiIndex.from_frame(late[cols])).fillna(0).to_numpy()

    learnt = (lookup(topic_share, ["user_id", "topic"])
              + 0.3 * np.minimum(lookup(creator_listens, ["user_id", "creator_id"]), 3))
    users = late["user_id"].str[1:].astype(int).to_numpy()
    topics = late["topic"].map({t: i for i, t in enumerate(TOPICS)}).to_numpy()
    declared = world.pop.user_declared[users, topics]
    auc_behaviour = roc_auc_score(late["engaged"], learnt)
    auc_declared = roc_auc_score(late["engaged"], declared)
    assert auc_behaviour > auc_declared + 0.03, (auc_behaviour, auc_declared)


def test_raw_rows_become_kafka_messages():
    rows = World.create(WorldConfig(users=200, days=1)).day(0).shows.head(3)
    msgs = as_messages(rows)
    assert all(isinstance(m["props"], dict) and isinstance(m["ts"], int) for m in msgs)
    assert all("scheduled_start" in m for m in msgs if m["event_type"] == "scheduled")


def _events(n=5, start_ts=1_788_220_800_000):  # 2026-09-01T00:00Z
    return pd.DataFrame({
        "event_id": [f"e{i}" for i in range(n)], "event_type": "like",
        "ts": [start_ts + 1000 * i for i in range(n)], "user_id": "u1", "show_id": "s1",
        "creator_id": "c1", "topic": "tech", "duration_ms": pd.array([None] * n, dtype="Int64"),
        "props": None})


def test_compaction_enforces_the_schema_dedupes_and_is_idempotent(tmp_path):
    lake = tmp_path.as_uri()
    table = LAKE_TABLES["behavior_events"]
    write_raw(lake, table, _events(), "a")
    again = _events().iloc[[1, 3]].assign(ts=lambda d: d["ts"] + 5)  # later copies of e1, e3
    write_raw(lake, table, again, "b")
    hour = tmp_path / "raw/behavior_events/dt=2026-09-01/hour=00"
    (hour / "part-c.json").write_text("\n".join([
        "{not json",
        json.dumps({"event_id": "x1", "event_type": "like", "ts": "soon", "user_id": "u"}),
        json.dumps({"event_id": "x2", "event_type": "like", "ts": 1_788_220_800_001}),
        json.dumps({"event_id": "x3", "event_type": "like", "ts": 1_788_220_800_002,
                    "user_id": "u9", "new_field": 1, "props": {"k": 1}}),
    ]) + "\n")
    assert raw_partitions(lake, "behavior_events") == ["2026-09-01"]

    result = compact_partition(lake, table, "2026-09-01")
    assert (result.rows_in, result.rejected, result.duplicates, result.rows_out) == (11, 3, 2, 6)
    path = partition_file(lake, "behavior_events", "2026-09-01")
    out = pq.read_table(path).to_pandas()
    assert list(out.columns) == list(table.schema.field_names())
    assert sorted(out["event_id"]) == ["e0", "e1", "e2", "e3", "e4", "x3"]
    # The earliest copy is kept; nested values stay JSON text; unknown fields are dropped.
    assert out.set_index("event_id").loc["e1", "ts"] == 1_788_220_801_000
    assert out.set_index("event_id").loc["x3", "props"] == '{"k":1}'
    assert list(out["ts"]) == sorted(out["ts"])

    first = path.read_bytes()
    compact_partition(lake, table, "2026-09-01")
    assert path.read_bytes() == first


def test_snapshot_tables_need_a_snapshot_date(tmp_path):
    users = pd.DataFrame({"user_id": ["u1"], "ts": [0], "declared_topics": ['["tech"]'],
                          "country": ["US"]})
    with pytest.raises(ValueError, match="snapshot"):
        write_raw(tmp_path.as_uri(), LAKE_TABLES["users"], users, "a")
    write_raw(tmp_path.as_uri(), LAKE_TABLES["users"], users, "a", snapshot_dt="2026-09-01")
    assert raw_partitions(tmp_path.as_uri(), "users") == ["2026-09-01"]
    assert np.array_equal(
        compact_partition(tmp_path.as_uri(), LAKE_TABLES["users"], "2026-09-01").rows_out, 1)


def test_config_dates():
    assert WorldConfig(start=date(2026, 9, 1)).t0_ms == 1_788_220_800_000


def test_simulated_listeners_ignore_shows_from_outside_their_world():
    from onair.sim.world_live import engage, world_show_index

    world = World.create(WorldConfig(users=300, days=2, seed=3))
    n = len(world.shows.topic)
    assert world_show_index(world, "s0") == 0 and world_show_index(world, f"s{n - 1}") == n - 1
    for foreign in (f"s{n}", "s629934-s38", "show-1", ""):
        assert world_show_index(world, foreign) is None
    ranking = {"request_id": "r1", "items": [{"show_id": "s629934-s38", "score": 1.0}]}
    assert engage(world, 0, ranking, np.random.default_rng(0), 0, 0) == []


def test_the_worlds_expected_outcomes_match_what_its_logged_feeds_brought():
    """The yardstick of the off-policy estimators (``onair.sim.world_truth``), on the logged
    order itself: expectation and observation agree."""
    from onair.sim.world_truth import expected_outcomes

    world = World.create(WorldConfig(users=3000, days=3, seed=9))
    imp = pd.concat([h.impressions for _, h in world.history()], ignore_index=True)
    truth = expected_outcomes(world, imp, -imp["position"].to_numpy(float), k=10)
    top = imp[imp["position"] < 10]
    requests = imp["request_id"].nunique()
    observed = {"likes": top["liked"].sum(), "notifies": top["notified"].sum(),
                "minutes": top["listen_minutes"].sum(),
                "minutes_attributed": top["attributed_minutes"].sum()}
    for name, total in observed.items():
        assert truth[name] == pytest.approx(total / requests, rel=0.1), name
