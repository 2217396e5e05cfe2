"""The online feature store in Redis: one hash per entity, versioned writes, matrix reads.

Layout: ``onair:{kind}:{id}`` (kind = show, creator, user; ``onair`` is
``RedisSettings.key_prefix``) holds the features plus
``_seq`` (how many events the entity has applied: the version), ``_event_ts`` (event time of
the newest contributing event) and ``_write_ts`` (wall clock of the write), all UTC ms.

Writes go in pipelined batches through a Lua script that ignores a write whose ``_seq`` is
lower than the stored one: a replay after a restart (which recomputes the same versions from
the checkpoint on) never moves a feature back to an older version. At an equal version the
write goes through: that is how changes made by the passing of event time (a session closed by
its timer) reach the store, and a replay at the same version carries the same events. Ended
shows get a TTL.

A show's numeric features are also kept packed (float32, ``SHOW_NUMERIC`` order) under
``onair:showvec:{id}``, written by the same script and version check, so ``read_shows`` fetches
the matrix of thousands of shows with a single MGET; missing shows (never seen, or expired)
read as ``SHOW_DEFAULTS``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import orjson
import redis

from connectors.redis_client import redis_client
from core.settings import RedisSettings

# Numeric show features in matrix order, with the value a missing show reads as.
SHOW_NUMERIC: tuple[tuple[str, float], ...] = (
    ("like_count", 0.0),
    ("listen_count", 0.0),
    ("live_listeners", 0.0),
    ("sessions_5min", 0.0),
    ("unique_listeners", 0.0),
    ("notify_count", 0.0),
    ("is_live", 0.0),
    ("is_scheduled", 0.0),
    ("scheduled_start", 0.0),
)
SHOW_DEFAULTS = np.array([d for _, d in SHOW_NUMERIC], dtype=np.float32)

# Many entities per call: for each, its keys in KEYS (the hash; for shows, then the packed
# vector) and in ARGV: number of keys, seq, ttl_ms, vector (or ""), number of field/value
# items, the items (which include _seq). One script call per batch, not per entity: the
# per-call cost (client packing, server dispatch) was ~40 us per event in compute_features.
_WRITE_IF_NEWER = """
local k, a, written = 1, 1, 0
while a <= #ARGV do
  local nkeys, seq, ttl = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local nitems = tonumber(ARGV[a + 4])
  local stored = tonumber(redis.call('HGET', KEYS[k], '_seq') or '-1')
  if seq >= stored then
    redis.call('HSET', KEYS[k], unpack(ARGV, a + 5, a + 4 + nitems))
    if ttl > 0 then redis.call('PEXPIRE', KEYS[k], ttl)
    elseif nkeys > 1 then redis.call('PERSIST', KEYS[k]) end   -- only shows ever expire
    if nkeys > 1 then
      if ttl > 0 then redis.call('SET', KEYS[k + 1], ARGV[a + 3], 'PX', ttl)
      else redis.call('SET', KEYS[k + 1], ARGV[a + 3]) end
    end
    written = written + 1
  end
  k, a = k + nkeys, a + 5 + nitems
end
return written
"""
# Entities per script call: a script blocks the server while it runs.
WRITES_PER_CALL = 200


@dataclass(frozen=True)
class FeatureWrite:
    kind: str
    entity_id: str
    seq: int
    event_ts: int
    features: dict
    ttl_ms: int = 0


def show_vector(features: dict) -> np.ndarray:
    """A show's numeric features in ``SHOW_NUMERIC`` order (missing ones at their default)."""
    status = features.get("status")
    values = {**features, "is_live": status == "live", "is_scheduled": status == "scheduled"}
    return np.array([float(values.get(name, default)) for name, default in SHOW_NUMERIC],
                    dtype=np.float32)


def encode_field(value) -> str:
    """A feature value as the Redis hash field holds it."""
    if isinstance(value, dict | list):
        # orjson: compact and sorted like json.dumps(separators=(",", ":"), sort_keys=True),
        # at a fraction of its cost (a user's topics are encoded on every write).
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


class RedisFeatureStore:
    """Feature reads and writes; the client is created lazily (safe in a Flink ``open``)."""

    def __init__(self, settings: RedisSettings | None = None):
        self.settings = settings or RedisSettings.from_env()
        self._client = None
        self._script = None

    def key(self, kind: str, entity_id: str) -> str:
        return f"{self.settings.key_prefix}:{kind}:{entity_id}"

    @property
    def client(self):
        if self._client is None:
            self._client = redis_client(self.settings)
        if self._script is None:   # loaded once per client (again after a failed load)
            self._script = self._client.script_load(_WRITE_IF_NEWER)
        return self._client

    def write_many(self, writes: Iterable[FeatureWrite]) -> int:
        """One pipelined round trip; returns how many writes were not older than the store's.

        The keys of one call may be in different Redis Cluster slots: this store expects a
        single Redis (or a proxy that runs scripts across slots)."""
        writes = list(writes)
        if not writes:
            return 0
        client = self.client
        now = str(int(time.time() * 1000))
        pipe = client.pipeline(transaction=False)
        for start in range(0, len(writes), WRITES_PER_CALL):
            keys: list[str] = []
            args: list = []
            for w in writes[start:start + WRITES_PER_CALL]:
                items = ["_seq", str(w.seq), "_event_ts", str(w.event_ts), "_write_ts", now]
                for name, value in w.features.items():
                    items += (name, encode_field(value))
                keys.append(self.key(w.kind, w.entity_id))
                vector = b""
                if w.kind == "show":
                    keys.append(self.key("showvec", w.entity_id))
                    vector = show_vector(w.features).tobytes()
                args += (2 if w.kind == "show" else 1, w.seq, w.ttl_ms, vector, len(items))
                args += items
            # EVALSHA, not redis-py's Script object: in a pipeline that asks SCRIPT EXISTS
            # before every execute, a second round trip per batch.
            pipe.evalsha(self._script, len(keys), *keys, *args)
        try:
            return sum(int(r) for r in pipe.execute())
        except redis.exceptions.NoScriptError:
            # The server lost its script cache (a restart, SCRIPT FLUSH): load it again and
            # redo the batch, which is idempotent (versioned writes).
            self._script = client.script_load(_WRITE_IF_NEWER)
            return self.write_many(writes)

    def delete_many(self, entities: Sequence[tuple[str, str]]) -> None:
        """Remove entities (kind, id) from the store, a show's vector with it."""
        keys = [self.key(kind, eid) for kind, eid in entities]
        keys += [self.key("showvec", eid) for kind, eid in entities if kind == "show"]
        if keys:
            self.client.delete(*keys)

    def read(self, kind: str, entity_id: str) -> dict[str, str]:
        raw = self.client.hgetall(self.key(kind, entity_id))
        return {k.decode(): v.decode() for k, v in raw.items()}

    def read_shows(self, show_ids: Sequence[str]) -> np.ndarray:
        """Feature matrix, shape (len(show_ids), len(SHOW_NUMERIC)), float32: one MGET.

        ``is_live`` / ``is_scheduled`` are 1.0 or 0.0 from ``status``; missing ids read as
        ``SHOW_DEFAULTS``."""
        out = np.tile(SHOW_DEFAULTS, (len(show_ids), 1))
        if not show_ids:
            return out
        prefix = self.key("showvec", "")
        values = self.client.mget([prefix + sid for sid in show_ids])
        # Present rows in one copy: a read of 1,000 ids is ~1 ms, so per-row numpy calls show.
        rows = [row for row, value in enumerate(values) if value is not None]
        if rows:
            out[rows] = np.frombuffer(b"".join(values[row] for row in rows),
                                      dtype=np.float32).reshape(len(rows), -1)
        return out
