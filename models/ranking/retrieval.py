"""Retrieval: which of a large catalog's candidates a request scores (pure numpy).

Below ``limit`` candidates every one is scored, as before. Above it, scoring every show costs
one feature vector and one ONNX row each, which a 50,000-show catalog cannot afford within a
request's budget, so a request scores at most ``limit`` of them:

1. the shows of creators the listener has history with (``uc:<creator>:*`` keys of their batch
   hash), then the shows of topics they declared or listened to (``ut:<topic>:*``), each
   group in prior order, up to ``limit - explore``;
2. the rest, at least ``explore``, by the prior: the most listened shows and creators of the
   published batch run (a new show of a known creator inherits its creator's plays).

It works on the catalog's columns (``models.ranking.catalog.CatalogColumns``: one slot per
show, creators and topics as codes) and on the prior's order over all slots, which changes
only when shows are added or a run is published; the catalog changing (shows going live,
ending, moving) costs nothing until a request filters the columns, in a few vector
operations.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

DEFAULT_LIMIT = 1000
EXPLORE_SHARE = 0.25   # of ``limit``, always filled by the prior: discovery beyond history


def affinities(user: dict[str, float], declared: Iterable[str]) -> tuple[set[str], set[str]]:
    """(creators, topics) a listener's batch hash shows history with, plus declared topics."""
    creators, topics = set(), set(declared)
    for key in user:
        if key.startswith("uc:"):
            creators.add(key.split(":", 2)[1])
        elif key.startswith("ut:"):
            topics.add(key.split(":", 2)[1])
    return creators, topics


def prior_scores(show_listens: np.ndarray, creator_plays: np.ndarray) -> np.ndarray:
    """The retrieval prior: batch listens of the show plus its creator's 7-day plays (a new
    show has none of its own)."""
    plays = np.asarray(show_listens, np.float64) + np.asarray(creator_plays, np.float64)
    return np.log1p(np.maximum(plays, 0.0))


class PriorOrder:
    """Slots by prior, highest first, equal priors in slot (catalog) order."""

    def __init__(self, prior: np.ndarray):
        self.order = np.argsort(-np.asarray(prior, np.float64), kind="stable")
        self.rank = np.empty(len(self.order), dtype=np.int64)
        self.rank[self.order] = np.arange(len(self.order))


def select(candidate: np.ndarray, creator: np.ndarray, topic: np.ndarray, prior: PriorOrder,
           liked_creators: Iterable[int], liked_topics: Iterable[int],
           limit: int = DEFAULT_LIMIT, explore_share: float = EXPLORE_SHARE) -> np.ndarray:
    """Slots (ascending) of at most ``limit`` candidates for a listener with these creator and
    topic codes; every candidate when there are no more than ``limit``. ``candidate``,
    ``creator`` and ``topic`` have one value per slot."""
    pool_all = np.flatnonzero(candidate)
    if len(pool_all) <= limit:
        return pool_all
    taken = np.zeros(len(candidate), dtype=bool)
    budget = limit - round(limit * explore_share)
    for codes, liked in ((creator, liked_creators), (topic, liked_topics)):
        liked = np.fromiter(liked, np.int64)
        if budget <= 0 or not len(liked):
            continue
        # A lookup table over the codes: one gather, however many the listener likes.
        wanted = np.zeros(max(int(codes.max(initial=0)), int(liked.max())) + 1, dtype=bool)
        wanted[liked] = True
        pool = np.flatnonzero(candidate & ~taken & wanted[codes])
        if len(pool) > budget:   # the best ``budget`` by prior (ranks are distinct)
            pool = pool[np.argpartition(prior.rank[pool], budget - 1)[:budget]]
        taken[pool] = True
        budget -= len(pool)
    fill = limit - int(taken.sum())
    if fill > 0:
        order = prior.order
        rest = order[candidate[order] & ~taken[order]][:fill]
        taken[rest] = True
    return np.flatnonzero(taken)
