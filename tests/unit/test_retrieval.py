"""The retrieval stage of a large catalog against a plain-Python statement of its rule, and
the catalog's columns against its shows."""

from __future__ import annotations

import numpy as np
import pytest

from models.ranking.catalog import Catalog
from models.ranking.retrieval import PriorOrder, affinities, prior_scores, select


def reference(candidate, creators, topics, prior, liked_creators, liked_topics, limit, share):
    pool = [i for i in range(len(creators)) if candidate[i]]
    if len(pool) <= limit:
        return pool
    order = sorted(pool, key=lambda i: (-prior[i], i))
    budget, taken = limit - round(limit * share), []
    for wanted, of in ((liked_creators, creators), (liked_topics, topics)):
        for i in order:
            if budget == 0:
                break
            if of[i] in wanted and i not in taken:
                taken.append(i)
                budget -= 1
    for i in order:
        if len(taken) == limit:
            break
        if i not in taken:
            taken.append(i)
    return sorted(taken)


@pytest.mark.parametrize("seed", range(20))
def test_selection_follows_history_then_the_prior(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    candidate = rng.random(n) < 0.8
    creators = rng.integers(0, 40, n)
    topics = rng.integers(0, 8, n)
    # Ties on purpose: equal priors keep catalog order.
    prior = rng.integers(0, 5, n).astype(float)
    liked_c = set(rng.integers(0, 60, int(rng.integers(0, 6))).tolist())
    liked_t = set(rng.integers(0, 10, int(rng.integers(0, 3))).tolist())
    limit = int(rng.integers(1, 120))
    share = float(rng.choice([0.0, 0.25, 1.0]))
    got = select(candidate, creators, topics, PriorOrder(prior), liked_c, liked_t, limit, share)
    assert got.tolist() == reference(candidate, creators.tolist(), topics.tolist(), prior,
                                     liked_c, liked_t, limit, share)


def test_a_listener_gets_their_creators_and_topics_then_the_most_listened():
    creators = np.array([0] * 50 + [1] * 3 + [2] * 50)          # 1: a creator they know
    topics = np.array([0] * 50 + [1] * 13 + [2] * 40)           # 1: jazz, 2: talk
    prior = PriorOrder(np.r_[np.arange(50, 0, -1.0), np.zeros(53)])
    every = np.ones(103, bool)
    # 15 places for history: 3 of the creator they know, all 10 other jazz shows; the other
    # 7 to the most listened.
    got = select(every, creators, topics, prior, {1}, {1}, limit=20, explore_share=0.25)
    assert got.tolist() == list(range(7)) + list(range(50, 63))
    # History never takes the discovery quarter.
    got = select(every, creators, topics, prior, {1}, {1, 2}, limit=20, explore_share=0.25)
    assert got.tolist() == list(range(5)) + list(range(50, 65))


def test_affinities_read_the_batch_hash_keys():
    user = {"uc:c7:uc_listens": 2.0, "ut:jazz:ut_listens_7d": 1.0, "u_active_days": 3.0}
    assert affinities(user, {"news"}) == ({"c7"}, {"jazz", "news"})


def test_prior_counts_a_new_shows_creator():
    scores = prior_scores(np.array([10.0, 0.0, 3.0]), np.array([0.0, 10.0, 0.0]))
    assert scores[0] == scores[1] > scores[2]


def test_catalog_columns_mark_the_candidates_the_shows_do_through_sweeps():
    """Random show events, sweeps that renumber the slots: at every step and time, the slots
    the columns mark are the catalog's candidates, with their creators and topics."""
    rng = np.random.default_rng(1)
    c = Catalog()
    h = 3_600_000
    layouts = set()
    for step in range(3000):
        sid = f"s{int(rng.integers(0, 400))}"
        kind = str(rng.choice(["scheduled", "live", "ended", "updated"]))
        ts = step * 60_000
        c.apply({"show_id": sid, "event_type": kind, "ts": ts,
                 "creator_id": f"c{int(rng.integers(0, 30))}", "topic": f"t{step % 7}",
                 "scheduled_start": ts + int(rng.integers(-2 * h, 4 * h))})
        if step % 50 == 0:
            c.forget_ended()
        layouts.add(c.columns.layout)
        if step % 20 == 0:
            now = ts + int(rng.integers(-h, h))
            cols = c.columns
            marked = np.flatnonzero(cols.candidates(now, 2 * h))
            names = {v: k for k, v in cols.creators.items()}, {v: k for k, v in cols.topics.items()}
            got = [(cols.ids[i], names[0][cols.creator[i]], names[1][cols.topic[i]])
                   for i in marked]
            assert got == [(e.show_id, e.creator_id, e.topic) for e in c.candidates(now, 2 * h)]
    assert len(layouts) > 1   # the slots were renumbered on the way
