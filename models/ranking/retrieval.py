"""Retrieval: which of a large catalog's candidates a request scores (pure numpy).

Below ``limit`` candidates every one is scored, as before. Above it, scoring every show costs
one feature vector and one ONNX row each, which a 50,000-show catalog cannot afford within a
request's budget, so a request scores at most ``limit`` of them:

1. the shows of creators the listener has history with (``uc:<creator>:*`` keys of their batch
   hash), then the shows of topics they declared or listened to (``ut:<topic>:*``), each
   group in prior order, up to ``limit - explore``;
2. the rest, at least ``explore``, by the prior: the most listened shows and creators of
   the published batch run, live shows first among equals (a new show of a known creator
   inherits its creator's plays).

The index (shows per creator and per topic, the prior's order) is built once per candidate set
and shared by every request until the catalog changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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


class RetrievalIndex:
    """Candidates grouped by creator and by topic, each group and the whole set in prior order
    (highest first; equal priors in catalog order)."""

    def __init__(self, creators: Sequence[str], topics: Sequence[str], prior: np.ndarray):
        n = len(creators)
        prior = np.asarray(prior, dtype=np.float64)
        if prior.shape != (n,):
            raise ValueError(f"prior has shape {prior.shape}, expected ({n},)")
        # A stable sort keeps catalog order among equals: the same request always retrieves
        # the same shows.
        self.order = np.argsort(-prior, kind="stable")
        self.rank = np.empty(n, dtype=np.int64)   # position in the prior order
        self.rank[self.order] = np.arange(n)
        self.n = n
        self.by_creator = self._groups(creators)
        self.by_topic = self._groups(topics)

    def _groups(self, values: Sequence[str]) -> dict[str, np.ndarray]:
        names, codes = np.unique(np.asarray(values, dtype=object).astype(str),
                                 return_inverse=True)
        ranked = codes[self.order]
        # Positions of each group, in prior order: a stable sort by group of the prior order.
        by_group = self.order[np.argsort(ranked, kind="stable")]
        bounds = np.searchsorted(np.sort(ranked), np.arange(len(names) + 1))
        return {str(name): by_group[bounds[i]:bounds[i + 1]] for i, name in enumerate(names)}

    def select(self, creators: Iterable[str], topics: Iterable[str],
               limit: int = DEFAULT_LIMIT, explore_share: float = EXPLORE_SHARE) -> np.ndarray:
        """Positions (ascending) of at most ``limit`` candidates for a listener with these
        creator and topic affinities; every candidate when there are no more than ``limit``."""
        if self.n <= limit:
            return np.arange(self.n)
        explore = round(limit * explore_share)
        taken = np.zeros(self.n, dtype=bool)
        budget = limit - explore
        for groups, names in ((self.by_creator, creators), (self.by_topic, topics)):
            parts = [groups[name] for name in sorted(set(names)) if name in groups]
            if not parts or budget <= 0:
                continue
            # Merge the groups by prior: the best of all of them first, not one group whole.
            pool = np.unique(np.concatenate(parts))
            pool = pool[~taken[pool]]
            best = pool[np.argsort(self.rank[pool], kind="stable")][:budget]
            taken[best] = True
            budget -= len(best)
        fill = limit - int(taken.sum())
        if fill > 0:
            rest = self.order[~taken[self.order]][:fill]
            taken[rest] = True
        return np.flatnonzero(taken)


def prior_scores(show_listens: np.ndarray, creator_plays: np.ndarray,
                 live: np.ndarray) -> np.ndarray:
    """The retrieval prior: batch listens of the show plus its creator's 7-day plays (a new show
    has none of its own), live shows ahead of upcoming ones of equal plays."""
    plays = (np.asarray(show_listens, np.float64) + np.asarray(creator_plays, np.float64))
    return np.log1p(np.maximum(plays, 0.0)) + 0.5 * np.asarray(live, np.float64)
