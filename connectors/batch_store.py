"""Where batch features live: the offline store (Parquet, by as-of date and run) and the online
store (Redis, one namespace per run, switched by a pointer).

Offline, under ``<lake>/features/batch``::

    <table>/as_of=YYYY-MM-DD/run=<run_id>/shard-NNN.parquet   rows carry as_of and run_id
    _runs/as_of=YYYY-MM-DD.json                               the complete run for that day

The pointer file is written last (atomically): a run without one is incomplete and is never
read. Training joins features "as they were" on any past day by reading that day's run.

Online, in Redis (``onair`` is ``RedisSettings.key_prefix``)::

    onair:batch:<run>:user:<id>      u_* features, ut:<topic>:<name>, uc:<creator>:<name>,
                                     declared (JSON list of the topics the user declared)
    onair:batch:<run>:creator:<id>   c_* features
    onair:batch:<run>:show:<id>      s_* features
    onair:batch:<run>:showvec:<id>   the same, packed float32 (also creatorvec for creators)
    onair:batch:current              {"run_id", "as_of", "previous"}

A run is loaded completely under its own namespace before ``publish`` moves the pointer, so a
reader never sees half a run; the previous run is kept (a reader that resolved the pointer
just before the switch still reads a whole run) and older ones are deleted. Missing entities
read as 0.0 for every feature: no activity in the lookback window.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from connectors.lake import local_path
from connectors.redis_client import redis_client, unlink_matching
from core.settings import RedisSettings
from models.features.batch import TABLE_FEATURES, TABLE_KEYS

PIPELINE_BATCH = 1000


def offline_root(lake_root: str) -> Path:
    return local_path(lake_root) / "features" / "batch"


def write_offline_shard(root: Path, table: str, frame: pd.DataFrame, as_of: str, run_id: str,
                        shard: int) -> Path:
    folder = root / table / f"as_of={as_of}" / f"run={run_id}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"shard-{shard:03d}.parquet"
    tmp = folder / f".shard-{shard:03d}.parquet.tmp"
    data = pa.Table.from_pandas(frame.assign(as_of=as_of, run_id=run_id), preserve_index=False)
    pq.write_table(data, tmp, compression="zstd")
    tmp.replace(path)
    return path


def mark_offline_complete(root: Path, as_of: str, run_id: str, manifest: dict) -> Path:
    runs = root / "_runs"
    runs.mkdir(parents=True, exist_ok=True)
    tmp = runs / f".as_of={as_of}.json.tmp"
    tmp.write_text(json.dumps({"as_of": as_of, "run_id": run_id, **manifest}, indent=1))
    final = runs / f"as_of={as_of}.json"
    tmp.replace(final)
    return final


def read_offline(root: Path, table: str, as_of: str) -> pd.DataFrame:
    """The features of ``table`` as of a day, from that day's complete run."""
    pointer = root / "_runs" / f"as_of={as_of}.json"
    if not pointer.exists():
        raise FileNotFoundError(f"no complete batch-feature run as of {as_of} under {root}; "
                                f"run build_batch_features --as-of {as_of}")
    run_id = json.loads(pointer.read_text())["run_id"]
    folder = root / table / f"as_of={as_of}" / f"run={run_id}"
    files = sorted(folder.glob("shard-*.parquet"))
    cols = [*TABLE_KEYS[table], *TABLE_FEATURES[table], "as_of", "run_id"]
    if not files:
        return pd.DataFrame(columns=cols)
    frame = pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)
    return frame[cols].sort_values(list(TABLE_KEYS[table])).reset_index(drop=True)


def _numbers(frame: pd.DataFrame, names: Sequence[str]) -> list[dict[str, str]]:
    """Feature columns as Redis field maps (repr round-trips a float exactly)."""
    values = frame[list(names)].to_numpy(dtype=np.float64)
    return [{n: repr(float(v)) for n, v in zip(names, row, strict=True)} for row in values]


class BatchOnlineStore:
    def __init__(self, settings: RedisSettings | None = None):
        self.settings = settings or RedisSettings.from_env()
        self.prefix = f"{self.settings.key_prefix}:batch"
        self._client = None
        self._pointer: tuple[float, dict | None] = (0.0, None)

    @property
    def client(self):
        if self._client is None:
            self._client = redis_client(self.settings)
        return self._client

    def key(self, run_id: str, entity: str, entity_id: str) -> str:
        return f"{self.prefix}:{run_id}:{entity}:{entity_id}"

    @property
    def pointer_key(self) -> str:
        return f"{self.prefix}:current"

    # ------------------------------------------------------------------ loading a run
    def load(self, run_id: str, tables: dict[str, pd.DataFrame]) -> int:
        """Write one shard's tables under the run's namespace; returns hashes written."""
        mappings: dict[str, dict[str, str]] = {}

        def add(entity, ids, fields):
            for entity_id, f in zip(ids, fields, strict=True):
                mappings.setdefault(self.key(run_id, entity, entity_id), {}).update(f)

        for table, entity in (("user", "user"), ("creator", "creator"), ("show", "show")):
            if table in tables:
                t = tables[table]
                add(entity, t[TABLE_KEYS[table][0]], _numbers(t, TABLE_FEATURES[table]))
        for table, prefix in (("user_topic", "ut"), ("user_creator", "uc")):
            if table in tables:
                t = tables[table]
                names = TABLE_FEATURES[table]
                sub = t[TABLE_KEYS[table][1]].to_numpy()
                fields = [{f"{prefix}:{s}:{n}": v for n, v in f.items()}
                          for s, f in zip(sub, _numbers(t, names), strict=True)]
                add("user", t["user_id"], fields)
        pipe = self.client.pipeline(transaction=False)
        for i, (key, mapping) in enumerate(mappings.items(), start=1):
            pipe.hset(key, mapping=mapping)
            if i % PIPELINE_BATCH == 0:
                pipe.execute()
        # Shows and creators also as packed float32 vectors (TABLE_FEATURES order): a ranker
        # reads a thousand of them with one MGET instead of a thousand HMGETs.
        for table in ("show", "creator"):
            if table in tables:
                t = tables[table]
                vectors = t[list(TABLE_FEATURES[table])].to_numpy(dtype=np.float32)
                for i, (entity_id, vec) in enumerate(zip(t[TABLE_KEYS[table][0]], vectors,
                                                         strict=True), start=1):
                    pipe.set(self.key(run_id, f"{table}vec", entity_id), vec.tobytes())
                    if i % PIPELINE_BATCH == 0:
                        pipe.execute()
        pipe.execute()
        return len(mappings)

    def load_declared(self, run_id: str, declared: dict[str, list[str]]) -> int:
        """Each user's declared topics (``declared``: JSON list) into the run's user hashes:
        the heuristic ranks by them, the model reads them as a feature."""
        pipe = self.client.pipeline(transaction=False)
        for i, (user, topics) in enumerate(declared.items(), start=1):
            pipe.hset(self.key(run_id, "user", user), "declared", json.dumps(sorted(topics)))
            if i % PIPELINE_BATCH == 0:
                pipe.execute()
        pipe.execute()
        return len(declared)

    def publish(self, run_id: str, as_of: str) -> dict:
        """Point readers at ``run_id``; keep the previous run, delete older ones."""
        old = self.current(max_age_s=0)
        pointer = {"run_id": run_id, "as_of": as_of,
                   "previous": old["run_id"] if old and old["run_id"] != run_id else None}
        self.client.set(self.pointer_key, json.dumps(pointer))
        self._pointer = (time.monotonic(), pointer)
        self.delete_runs_except({run_id, pointer["previous"]})
        return pointer

    def delete_runs_except(self, keep: set[str | None]) -> int:
        return unlink_matching(self.client, f"{self.prefix}:*:*:*", batch=PIPELINE_BATCH,
                               keep=lambda key: key.decode().split(":")[-3] in keep)

    # ------------------------------------------------------------------ reading
    def current(self, max_age_s: float = 5.0) -> dict | None:
        """The published run (cached ``max_age_s``: the pointer moves once a day)."""
        at, pointer = self._pointer
        if pointer is None or time.monotonic() - at > max_age_s:
            raw = self.client.get(self.pointer_key)
            pointer = json.loads(raw) if raw else None
            self._pointer = (time.monotonic(), pointer)
        return pointer

    def read(self, user_id: str, show_ids: Sequence[str],
             creator_ids: Sequence[str] = ()) -> BatchFeatures:
        """The user's features and the matrices of shows' and creators' features, in one
        pipelined round trip (after the cached pointer)."""
        pointer = self.current()
        if pointer is None:
            return BatchFeatures.empty(len(show_ids), len(creator_ids), run_id=None)
        run = pointer["run_id"]
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(self.key(run, "user", user_id))
        for s in show_ids:
            pipe.hmget(self.key(run, "show", s), TABLE_FEATURES["show"])
        for c in creator_ids:
            pipe.hmget(self.key(run, "creator", c), TABLE_FEATURES["creator"])
        replies = pipe.execute()
        user = {k.decode(): float(v) for k, v in replies[0].items() if k != b"declared"}
        shows = float_matrix(replies[1:1 + len(show_ids)], len(TABLE_FEATURES["show"]))
        creators = float_matrix(replies[1 + len(show_ids):], len(TABLE_FEATURES["creator"]))
        return BatchFeatures(run, user, shows, creators)


def float_matrix(rows: list[list[bytes | None]], width: int) -> np.ndarray:
    out = np.zeros((len(rows), width), dtype=np.float32)
    for i, row in enumerate(rows):
        for j, v in enumerate(row):
            if v is not None:
                out[i, j] = float(v)
    return out


@dataclass(frozen=True)
class BatchFeatures:
    run_id: str | None
    user: dict[str, float]       # u_*, ut:<topic>:<name>, uc:<creator>:<name>
    shows: np.ndarray            # (shows, TABLE_FEATURES["show"])
    creators: np.ndarray         # (creators, TABLE_FEATURES["creator"])

    @classmethod
    def empty(cls, n_shows: int, n_creators: int, run_id: str | None) -> BatchFeatures:
        return cls(run_id, {}, np.zeros((n_shows, len(TABLE_FEATURES["show"])), np.float32),
                   np.zeros((n_creators, len(TABLE_FEATURES["creator"])), np.float32))

    def user_feature(self, name: str, *qualifiers: str) -> float:
        """``user_feature("u_active_days")``, ``user_feature("ut_listen_share", "tech")``."""
        key = name if not qualifiers else f"{name[:2]}:{qualifiers[0]}:{name}"
        return self.user.get(key, 0.0)
