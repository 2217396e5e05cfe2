"""A/B attribution and the sequential test of report_ab (pure logic)."""

from __future__ import annotations

import numpy as np

from models.ranking.ab_report import Outcome, attribute, compare, sequential_test


def _ev(kind, ts, show=None, creator="c1", minutes=None):
    e = {"event_type": kind, "ts": ts, "show_id": show, "creator_id": creator}
    if minutes is not None:
        e["duration_ms"] = minutes * 60_000
    return e


def test_a_follow_brings_its_creators_later_listening_to_the_ranking():
    rankings = [{"request_id": "r1", "variant": "ml", "ts": 0,
                 "items": [{"show_id": "s1", "creator_id": "c1"}]}]
    events = [_ev("listen_start", 1, "s1"), _ev("listen_stop", 2, "s1", minutes=3),
              _ev("follow", 3), _ev("listen_start", 4, "s9"),
              _ev("listen_stop", 5, "s9", minutes=10),
              _ev("listen_start", 6, "s7", creator="c2")]       # not followed, not ranked
    (o,) = attribute(rankings, events)
    assert (o.follows, o.listens, o.listen_minutes) == (1, 2, 13.0)


def _arms(rng, n, lift):
    ml = [Outcome(f"m{i}", "ml", listens=int(rng.poisson(1 + lift)), ts=i) for i in range(n)]
    h = [Outcome(f"h{i}", "heuristic", listens=int(rng.poisson(1)), ts=i) for i in range(n)]
    return ml, h


def test_the_sequential_test_declares_a_clear_winner_and_loser():
    rng = np.random.default_rng(1)
    ml, h = _arms(rng, 3000, 0.3)
    assert sequential_test(ml, h, "listens")["decision"] == "winner"
    assert sequential_test(h, ml, "listens")["decision"] == "loser"
    report = compare(ml + h)
    assert report["metrics"]["listens"]["sequential"]["decision"] == "winner"


def test_peeking_at_every_check_keeps_false_winners_rare():
    """No difference, looked at every 50 requests for 2,000: a fixed-sample test peeked at
    like that would declare a winner or loser far more often than 5 % of the time."""
    rng = np.random.default_rng(2)
    decided = sum(sequential_test(*_arms(rng, 2000, 0.0), "listens")["decision"]
                  != "undecided" for _ in range(100))
    assert decided <= 8
