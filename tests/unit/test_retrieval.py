"""The retrieval stage of a large catalog against a plain-Python statement of its rule."""

from __future__ import annotations

import numpy as np
import pytest

from models.ranking.retrieval import RetrievalIndex, affinities, prior_scores


def reference(creators, topics, prior, liked_creators, liked_topics, limit, share):
    n = len(creators)
    if n <= limit:
        return list(range(n))
    order = sorted(range(n), key=lambda i: (-prior[i], i))
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
    creators = [f"c{i}" for i in rng.integers(0, 40, n)]
    topics = [f"t{i}" for i in rng.integers(0, 8, n)]
    # Ties on purpose: equal priors keep catalog order.
    prior = rng.integers(0, 5, n).astype(float)
    liked_c = {f"c{i}" for i in rng.integers(0, 60, int(rng.integers(0, 6)))}
    liked_t = {f"t{i}" for i in rng.integers(0, 10, int(rng.integers(0, 3)))}
    limit = int(rng.integers(1, 120))
    share = float(rng.choice([0.0, 0.25, 1.0]))
    got = RetrievalIndex(creators, topics, prior).select(liked_c, liked_t, limit, share)
    assert got.tolist() == reference(creators, topics, prior, liked_c, liked_t, limit, share)


def test_a_listener_gets_their_creators_and_topics_then_the_most_listened():
    creators = ["pop"] * 50 + ["mine"] * 3 + ["other"] * 50
    topics = ["news"] * 50 + ["jazz"] * 13 + ["talk"] * 40
    prior = np.r_[np.arange(50, 0, -1.0), np.zeros(53)]
    index = RetrievalIndex(creators, topics, prior)
    # 15 places for history: 3 of the creator they know, all 10 other jazz shows; the other
    # 7 to the most listened.
    got = index.select({"mine"}, {"jazz"}, limit=20, explore_share=0.25)
    assert got.tolist() == list(range(7)) + list(range(50, 63))
    # History never takes the discovery quarter.
    got = index.select({"mine"}, {"jazz", "talk"}, limit=20, explore_share=0.25)
    assert got.tolist() == list(range(5)) + list(range(50, 65))


def test_affinities_read_the_batch_hash_keys():
    user = {"uc:c7:uc_listens": 2.0, "ut:jazz:ut_listens_7d": 1.0, "u_active_days": 3.0}
    assert affinities(user, {"news"}) == ({"c7"}, {"jazz", "news"})


def test_prior_puts_live_ahead_of_equal_plays_and_counts_a_new_shows_creator():
    scores = prior_scores(np.array([10.0, 10.0, 0.0]), np.array([0.0, 0.0, 10.0]),
                          np.array([False, True, False]))
    assert scores[1] > scores[0] == scores[2]
