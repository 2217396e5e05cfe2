"""Entities grouped in buckets: what one keyed Flink call applies at once. Pure logic, no PyFlink.

compute_features keys its state by bucket (a stable hash of the entity key), not by entity:
PyFlink's per-record hand-over to Python is the job's bottleneck (docs/design-notes.md), so the
JVM hands each keyed function a whole batch of one bucket's events in one record, and the
bucket keeps one event-time timer (at its entities' earliest ``next_timer``) instead of one
per entity. ``Bucket`` is that unit: entity states by key, which of them changed since they
were last saved, and the derived creator updates shows emit.

A bucket can keep only some of its entities in memory (``capacity``): users and creators then
live in a least-recently-used cache and are read again through ``load`` (the job's Flink state)
on their next event or timer. Shows stay in memory, with their listeners (each held compact,
as its saved form, until touched): there are few shows, every listener event touches one, and
a show's listener parts are found only by scanning. A creator's parts (its followers) are
read one at a time instead, when an event names one (``EntityState.part_for``).
Every entity's next timer stays in memory (a key and a number), so a bucket's timer knows
what is due without reading the state.
"""

from __future__ import annotations

import heapq
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from models.features.entities import (
    HOUR_MS,
    STATE_TYPES,
    EntityState,
    Eviction,
    freeze,
    from_saved,
    routes,
    thaw,
    to_saved,
)

Routed = tuple[str, dict]   # (entity key "kind:id", event or derived update)
Failure = tuple[str, dict | None, Exception]   # (entity key, event or None, what it raised)
# Between an entity key and the name of one of its parts, in state keys (not in any id).
PART_SEP = "\x1f"
# Starts the state keys that are not entities (no id holds it).
RESERVED = "\x1e"


def bucket_of(key: str, buckets: int) -> int:
    """Stable across processes and restarts (``hash()`` of a str is salted per process):
    an entity must land in the bucket whose state holds it."""
    return zlib.crc32(key.encode()) % buckets


def split_by_bucket(routed: Iterable[Routed], buckets: int, prefix: str
                    ) -> dict[str, list[Routed]]:
    """Routed events grouped by bucket key (``prefix`` + number), arrival order kept."""
    out: dict[str, list[Routed]] = {}
    for key, event in routed:
        out.setdefault(f"{prefix}{bucket_of(key, buckets)}", []).append((key, event))
    return out


def route_event(event: dict) -> tuple[list[Routed], list[Routed]]:
    """The entities an event updates first-hand (``models.features.entities.routes``): (shows and
    users, for the first stage; creators, for the creator stage)."""
    first: list[Routed] = []
    creators: list[Routed] = []
    for kind, eid in routes(event):
        (creators if kind == "creator" else first).append((f"{kind}:{eid}", event))
    return first, creators


def route_derived(updates: Iterable[dict]) -> list[Routed]:
    """A show's derived updates (plays, live changes) to their creators."""
    return [(f"creator:{u['creator_id']}", u) for u in updates]


@dataclass
class Bucket:
    """One bucket's entities. ``changed`` holds the keys applied or advanced since the
    caller last took them (``take_changed``): what to save to state and write to Redis.

    ``capacity`` None keeps every entity in ``entities``; a number keeps shows there and at
    most that many users and creators in ``cache`` (least recently used first out, after
    their changes were taken), loading the others through ``load`` (key -> saved state, or
    None for an entity never saved)."""

    entities: dict[str, EntityState] = field(default_factory=dict)
    changed: set[str] = field(default_factory=set)
    # Each entity's next_timer or eviction time, for the bucket's earliest without scanning
    # every state: the keys are grouped by time (``groups``; entries whose time is no longer
    # the entity's are left in place and skipped) and ``heap`` orders the times, so finding
    # what is due costs what is due, not the bucket's size. Eviction times are rounded up to
    # the hour and users' and creators' windows move by the day or hour, so groups are
    # large: a key costs a list slot where a (time, key) tuple on a heap took ~60 bytes, for
    # every user of the population.
    timers: dict[str, int] = field(default_factory=dict)
    groups: dict[int, list[str]] = field(default_factory=dict)
    heap: list[int] = field(default_factory=list)
    grouped: int = 0   # entries in ``groups``, stale ones included
    # None: entities stay (the reference's way); else they leave by event time.
    eviction: Eviction | None = None
    # Entities evicted since the caller last took them: (entity key, its part names).
    evicted: list[tuple[str, list[str]]] = field(default_factory=list)
    capacity: int | None = None
    load: Callable[[str], tuple | None] | None = None
    # Cached entities are held frozen (their saved form) once saved, thawed when touched.
    cache: OrderedDict[str, EntityState | bytes] = field(default_factory=OrderedDict)
    loads: int = 0   # entities read through ``load`` (cache misses that found one)

    def get(self, key: str) -> EntityState | None:
        """The entity's state, from memory or (a cache miss) from ``load``; None if new."""
        st = self.entities.get(key)
        if st is not None:
            return st
        st = self.cache.get(key)
        if st is not None:
            self.cache.move_to_end(key)
            if isinstance(st, bytes):
                st = self.cache[key] = thaw(st)
            return st
        if self._pinned(key) or self.load is None:
            return None
        saved = self.load(key)
        if saved is None:
            return None
        self.loads += 1
        st = self.cache[key] = from_saved(saved)
        return st

    def in_memory(self) -> Iterable[tuple[str, EntityState]]:
        yield from self.entities.items()
        for key, st in self.cache.items():
            yield key, thaw(st) if isinstance(st, bytes) else st

    def _pinned(self, key: str) -> bool:
        return self.capacity is None or key.startswith("show:")

    def _keep(self, key: str, st: EntityState) -> None:
        (self.entities if self._pinned(key) else self.cache)[key] = st

    def _drop(self, key: str) -> None:
        self.entities.pop(key, None)
        self.cache.pop(key, None)

    def restore(self, saved: Iterable[tuple[str, tuple]]) -> None:
        """Entities from what ``take_changed`` handed out to be saved (in any order). With a
        ``capacity``, users and creators beyond it leave only their timers in memory."""
        parts = []
        for key, value in saved:
            if key.startswith(RESERVED):
                continue
            if PART_SEP in key:
                parts.append((key, value))
                continue
            st = from_saved(value)
            self._note_timer(key, st)
            if self._pinned(key):
                self._keep(key, st)
            elif len(self.cache) < self.capacity:
                self.cache[key] = freeze(value)
        for key, value in parts:
            entity, name = key.split(PART_SEP, 1)
            # Parts of a cached kind (a creator's followers) are read when an event needs
            # them; those of entities kept in memory come back with them.
            if (holder := self.entities.get(entity)) is not None:
                holder.load_part(name, from_saved(value))

    def apply(self, batch: Iterable[Routed], failed: list[Failure] | None = None
              ) -> list[dict]:
        """Apply a batch of (entity key, event); return the derived creator updates.

        ``failed`` given: an event whose apply raises is appended to it with its error and
        the batch goes on (the entity keeps what the event changed before it raised);
        otherwise the error propagates (the reference's way)."""
        derived: list[dict] = []
        for key, event in batch:
            try:
                st = self.get(key)
                if st is None:
                    st = STATE_TYPES[key.split(":", 1)[0]]()
                    self._keep(key, st)
                if (self.load is not None and (part := st.part_for(event)) is not None
                        and not st.holds_part(part)
                        and (saved := self.load(f"{key}{PART_SEP}{part}")) is not None):
                    st.load_part(part, from_saved(saved))
                derived.extend(st.apply(event) or ())
            except Exception as e:
                if failed is None:
                    raise
                failed.append((key, event, e))
                if key not in self.entities and key not in self.cache:
                    continue
            self.changed.add(key)
            self._note_timer(key, st)
        return derived

    def advance(self, watermark: int, failed: list[Failure] | None = None) -> None:
        """Event time reached ``watermark``: advance the entities with a timer due by then.
        ``failed`` given: an entity whose advance raises is appended (with no event) and
        loses its timer, so it cannot fail the same way at every later watermark."""
        for key in self._due(watermark):
            st = self.get(key)
            if st is None:   # its state is gone: nothing left to advance
                self.timers.pop(key, None)
                continue
            try:
                st.advance(watermark)
                gone = self.eviction is not None and (
                    (at := st.evict_at(self.eviction)) is not None and at <= watermark)
            except Exception as e:
                if failed is None:
                    raise
                failed.append((key, None, e))
                self.timers.pop(key, None)
                continue
            if gone:
                self.evicted.append((key, st.part_names()))
                self._drop(key)
                self.timers.pop(key, None)
                self.changed.discard(key)
                continue
            self.changed.add(key)
            self._note_timer(key, st)

    def take_evicted(self) -> list[tuple[str, list[str]]]:
        out, self.evicted = self.evicted, []
        return out

    def next_timer(self) -> int | None:
        heap, groups, timers = self.heap, self.groups, self.timers
        while heap:
            at = heap[0]
            group = groups.get(at)
            if group and timers.get(group[-1]) == at:
                return at
            current = [key for key in group or () if timers.get(key) == at]
            if current:
                self.grouped -= len(group) - len(current)
                groups[at] = current
                return at
            if group is not None:
                self.grouped -= len(groups.pop(at))
            heapq.heappop(heap)
        return None

    def _due(self, watermark: int) -> list[str]:
        """Keys whose timer is at or before ``watermark``, taken off the heap (each once)."""
        heap, groups, timers, due = self.heap, self.groups, self.timers, []
        while heap and heap[0] <= watermark:
            at = heapq.heappop(heap)
            group = groups.pop(at, ())
            self.grouped -= len(group)
            due.extend(key for key in group if timers.get(key) == at)
        return list(dict.fromkeys(due))

    def take_changed(self) -> tuple[list[tuple[str, EntityState]], list[tuple[str, tuple]]]:
        """(changed entities, what to save for them): each entity under its key, and each
        of its changed parts under ``key + PART_SEP + part name``, as ``to_saved`` tuples.
        Then the cache is trimmed to its capacity (what leaves is saved)."""
        changed = [(k, self.entities.get(k) or self.cache[k]) for k in self.changed]
        self.changed = set()
        saves: list[tuple[str, tuple]] = []
        for key, st in changed:
            saved = to_saved(st)
            saves.append((key, saved))
            saves.extend((f"{key}{PART_SEP}{name}", to_saved(part))
                         for name, part in st.take_parts())
            if key in self.cache:
                self.cache[key] = freeze(saved)
        if self.capacity is not None:
            while len(self.cache) > self.capacity:
                self.cache.popitem(last=False)
        return changed, saves

    def _note_timer(self, key: str, st: EntityState) -> None:
        nxt = st.next_timer()
        if self.eviction is not None:
            at = st.evict_at(self.eviction)
            if at is not None:
                at = -(-at // HOUR_MS) * HOUR_MS   # leaving state can wait for the hour
                if nxt is None or at < nxt:
                    nxt = at
        if nxt is None:
            self.timers.pop(key, None)
        elif self.timers.get(key) != nxt:
            group = self.groups.get(nxt)
            if group is None:
                group = self.groups[nxt] = []
                heapq.heappush(self.heap, nxt)
            elif (same := self.timers.get(group[0])) == nxt:
                nxt = same   # one int object per time, not one per key
            group.append(key)
            self.timers[key] = nxt
            self.grouped += 1
            if self.grouped > 2 * len(self.timers) + 1024:
                self._regroup()

    def _regroup(self) -> None:
        """Mostly superseded entries: the groups rebuilt from the truth."""
        self.groups = {}
        for key, at in self.timers.items():
            self.groups.setdefault(at, []).append(key)
        self.heap = list(self.groups)
        heapq.heapify(self.heap)
        self.grouped = len(self.timers)


@dataclass
class PendingWrites:
    """The entities changed since the last Redis write, over all buckets of one worker.

    A Redis round trip measured 5-7 ms of wall time inside the job on this machine (the
    server shares the 2 cores), and one per bucket batch held the show stage busy ~80 % of
    each second on 0.25 of a core. So writes are gathered across batches and buckets and go
    out at most once per ``interval_ms``: an entity changed by many batches in between is
    written once, at its latest state. ``interval_ms`` 0 writes after every call.
    """

    interval_ms: int
    entities: dict[str, EntityState] = field(default_factory=dict)
    # The newest event time of the least recent entity marked by events since the last
    # write: what its reflection time is measured from.
    oldest_event_ts: int | None = None
    last_write_ms: int = 0

    def mark(self, changed: Iterable[tuple[str, EntityState]], *, events: bool) -> None:
        """``changed`` entities are to be written. ``events``: changed by events (counted in
        reflection time), not by event time passing or a restore."""
        for key, st in changed:
            self.entities[key] = st
            if events and (self.oldest_event_ts is None or st.event_ts < self.oldest_event_ts):
                self.oldest_event_ts = st.event_ts

    def due(self, now_ms: int) -> bool:
        """Something to write and the interval since the last write has passed. After a quiet
        spell the first change is due at once: the interval bounds the rate, not the delay."""
        return bool(self.entities) and now_ms - self.last_write_ms >= self.interval_ms

    def take(self, now_ms: int) -> tuple[list[tuple[str, EntityState]], int | None]:
        """(entities to write, the oldest event time marked), and start a new interval."""
        out, oldest = list(self.entities.items()), self.oldest_event_ts
        self.entities, self.oldest_event_ts, self.last_write_ms = {}, None, now_ms
        return out, oldest
