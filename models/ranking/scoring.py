"""The ranker's feature vector, the heuristic, top-k, A/B assignment and ranking metrics
(pure numpy; the training job and the ranking job both build vectors here, so they agree).

A vector is assembled from named columns: every name in ``FEATURE_ORDER`` gets its column, a
name nobody supplied gets its default (0.0), names not in the order are ignored. A missing
feature therefore never shifts the others.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping, Sequence

import numpy as np

# Point-in-time show features (the streaming store, as of the request).
PIT_FEATURES = ("pit_like_count", "pit_listen_count", "pit_unique_listeners",
                "pit_notify_count", "pit_is_live", "pit_minutes_to_start")
# Batch features (the online batch store, as of the start of the request's day).
SHOW_BATCH = ("s_listens", "s_like_rate", "s_avg_listen_minutes", "s_engagement_rate")
CREATOR_BATCH = ("c_plays_7d", "c_plays_30d", "c_unique_listeners_30d", "c_followers")
USER_TOPIC_BATCH = ("ut_listen_share", "ut_like_rate", "ut_listens_7d")
USER_CREATOR_BATCH = ("uc_listens", "uc_likes", "uc_listen_minutes", "uc_follows")
USER_BATCH = ("u_active_days", "u_listen_minutes")
FEATURE_ORDER: tuple[str, ...] = (PIT_FEATURES + SHOW_BATCH + CREATOR_BATCH + USER_TOPIC_BATCH
                                  + USER_CREATOR_BATCH + USER_BATCH + ("declared_topic",))
MAX_MINUTES_TO_START = 48 * 60.0


def assemble(columns: Mapping[str, np.ndarray | float], n: int,
             order: Sequence[str] = FEATURE_ORDER) -> np.ndarray:
    """(n, len(order)) float32: column ``i`` is ``columns[order[i]]`` (array or scalar), 0.0
    where the name is absent."""
    out = np.zeros((n, len(order)), dtype=np.float32)
    for i, name in enumerate(order):
        value = columns.get(name)
        if value is not None:
            out[:, i] = value
    return out


def minutes_to_start(scheduled_start_ms: np.ndarray, now_ms: int | np.ndarray) -> np.ndarray:
    """Minutes until a scheduled start (0 when started or unknown), capped at 48 h."""
    start = np.asarray(scheduled_start_ms, dtype=np.float64)
    minutes = np.where(start > 0, (start - now_ms) / 60_000.0, 0.0)
    return np.clip(minutes, 0.0, MAX_MINUTES_TO_START)


def pit_columns(show: Mapping[str, np.ndarray], now_ms: int | np.ndarray) -> dict[str, np.ndarray]:
    """PIT columns from the streaming store's show features (``SHOW_NUMERIC`` names of
    ``connectors.feature_store``: like_count, listen_count, unique_listeners, notify_count,
    is_live, scheduled_start, ...), as of ``now_ms``."""
    live = np.asarray(show["is_live"], dtype=np.float32)
    return {
        "pit_like_count": show["like_count"], "pit_listen_count": show["listen_count"],
        "pit_unique_listeners": show["unique_listeners"],
        "pit_notify_count": show["notify_count"], "pit_is_live": live,
        "pit_minutes_to_start": np.where(live > 0, 0.0,
                                         minutes_to_start(show["scheduled_start"], now_ms)),
    }


def factorise(values: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Distinct values in first-seen order, and each value's position among them."""
    index: dict[str, int] = {}
    codes = np.fromiter((index.setdefault(v, len(index)) for v in values), np.intp, len(values))
    return list(index), codes


def user_columns(user: Mapping[str, float], topics: Sequence[str], creators: Sequence[str],
                 coded: tuple | None = None) -> dict[str, np.ndarray]:
    """Per-candidate columns from a user's batch hash (``u_*``, ``ut:<topic>:<name>``,
    ``uc:<creator>:<name>``, as ``connectors.batch_store`` stores them). The hash is read
    into one row per distinct topic and creator, and candidates index into those rows;
    ``coded`` is ``(factorise(topics), factorise(creators))`` when the caller keeps it (the
    ranking job does, per catalog: a thousand dict lookups per request cost more than ONNX)."""
    (topic_names, topic_codes), (creator_names, creator_codes) = coded or (
        factorise(topics), factorise(creators))
    ut_rows = np.array([[user.get(f"ut:{t}:{n}", 0.0) for n in USER_TOPIC_BATCH]
                        for t in topic_names], np.float32).reshape(-1, len(USER_TOPIC_BATCH))
    by_creator: dict[str, list[float]] = {}
    for key, value in user.items():
        if key.startswith("uc:"):
            _, creator, name = key.split(":", 2)
            if name in USER_CREATOR_BATCH:
                row = by_creator.setdefault(creator, [0.0] * len(USER_CREATOR_BATCH))
                row[USER_CREATOR_BATCH.index(name)] = value
    zero = [0.0] * len(USER_CREATOR_BATCH)
    uc_rows = np.array([by_creator.get(c, zero) for c in creator_names],
                       np.float32).reshape(-1, len(USER_CREATOR_BATCH))
    ut, uc = ut_rows[topic_codes], uc_rows[creator_codes]
    cols: dict[str, np.ndarray] = {}
    for j, name in enumerate(USER_TOPIC_BATCH):
        cols[name] = ut[:, j]
    for j, name in enumerate(USER_CREATOR_BATCH):
        cols[name] = uc[:, j]
    for name in USER_BATCH:
        cols[name] = np.float32(user.get(name, 0.0))
    return cols


def heuristic_scores(declared: np.ndarray, popularity: np.ndarray) -> np.ndarray:
    """The control arm: shows of a topic the listener declared first, ties broken by
    popularity (``declared`` is one 0/1 per show)."""
    pop = np.asarray(popularity, dtype=np.float64)
    tie = pop / (1.0 + pop.max()) if len(pop) else pop  # in [0, 1): never outranks a topic
    return np.asarray(declared, dtype=np.float64) + tie


def catalog_scores(live: Sequence[bool], starts: Sequence[int], now_ms: int) -> np.ndarray:
    """Scores from the catalog alone, for when the online store is unreachable: live shows
    first, then upcoming ones soonest first (each score in [0, 2), higher is better)."""
    wait = np.maximum(np.asarray(starts, dtype=np.float64) - now_ms, 0.0)
    soon = 1.0 / (1.0 + wait / 3_600_000)   # 1 now, 1/2 in an hour
    return np.asarray(live, dtype=np.float64) + np.where(np.asarray(live, bool), 0.0, soon)


def top_k(ids: Sequence[str], scores: np.ndarray, k: int,
          tie_key: str = "") -> list[tuple[str, float]]:
    """The k best (id, score), best first; equal scores in an order drawn from ``tie_key``
    (the request id in serving): reproducible, but neither id nor arrival order, which would
    hand the tie to whatever sorts first."""
    return [(ids[i], float(scores[i])) for i in top_k_indices(ids, scores, k, tie_key)]


def top_k_indices(ids: Sequence[str], scores: np.ndarray, k: int,
                  tie_key: str = "") -> list[int]:
    """Positions of ``top_k``: only the scores tied with or above the k-th best are sorted."""
    s = np.asarray(scores, dtype=np.float64)
    if len(s) > k > 0:
        kth = np.partition(s, len(s) - k)[len(s) - k]
        pool = np.flatnonzero(s >= kth).tolist()
    else:
        pool = range(len(s))
    salt = tie_key.encode()

    def tie(i: int) -> bytes:  # a keyed hash: crc32's linearity would order ties alike
        return hashlib.blake2b(ids[i].encode(), digest_size=8, key=salt).digest()

    return sorted(pool, key=lambda i: (-s[i], tie(i), ids[i]))[:max(k, 0)]


def variant(user_id: str, experiment: str) -> str:
    """``ml`` or ``heuristic``, 50/50 by a hash of experiment and user: stable per user."""
    digest = hashlib.sha256(f"{experiment}:{user_id}".encode()).digest()
    return "ml" if digest[0] % 2 == 0 else "heuristic"


def ndcg_at_k(relevance_in_rank_order: np.ndarray, k: int = 10) -> float:
    """NDCG@k of one ranked list of 0/1 (or graded) relevances; 0 when nothing is relevant."""
    rel = np.asarray(relevance_in_rank_order, dtype=np.float64)
    discounts = 1.0 / np.log2(np.arange(2, min(k, len(rel)) + 2))
    dcg = float((rel[:k] * discounts).sum())
    ideal = float((np.sort(rel)[::-1][:k] * discounts).sum())
    return dcg / ideal if ideal > 0 else 0.0


def tied_ranks(request_ids: np.ndarray, scores: np.ndarray, seed: int) -> np.ndarray:
    """Each row's rank (0 = top) within its request by descending score; equal scores in an
    order drawn from ``seed``, never the logged order."""
    n = len(scores)
    jitter = np.random.default_rng(seed).random(n)
    codes = np.unique(request_ids, return_inverse=True)[1]
    order = np.lexsort((jitter, -np.asarray(scores, np.float64), codes))
    ranks = np.empty(n, dtype=np.int64)
    starts = np.r_[0, np.flatnonzero(np.diff(codes[order])) + 1]
    sizes = np.diff(np.r_[starts, n])
    ranks[order] = np.arange(n) - np.repeat(starts, sizes)
    return ranks


def ranking_metrics(request_ids: np.ndarray, labels: np.ndarray, scores: np.ndarray,
                    k: int = 10, tie_seed: int = 0) -> dict[str, float]:
    """Mean NDCG@k and engagement@k (engaged shows in the top k) over requests with at least
    one engaged show, each request's shows ordered by score, equal scores in an order drawn
    from ``tie_seed`` (a stable sort would keep the logged order, and credit its position
    bias to the ranking)."""
    order = np.lexsort((tied_ranks(request_ids, scores, tie_seed), request_ids))
    req, lab = request_ids[order], labels[order]
    bounds = np.flatnonzero(np.r_[True, req[1:] != req[:-1], True])
    ndcgs, engaged = [], []
    for lo, hi in itertools.pairwise(bounds):
        rel = lab[lo:hi]
        if rel.any():
            ndcgs.append(ndcg_at_k(rel, k))
            engaged.append(float(rel[:k].sum()))
    return {"requests": len(ndcgs), "ndcg": float(np.mean(ndcgs)) if ndcgs else 0.0,
            "engagement": float(np.mean(engaged)) if engaged else 0.0}
