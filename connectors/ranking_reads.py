"""Everything the ranker needs about one request's candidates, in one Redis round trip.

One pipeline of four commands: the packed streaming vectors of every candidate
(``onair:showvec:*``, one MGET), and from the published batch run the user's hash and the packed
vectors of the candidates and of their distinct creators (two MGETs). Missing entities read as
zeros (``SHOW_DEFAULTS`` for the streaming side), which is also what the model saw for them in
training.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from connectors.batch_store import BatchOnlineStore
from connectors.feature_store import SHOW_DEFAULTS, SHOW_NUMERIC, RedisFeatureStore
from connectors.settings import RedisSettings
from operators.batch_features import TABLE_FEATURES
from operators.ranking_features import CREATOR_BATCH, pit_columns, user_columns


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
            pipe.mget([self.batch.key(run, "showvec", s) for s in show_ids] or ["-"])
            pipe.mget([self.batch.key(run, "creatorvec", c) for c in creators] or ["-"])
        replies = pipe.execute()

        n = len(show_ids)
        pit = unpack(replies[0][:n], SHOW_DEFAULTS)
        cols = pit_columns({name: pit[:, j] for j, (name, _) in enumerate(SHOW_NUMERIC)},
                           now_ms)
        user: dict[str, float] = {}
        declared_topics: set[str] = set()
        if run:
            raw_user = {k.decode(): v.decode() for k, v in replies[1].items()}
            declared_topics = set(json.loads(raw_user.pop("declared", "[]")))
            user = {k: float(v) for k, v in raw_user.items()}
            shows = unpack(replies[2][:n], np.zeros(len(TABLE_FEATURES["show"]), np.float32))
            for j, name in enumerate(TABLE_FEATURES["show"]):
                cols[name] = shows[:, j]
            by_creator = unpack(replies[3][:len(creators)],
                                np.zeros(len(TABLE_FEATURES["creator"]), np.float32))
            row_of = {c: i for i, c in enumerate(creators)}
            rows = by_creator[[row_of[c] for c in creator_ids]] if creator_ids else by_creator
            for j, name in enumerate(TABLE_FEATURES["creator"]):
                if name in CREATOR_BATCH:
                    cols[name] = rows[:, j]
        cols.update(user_columns(user, topics, creator_ids))
        declared = np.array([t in declared_topics for t in topics], dtype=np.float32)
        cols["declared_topic"] = declared
        popularity = cols["pit_listen_count"] + cols.get("s_listens", 0.0)
        return CandidateFeatures(cols, declared, np.asarray(popularity, np.float64), run)


def unpack(values: list[bytes | None], default: np.ndarray) -> np.ndarray:
    """Packed float32 vectors (None: missing -> ``default``) as one (n, width) matrix."""
    out = np.tile(default, (len(values), 1))
    for i, raw in enumerate(values):
        if raw is not None:
            out[i] = np.frombuffer(raw, dtype=np.float32)
    return out
