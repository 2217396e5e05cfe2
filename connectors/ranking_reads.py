"""Everything the ranker needs about one request's candidates, in at most one Redis round trip.

One pipeline of up to four commands: the packed streaming vectors of every candidate
(``onair:showvec:*``, one MGET), and from the published batch run the user's hash and the packed
vectors of the candidates and of their distinct creators (two MGETs). Missing entities read as
zeros (``SHOW_DEFAULTS`` for the streaming side), which is also what the model saw for them in
training. What a published batch run holds never changes, so it is read once per run and
kept; only the streaming vectors are re-read, when older than ``pit_cache_ms``.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from connectors.batch_store import BatchOnlineStore
from connectors.feature_store import SHOW_DEFAULTS, SHOW_NUMERIC, RedisFeatureStore
from core.settings import RedisSettings
from models.features.batch import TABLE_FEATURES
from models.ranking.scoring import CREATOR_BATCH, factorise, pit_columns, user_columns


@dataclass
class CandidateFeatures:
    columns: dict[str, np.ndarray]   # feature name -> per-candidate values (see assemble)
    declared: np.ndarray             # 1 where the user declared the show's topic
    popularity: np.ndarray           # the heuristic's tie-breaker
    batch_run: str | None


class RankingReader:
    """Reads with three caches, because a thousand-key MGET per request is mostly Python work
    in redis-py and a round trip costs 2-3 ms on this VM when it has to wake the other vCPU
    (docs/performance.md): batch vectors of shows and creators, and users' batch hashes (the
    last ``max_users``, least recently used out), are kept per published run (a run never
    changes; a new run empties them), streaming vectors for ``pit_cache_ms`` (default 500 ms:
    features that much older than Redis, for a 200-request/s workload that shares the same
    catalog). One round trip fetches whatever is missing or stale; a request whose user and
    candidates are all cached makes none. ``user_reads`` counts the users' hashes read."""

    def __init__(self, settings: RedisSettings | None = None, pit_cache_ms: int = 500,
                 max_entries: int = 200_000, max_users: int = 100_000):
        settings = settings or RedisSettings.from_env()
        self.streaming = RedisFeatureStore(settings)
        self.batch = BatchOnlineStore(settings)
        self.pit_cache_s = pit_cache_ms / 1000
        self.max_entries = max_entries
        self._pit: dict[str, tuple[float, np.ndarray]] = {}
        self._run: str | None = None
        self._batch: dict[tuple[str, str], np.ndarray] = {}
        # user id -> (u_*/ut:/uc: features, declared topics) of the run in ``self._run``
        self._users: OrderedDict[str, tuple[dict[str, float], set[str]]] = OrderedDict()
        self.max_users = max_users
        self.user_reads = 0
        # The last candidate list's stacked blocks: consecutive requests usually rank the same
        # catalog, so the stacking is skipped while the list and the run stay the same.
        self._memo: tuple | None = None

    def run(self) -> str | None:
        """The published batch run (None before the first)."""
        pointer = self.batch.current()
        return pointer["run_id"] if pointer else None

    def profile(self, user_id: str) -> tuple[dict[str, float], set[str]]:
        """The user's batch features and declared topics of the published run (cached like
        ``read``'s; one HGETALL on a miss)."""
        run = self.run()
        self._switch(run)
        user = self._user(run, user_id)
        if user is None:
            user = self._parse_user(run, user_id, self.streaming.client.hgetall(
                self.batch.key(run, "user", user_id)))
        return user

    def priors(self, show_ids: Sequence[str],
               creator_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Each candidate's batch listens and its creator's 7-day plays (zeros without a
        published run): the retrieval prior. Vectors missing from the run's cache are read in
        one round trip."""
        run = self.run()
        if run is None:
            return np.zeros(len(show_ids)), np.zeros(len(creator_ids))
        self._switch(run)
        missing = {kind: [i for i in dict.fromkeys(ids) if (kind, i) not in self._batch]
                   for kind, ids in (("show", show_ids), ("creator", creator_ids))}
        if missing["show"] or missing["creator"]:
            pipe = self.streaming.client.pipeline(transaction=False)
            for kind in ("show", "creator"):
                pipe.mget([self.batch.key(run, f"{kind}vec", i) for i in missing[kind]]
                          or ["-"])
            self._keep_batch(missing, pipe.execute())
        listens = TABLE_FEATURES["show"].index("s_listens")
        plays = TABLE_FEATURES["creator"].index("c_plays_7d")
        return (np.fromiter((self._batch[("show", s)][listens] for s in show_ids), np.float64,
                            len(show_ids)),
                np.fromiter((self._batch[("creator", c)][plays] for c in creator_ids),
                            np.float64, len(creator_ids)))

    def _switch(self, run: str | None) -> None:
        """Empty the batch caches when another run is published (or they outgrew their cap)."""
        if run != self._run or len(self._batch) > self.max_entries:
            self._run, self._batch, self._users = run, {}, OrderedDict()

    def _keep_batch(self, missing: dict[str, list[str]], replies) -> None:
        for reply, kind in zip(replies, ("show", "creator"), strict=True):
            width = len(TABLE_FEATURES[kind])
            for i, vec in zip(missing[kind], unpack(reply[:len(missing[kind])],
                                                    np.zeros(width, np.float32)), strict=True):
                self._batch[(kind, i)] = vec

    def read(self, user_id: str, show_ids: Sequence[str], creator_ids: Sequence[str],
             topics: Sequence[str], now_ms: int,
             profile: tuple[dict[str, float], set[str]] | None = None) -> CandidateFeatures:
        """``profile``: the user's (``profile``), when the caller has read it already."""
        pointer = self.batch.current()
        run = pointer["run_id"] if pointer else None
        key = (run, tuple(show_ids), tuple(creator_ids))
        memo = self._memo
        if memo is not None and memo[0] == key and time.monotonic() - memo[1] <= self.pit_cache_s:
            pit, shows, creators, coded = memo[2:]
            user = profile or self.profile(user_id)
            return self._columns(run, user, pit, shows, creators, topics, creator_ids, coded,
                                 now_ms)
        return self._read(user_id, show_ids, creator_ids, topics, now_ms, pointer, key,
                          profile)

    def _user(self, run: str | None, user_id: str) -> tuple[dict[str, float], set[str]] | None:
        """The user's cached batch features of ``run`` (empty ones when no run is published)."""
        if run is None:
            return {}, set()
        if run != self._run:
            return None
        user = self._users.get(user_id)
        if user is not None:
            self._users.move_to_end(user_id)
        return user

    def _parse_user(self, run: str, user_id: str, raw: dict[bytes, bytes]):
        self.user_reads += 1
        decoded = {k.decode(): v.decode() for k, v in raw.items()}
        declared = set(json.loads(decoded.pop("declared", "[]")))
        user = ({k: float(v) for k, v in decoded.items()}, declared)
        if run == self._run and self.max_users > 0:
            self._users[user_id] = user
            if len(self._users) > self.max_users:
                self._users.popitem(last=False)
        return user

    def _read(self, user_id, show_ids, creator_ids, topics, now_ms, pointer, memo_key,
              profile=None):
        run = pointer["run_id"] if pointer else None
        self._switch(run)
        if len(self._pit) > self.max_entries:
            self._pit = {}
        clock = time.monotonic()
        stale = [s for s in dict.fromkeys(show_ids)
                 if s not in self._pit or clock - self._pit[s][0] > self.pit_cache_s]
        missing = {kind: [i for i in dict.fromkeys(ids) if (kind, i) not in self._batch]
                   for kind, ids in (("show", show_ids), ("creator", creator_ids))} if run \
            else {"show": [], "creator": []}
        pipe = self.streaming.client.pipeline(transaction=False)
        user = profile or self._user(run, user_id)
        pipe.mget([self.streaming.key("showvec", s) for s in stale] or ["-"])
        if run:
            for kind in ("show", "creator"):
                pipe.mget([self.batch.key(run, f"{kind}vec", i) for i in missing[kind]]
                          or ["-"])
            if user is None:
                pipe.hgetall(self.batch.key(run, "user", user_id))
        replies = pipe.execute()

        for s, vec in zip(stale, unpack(replies[0][:len(stale)], SHOW_DEFAULTS), strict=True):
            self._pit[s] = (clock, vec)
        pit = np.stack([self._pit[s][1] for s in show_ids]) if show_ids \
            else np.zeros((0, len(SHOW_DEFAULTS)), np.float32)
        shows = creators = None
        if run:
            self._keep_batch(missing, replies[1:3])
            shows = _stack([self._batch[("show", s)] for s in show_ids], "show")
            creators = _stack([self._batch[("creator", c)] for c in creator_ids], "creator")
        coded = (factorise(topics), factorise(creator_ids))
        self._memo = (memo_key, clock, pit, shows, creators, coded)
        if user is None:
            user = self._parse_user(run, user_id, replies[3])
        return self._columns(run, user, pit, shows, creators, topics, creator_ids, coded,
                             now_ms)

    @staticmethod
    def _columns(run, user_and_declared, pit, shows, creators, topics, creator_ids, coded,
                 now_ms) -> CandidateFeatures:
        cols = pit_columns({name: pit[:, j] for j, (name, _) in enumerate(SHOW_NUMERIC)},
                           now_ms)
        user, declared_topics = user_and_declared
        if run:
            for j, name in enumerate(TABLE_FEATURES["show"]):
                cols[name] = shows[:, j]
            for j, name in enumerate(TABLE_FEATURES["creator"]):
                if name in CREATOR_BATCH:
                    cols[name] = creators[:, j]
        cols.update(user_columns(user, topics, creator_ids, coded))
        topic_names, topic_codes = coded[0]
        declared = np.array([t in declared_topics for t in topic_names],
                            dtype=np.float32)[topic_codes]
        cols["declared_topic"] = declared
        popularity = cols["pit_listen_count"] + cols.get("s_listens", 0.0)
        return CandidateFeatures(cols, declared, np.asarray(popularity, np.float64), run)


def _stack(rows: list[np.ndarray], kind: str) -> np.ndarray:
    return np.stack(rows) if rows else np.zeros((0, len(TABLE_FEATURES[kind])), np.float32)


def unpack(values: list[bytes | None], default: np.ndarray) -> np.ndarray:
    """Packed float32 vectors (None: missing -> ``default``) as one (n, width) matrix."""
    out = np.tile(default, (len(values), 1))
    for i, raw in enumerate(values):
        if raw is not None:
            out[i] = np.frombuffer(raw, dtype=np.float32)
    return out
