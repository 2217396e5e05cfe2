"""Which shows can be ranked right now: live shows and shows scheduled to start within a horizon,
kept from show events (pure; the ranking job holds one per subtask, rebuilt from broadcast
state after a restart)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

HORIZON_MS = 2 * 3_600_000
# A scheduled show whose start has passed without a `live` event stays a candidate this long.
LATE_START_MS = 30 * 60_000
# Ended shows are forgotten after this much event time (late events about them are ignored).
FORGET_ENDED_MS = 3_600_000
# Shows that can never be candidates again are forgotten too, so the catalog does not grow
# with shows whose end was never heard: scheduled ones this long past their start (or never
# given one), live ones with no event for this long.
FORGET_STALE_MS = 24 * 3_600_000


@dataclass
class ShowEntry:
    show_id: str
    creator_id: str
    topic: str
    status: str            # scheduled | live | ended
    scheduled_start: int   # UTC ms, 0 when unknown
    status_ts: int         # event time of the status

    def as_tuple(self) -> tuple:
        return (self.creator_id, self.topic, self.status, self.scheduled_start, self.status_ts)

    @classmethod
    def from_tuple(cls, show_id: str, t: tuple) -> ShowEntry:
        return cls(show_id, *t)


@dataclass(frozen=True)
class CandidateSet:
    """The columns the ranker reads from the candidates at a time, valid for every request
    time in [``valid_from``, ``valid_until``) while the catalog does not change."""

    ids: tuple[str, ...]
    creators: tuple[str, ...]
    topics: tuple[str, ...]
    valid_from: int
    valid_until: int
    version: int
    horizon_ms: int

    @classmethod
    def of(cls, entries: Sequence[ShowEntry], valid_from: int = 0, valid_until: int = 0,
           version: int = -1, horizon_ms: int = HORIZON_MS) -> CandidateSet:
        return cls(tuple(e.show_id for e in entries), tuple(e.creator_id for e in entries),
                   tuple(e.topic for e in entries), valid_from, valid_until, version,
                   horizon_ms)

    def valid(self, version: int, now_ms: int, horizon_ms: int) -> bool:
        return (version == self.version and horizon_ms == self.horizon_ms
                and self.valid_from <= now_ms < self.valid_until)


# Shows whose status makes them candidates (see ``Catalog.candidates``), as column codes.
_GONE, _SCHEDULED, _LIVE = 0, 1, 2
_STATUS_CODE = {"scheduled": _SCHEDULED, "live": _LIVE}
# How often (event time) the catalog is swept for shows to forget: a sweep walks every show.
SWEEP_EVERY_MS = 60_000


class CatalogColumns:
    """The catalog as arrays, one slot per show in catalog order, kept up to date by every
    change: what a large catalog's retrieval filters per request without walking its shows
    (``models/ranking/retrieval.py``). Creators and topics are integer codes; a forgotten
    show's slot is a hole until holes are half the slots, then slots are renumbered
    (``layout`` counts renumberings, so whoever keeps per-slot values knows)."""

    def __init__(self) -> None:
        self.ids: list[str | None] = []
        self.slot: dict[str, int] = {}
        self.status = np.zeros(64, np.int8)
        self.start = np.zeros(64, np.int64)
        self.creator = np.zeros(64, np.int32)
        self.topic = np.zeros(64, np.int32)
        self.creators: dict[str, int] = {}
        self.topics: dict[str, int] = {}
        self.layout = 0
        self.holes = 0

    @property
    def size(self) -> int:
        return len(self.ids)

    def set(self, e: ShowEntry) -> None:
        i = self.slot.get(e.show_id)
        if i is None:
            i = self.slot[e.show_id] = len(self.ids)
            self.ids.append(e.show_id)
            if i == len(self.status):
                self._resize(slice(None))
        self.status[i] = _STATUS_CODE.get(e.status, _GONE)
        self.start[i] = e.scheduled_start
        self.creator[i] = self.creators.setdefault(e.creator_id, len(self.creators))
        self.topic[i] = self.topics.setdefault(e.topic, len(self.topics))

    def remove(self, show_ids: Sequence[str]) -> None:
        for show_id in show_ids:
            i = self.slot.pop(show_id)
            self.ids[i] = None
            self.status[i] = _GONE
        self.holes += len(show_ids)
        if self.holes * 2 > self.size:
            keep = np.array([i for i, s in enumerate(self.ids) if s is not None], np.int64)
            self.ids = [self.ids[i] for i in keep]
            self.slot = {s: i for i, s in enumerate(self.ids)}
            self._resize(keep)
            self.holes = 0
            self.layout += 1

    def _resize(self, rows) -> None:
        """Every column becomes its ``rows`` followed by as many free slots as it had."""
        for name in ("status", "start", "creator", "topic"):
            column = getattr(self, name)
            setattr(self, name, np.concatenate([column[rows], np.zeros_like(column)]))

    def candidates(self, now_ms: int, horizon_ms: int) -> np.ndarray:
        """Per slot: is it a candidate at ``now_ms`` (the rule of ``Catalog.candidates``)."""
        n = self.size
        status, start = self.status[:n], self.start[:n]
        return (status == _LIVE) | ((status == _SCHEDULED) & (start >= now_ms - LATE_START_MS)
                                    & (start <= now_ms + horizon_ms))


class Catalog:
    def __init__(self) -> None:
        self.shows: dict[str, ShowEntry] = {}
        self.columns = CatalogColumns()
        self.newest_ts = 0
        # Bumped by every change; a cached CandidateSet of another version is rebuilt.
        self.version = 0
        self._cached: CandidateSet | None = None

    def apply(self, event: dict) -> ShowEntry | None:
        """Apply a show event; return the entry as it now is (None if the event was stale)."""
        sid, ts, kind = event["show_id"], int(event["ts"]), event["event_type"]
        self.version += 1
        self.newest_ts = max(self.newest_ts, ts)
        entry = self.shows.get(sid)
        if entry is None:
            entry = ShowEntry(sid, event.get("creator_id", ""), event.get("topic") or "",
                              "scheduled", 0, -1)
            self.shows[sid] = entry
        entry.creator_id = event.get("creator_id") or entry.creator_id
        entry.topic = event.get("topic") or entry.topic
        if event.get("scheduled_start"):
            entry.scheduled_start = int(event["scheduled_start"])
        if kind != "updated" and ts >= entry.status_ts:
            # Status moves by event time; an older event never undoes a newer one.
            entry.status, entry.status_ts = kind, ts
        self.columns.set(entry)
        return entry

    def put(self, entry: ShowEntry) -> None:
        self.version += 1
        self.shows[entry.show_id] = entry
        self.columns.set(entry)

    def forget_ended(self) -> list[str]:
        """Drop shows ended more than ``FORGET_ENDED_MS`` before the newest event, and the
        stale ones (``FORGET_STALE_MS``); return their ids."""
        ended, stale = self.newest_ts - FORGET_ENDED_MS, self.newest_ts - FORGET_STALE_MS
        gone = [s for s, e in self.shows.items()
                if (e.status == "ended" and e.status_ts < ended)
                or (e.status == "scheduled" and max(e.scheduled_start, e.status_ts) < stale)
                or (e.status == "live" and e.status_ts < stale)]
        for s in gone:
            del self.shows[s]
        self.columns.remove(gone)
        self.version += bool(gone)
        return gone

    def candidates(self, now_ms: int, horizon_ms: int = HORIZON_MS) -> list[ShowEntry]:
        """Live shows, and scheduled ones starting in [now - LATE_START_MS, now + horizon]."""
        out = []
        for e in self.shows.values():
            if e.status == "live" or (
                    e.status == "scheduled"
                    and now_ms - LATE_START_MS <= e.scheduled_start <= now_ms + horizon_ms):
                out.append(e)
        return out

    def candidate_set(self, now_ms: int, horizon_ms: int = HORIZON_MS) -> CandidateSet:
        """``candidates`` with their columns, cached: consecutive requests share the catalog,
        and walking a thousand shows per request was a tenth of the ranking's time. The set
        is reused for any request time at which no scheduled show enters or leaves it."""
        cached = self._cached
        if cached is not None and cached.valid(self.version, now_ms, horizon_ms):
            return cached
        entries = tuple(self.candidates(now_ms, horizon_ms))
        valid_from, valid_until = -(2 ** 62), 2 ** 62
        for e in self.shows.values():
            if e.status != "scheduled":
                continue
            # A scheduled show is a candidate for now in [start - horizon, start + late].
            for flip in (e.scheduled_start - horizon_ms, e.scheduled_start + LATE_START_MS + 1):
                if flip <= now_ms:
                    valid_from = max(valid_from, flip)
                else:
                    valid_until = min(valid_until, flip)
        self._cached = CandidateSet.of(entries, valid_from, valid_until, self.version,
                                       horizon_ms)
        return self._cached
