"""Feature and session logic on hand-worked cases."""

import itertools

import pytest

from models.features.entities import (
    MAX_SESSION_MS,
    MINUTE_MS,
    CreatorState,
    FeatureReference,
    ShowState,
    UserState,
    user_sessions,
)

T = 1_764_000_000_000
n = itertools.count()


def ev(kind: str, minute: float, user: str = "u1", **extra) -> dict:
    return {"event_id": f"e{next(n)}", "event_type": kind, "ts": int(T + minute * MINUTE_MS),
            "user_id": user, "show_id": "s1", **extra}


def show(kind: str, minute: float, **extra) -> dict:
    return {"event_id": f"e{next(n)}", "event_type": kind, "ts": int(T + minute * MINUTE_MS),
            "show_id": "s1", "creator_id": "c1", **extra}


def run(events, watermark_minute=None) -> dict:
    st = ShowState()
    for e in events:
        st.apply(e)
    if watermark_minute is not None:
        st.advance(int(T + watermark_minute * MINUTE_MS))
    return st.features()


def test_session_crossing_five_minutes_counts_once():
    f = run([ev("listen_start", 0), ev("listen_stop", 5)])
    assert (f["sessions_5min"], f["live_listeners"], f["listen_count"]) == (1, 0, 1)
    assert run([ev("listen_start", 0), ev("listen_stop", 4.9)])["sessions_5min"] == 0


def test_open_session_counts_when_event_time_passes_five_minutes():
    events = [ev("listen_start", 0)]
    assert run(events, watermark_minute=4)["sessions_5min"] == 0
    f = run(events, watermark_minute=6)
    assert (f["sessions_5min"], f["live_listeners"]) == (1, 1)


def test_stop_before_start_in_arrival_order_still_pairs():
    f = run([ev("listen_stop", 7), ev("listen_start", 1)])
    assert (f["sessions_5min"], f["live_listeners"]) == (1, 0)


def test_stop_without_start_is_ignored():
    assert run([ev("listen_stop", 3)]) | {} == run([]) | {"listen_count": 0}


def test_duplicate_events_apply_once():
    start = ev("listen_start", 0)
    like = ev("like", 1)
    f = run([start, dict(start), like, dict(like), ev("listen_stop", 6)])
    assert (f["listen_count"], f["like_count"], f["sessions_5min"]) == (1, 1, 1)


def test_show_ending_closes_open_sessions_at_the_end_time():
    f = run([show("live", 0), ev("listen_start", 1, "a"), ev("listen_start", 8, "b"),
             show("ended", 10)])
    assert (f["live_listeners"], f["sessions_5min"], f["status"]) == (0, 1, "ended")


def test_show_end_arriving_before_the_session_events_gives_the_same_result():
    events = [show("live", 0), ev("listen_start", 1, "a"), ev("listen_stop", 3, "a"),
              show("ended", 10)]
    assert run(events) == run([events[3], events[2], events[0], events[1]])


def test_inactive_session_times_out():
    f = run([ev("listen_start", 0)], watermark_minute=MAX_SESSION_MS / MINUTE_MS + 1)
    assert (f["live_listeners"], f["sessions_5min"]) == (0, 1)


def test_late_unlike_older_than_the_like_does_not_win():
    f = run([ev("like", 5), ev("unlike", 2)])
    assert f["like_count"] == 1
    assert run([ev("like", 5), ev("unlike", 6)])["like_count"] == 0


def test_notifications_and_unique_listeners():
    f = run([ev("notify_on", 0, "a"), ev("notify_on", 0, "b"), ev("notify_off", 1, "a"),
             ev("listen_start", 0, "a"), ev("listen_stop", 1, "a"), ev("listen_start", 2, "a")])
    assert (f["notify_count"], f["unique_listeners"], f["listen_count"]) == (1, 1, 2)


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_sessions_do_not_depend_on_arrival_order(order):
    marks = [(0, 1), (2 * MINUTE_MS, 0), (3 * MINUTE_MS, 1), (10 * MINUTE_MS, 0)]
    assert user_sessions(sorted(marks[i] for i in order), 0, 0) == (1, None)


def test_creator_followers_plays_window_and_live_shows():
    c = CreatorState()
    c.apply({"event_id": "f1", "event_type": "follow", "ts": T, "user_id": "a",
             "creator_id": "c1"})
    c.apply({"event_id": "f2", "event_type": "unfollow", "ts": T + 1, "user_id": "a",
             "creator_id": "c1"})
    c.apply({"event_id": "f3", "event_type": "follow", "ts": T, "user_id": "b",
             "creator_id": "c1"})
    for day in (0, 3, 6):
        c.apply({"kind": "play", "creator_id": "c1", "ts": T + day * 24 * 60 * MINUTE_MS})
    c.apply({"kind": "live", "creator_id": "c1", "show_id": "s1", "live": True, "ts": T})
    assert c.features() == {"follower_count": 1, "plays_7d": 3, "live_shows": 1}
    c.advance(T + 8 * 24 * 60 * MINUTE_MS)  # the play of day 0 leaves the 7-day window
    assert c.features()["plays_7d"] == 2


def test_user_follows_and_listens_by_topic():
    u = UserState()
    u.apply({"event_id": "1", "event_type": "follow", "ts": T, "user_id": "u",
             "creator_id": "c2"})
    u.apply({"event_id": "2", "event_type": "listen_start", "ts": T, "user_id": "u",
             "show_id": "s", "topic": "baseball"})
    assert u.features() == {"follow_count": 1, "follows": "c2",
                            "listens_7d_by_topic": {"baseball": 1}}


def test_reference_attributes_plays_to_the_creator_once_known():
    ref = FeatureReference()
    ref.apply(ev("listen_start", 0))                 # the show's creator is not known yet
    ref.apply(show("live", 1))                       # now it is: the play is attributed
    creator = ref.finish(T + 60 * MINUTE_MS)[("creator", "c1")]
    assert creator.features()["plays_7d"] == 1 and creator.features()["live_shows"] == 1
