"""The batch feature definitions on hand-made events, and the partial-aggregate algebra."""

from __future__ import annotations

import pandas as pd
import pytest

from models.features.batch import (
    FEATURES,
    TABLE_FEATURES,
    day_partials,
    finalize,
    merge,
    merge_all,
    shard_of,
    split_by_shard,
)

MIN = 60_000


def ev(kind, ts, user="u1", show="s1", creator="c1", topic="tech", duration=None):
    follow = kind in ("follow", "unfollow")
    return {"event_type": kind, "ts": ts, "user_id": user,
            "show_id": None if follow else show, "creator_id": creator,
            "topic": None if follow else topic,
            "duration_ms": duration if kind == "listen_stop" else None}


def frame(events):
    df = pd.DataFrame(events, columns=["event_type", "ts", "user_id", "show_id", "creator_id",
                                       "topic", "duration_ms"])
    df["duration_ms"] = df["duration_ms"].astype("Int64")
    return df


def features(days: dict[int, list[dict]], impressions: dict[int, list[dict]] | None = None,
             lookback: int = 60, shards: int = 1) -> dict[str, pd.DataFrame]:
    """Features from {days_ago: events}, through partials, shards and merges like the job."""
    pending: dict[tuple[str, int], dict[str, list]] = {}
    for days_ago, events in days.items():
        imp = None
        if impressions and days_ago in impressions:
            imp = pd.DataFrame(impressions[days_ago], columns=["show_id", "engaged"])
        parts = day_partials(frame(events), imp, days_ago, lookback)
        for key, groups in split_by_shard(parts, shards).items():
            for g, f in groups.items():
                pending.setdefault(key, {}).setdefault(g, []).append(f)
    out: dict[str, list[pd.DataFrame]] = {}
    for (entity, _), groups in pending.items():
        for table, df in finalize(entity, merge_all(groups)).items():
            out.setdefault(table, []).append(df)
    return {t: pd.concat(dfs, ignore_index=True) for t, dfs in out.items()}


def row(table: pd.DataFrame, **keys) -> dict:
    mask = pd.Series(True, index=table.index)
    for k, v in keys.items():
        mask &= table[k] == v
    assert mask.sum() == 1, f"expected one row for {keys}"
    return table[mask].iloc[0].to_dict()


def test_there_are_21_features_each_in_one_table():
    assert len(FEATURES) == 21
    assert sum(len(v) for v in TABLE_FEATURES.values()) == 21


def test_listen_share_and_like_rate_per_user_and_topic():
    f = features({1: [ev("listen_start", 0), ev("listen_stop", 30 * MIN, duration=30 * MIN),
                      ev("like", MIN),
                      ev("listen_start", 0, show="s2", topic="news"),
                      ev("listen_stop", 10 * MIN, show="s2", topic="news", duration=10 * MIN)],
                  9: [ev("listen_start", 0), ev("unlike", 5), ev("like", 6), ev("like", 7)]})
    tech = row(f["user_topic"], user_id="u1", topic="tech")
    news = row(f["user_topic"], user_id="u1", topic="news")
    assert tech["ut_listen_share"] == pytest.approx(0.75)
    assert news["ut_listen_share"] == pytest.approx(0.25)
    assert tech["ut_like_rate"] == pytest.approx(2 / 2)  # 3 likes - 1 unlike over 2 listens
    assert tech["ut_listens_7d"] == 1  # the day-9 listen is outside 7 days
    assert news["ut_like_rate"] == 0


def test_user_creator_follow_state_is_the_last_in_time_across_days():
    # Event times grow with the day (ts is absolute: 5 days ago is earlier than 2 days ago).
    f = features({5: [ev("follow", 1_000), ev("listen_start", 900)],
                  2: [ev("unfollow", 4_000)],
                  1: [ev("follow", 5_000, creator="c2"), ev("unfollow", 5_000, creator="c2")]})
    assert row(f["user_creator"], user_id="u1", creator_id="c1")["uc_follows"] == 0
    # A follow and an unfollow at the same instant: the follow wins (documented tie rule).
    assert row(f["user_creator"], user_id="u1", creator_id="c2")["uc_follows"] == 1
    assert row(f["creator"], creator_id="c1")["c_followers"] == 0
    assert row(f["creator"], creator_id="c2")["c_followers"] == 1
    assert row(f["user_creator"], user_id="u1", creator_id="c1")["uc_listens"] == 1


def test_creator_plays_and_unique_listeners_by_window():
    f = features({1: [ev("listen_start", 0, user="a"), ev("listen_start", 1, user="a")],
                  10: [ev("listen_start", 0, user="b")],
                  45: [ev("listen_start", 0, user="c"), ev("listen_start", 0, user="a")]},
                 shards=3)
    c = row(f["creator"], creator_id="c1")
    assert (c["c_plays_7d"], c["c_plays_30d"], c["c_plays_60d"]) == (2, 3, 5)
    assert (c["c_unique_listeners_7d"], c["c_unique_listeners_30d"],
            c["c_unique_listeners_60d"]) == (1, 2, 3)


def test_windows_longer_than_the_lookback_are_the_lookback():
    f = features({1: [ev("listen_start", 0)], 20: [ev("listen_start", 0, user="b")]},
                 lookback=20)
    c = row(f["creator"], creator_id="c1")
    assert (c["c_plays_30d"], c["c_plays_60d"]) == (2, 2)


def test_show_features_include_impressions():
    f = features({1: [ev("listen_start", 0), ev("listen_stop", 6 * MIN, duration=6 * MIN),
                      ev("listen_start", 0, user="u2"), ev("like", 5, user="u2")]},
                 impressions={1: [{"show_id": "s1", "engaged": True},
                                  {"show_id": "s1", "engaged": False},
                                  {"show_id": "s1", "engaged": False},
                                  {"show_id": "s9", "engaged": True}]})
    s1 = row(f["show"], show_id="s1")
    assert s1["s_listens"] == 2
    assert s1["s_like_rate"] == pytest.approx(0.5)
    assert s1["s_avg_listen_minutes"] == pytest.approx(6.0)
    assert s1["s_engagement_rate"] == pytest.approx(1 / 3)
    s9 = row(f["show"], show_id="s9")  # shown but never listened to
    assert (s9["s_listens"], s9["s_engagement_rate"]) == (0, 1.0)


def test_user_activity():
    f = features({1: [ev("notify_on", 0)], 3: [ev("follow", 0)],
                  12: [ev("listen_start", 0), ev("listen_stop", 2 * MIN, duration=2 * MIN)]})
    u = row(f["user"], user_id="u1")
    assert (u["u_active_days"], u["u_listens_7d"]) == (3, 0)
    assert u["u_listen_minutes"] == pytest.approx(2.0)


def test_a_day_outside_the_lookback_is_refused():
    with pytest.raises(ValueError, match="outside the lookback"):
        day_partials(frame([ev("like", 0)]), None, 0, 60)
    with pytest.raises(ValueError, match="outside the lookback"):
        day_partials(frame([ev("like", 0)]), None, 61, 60)


def test_merge_is_order_free_and_sharding_does_not_change_features():
    days = {d: [ev("listen_start", d, user=f"u{d % 5}", creator=f"c{d % 3}", topic=t)
                for t in ("tech", "news")] + [ev("follow", d, user=f"u{d % 4}")]
            for d in range(1, 30)}
    one, many = features(days, shards=1), features(days, shards=4)
    for table in one:
        keys = [c for c in one[table].columns if c.endswith("_id") or c == "topic"]
        pd.testing.assert_frame_equal(
            one[table].sort_values(keys).reset_index(drop=True),
            many[table].sort_values(keys).reset_index(drop=True))
    parts = [day_partials(frame(e), None, d, 60)["user_creator"] for d, e in days.items()]
    forward = merge("user_creator", parts)
    backward = merge("user_creator", [merge("user_creator", parts[10:][::-1]),
                                      merge("user_creator", parts[:10])])
    key = ["user_id", "creator_id"]
    pd.testing.assert_frame_equal(forward.sort_values(key).reset_index(drop=True),
                                  backward.sort_values(key).reset_index(drop=True))


def test_shards_are_stable_and_spread():
    keys = pd.Series([f"u{i}" for i in range(1000)])
    a, b = shard_of(keys, 4), shard_of(keys.copy(), 4)
    assert (a == b).all()
    assert set(a) == {0, 1, 2, 3}
    assert min((a == s).sum() for s in range(4)) > 150
