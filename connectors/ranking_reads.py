"""Everything the ranker needs about one request's candidates, in one Redis round trip.

One pipeline holds: the packed streaming vectors of every candidate (``onair:showvec:*``, one
MGET), and from the published batch run the user's hash, each candidate's show hash and each
distinct creator's hash. Missing entities read as zeros (``SHOW_DEFAULTS`` for the streaming
side), which is also what the model saw for them in training.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from connectors.batch_store import BatchOnlineStore, float_matrix
from connectors.feature_store import SHOW_DEFAULTS, SHOW_NUMERIC, RedisFeatureStore
from connectors.settings import RedisSettings
from operators.ranking_features import (
    CREATOR_BATCH,
    SHOW_BATCH,
    pit_columns,
    user_columns,
)


@dataclass
class CandidateFeatures:
    columns: dict[str, np.ndarray]   # feature name -> per-candidate values (see assemble)
    declared: np.ndarray             # 1 where the user declared the show's topic
    popularity: np.ndarray           # the heuristic's tie-breaker
    batch_run: str | None


class RankingReader:
    def __init__(self, settings: RedisSettings | None = None):
        settings = settings or RedisSettings.from_env()
        self.streaming = RedisFeatureStore(settings)
        self.batch = BatchOnlineStore(settings)

    def read(self, user_id: str, show_ids: Sequence[str], creator_ids: Sequence[str],
             topics: Sequence[str], now_ms: int) -> CandidateFeatures:
        client = self.streaming.client
        pointer = self.batch.current()
        run = pointer["run_id"] if pointer else None
        creators = sorted(set(creator_ids))
        pipe = client.pipeline(transaction=False)
        pipe.mget([self.streaming.key("showvec", s) for s in show_ids] or ["-"])
        if run:
            pipe.hgetall(self.batch.key(run, "user", user_id))
            for s in show_ids:
                pipe.hmget(self.batch.key(run, "show", s), SHOW_BATCH)
            for c in creators:
                pipe.hmget(self.batch.key(run, "creator", c), CREATOR_BATCH)
        replies = pipe.execute()

        vectors = np.tile(SHOW_DEFAULTS, (len(show_ids), 1))
        for i, raw in enumerate(replies[0][:len(show_ids)]):
            if raw is not None:
                vectors[i] = np.frombuffer(raw, dtype=np.float32)
        pit = {name: vectors[:, j] for j, (name, _) in enumerate(SHOW_NUMERIC)}
        cols = pit_columns(pit, now_ms)
        user: dict[str, float] = {}
        declared_topics: set[str] = set()
        if run:
            raw_user = {k.decode(): v.decode() for k, v in replies[1].items()}
            declared_topics = set(json.loads(raw_user.pop("declared", "[]")))
            user = {k: float(v) for k, v in raw_user.items()}
            shows = float_matrix(replies[2:2 + len(show_ids)], len(SHOW_BATCH))
            by_creator = dict(zip(creators, float_matrix(replies[2 + len(show_ids):],
                                                    len(CREATOR_BATCH)), strict=True))
            for j, name in enumerate(SHOW_BATCH):
                cols[name] = shows[:, j]
            creator_rows = np.array([by_creator[c] for c in creator_ids],
                                    dtype=np.float32).reshape(len(creator_ids),
                                                              len(CREATOR_BATCH))
            for j, name in enumerate(CREATOR_BATCH):
                cols[name] = creator_rows[:, j]
        cols.update(user_columns(user, topics, creator_ids))
        declared = np.array([t in declared_topics for t in topics], dtype=np.float32)
        cols["declared_topic"] = declared
        popularity = cols["pit_listen_count"] + cols.get("s_listens", 0.0)
        return CandidateFeatures(cols, declared, np.asarray(popularity, np.float64), run)
