"""Point-in-time features of shows, creators and users: pure state machines, no PyFlink.

Each entity has a small state object driven by ``apply(event)`` and ``advance(watermark)``;
``features()`` is what goes to the online store. The same classes run inside the Flink job
(``operators.features``) and in the plain-Python reference the tests compare against.

Semantics, chosen so that the result does not depend on arrival order (a replay after a
restart, or events reordered across partitions, lands on the same values):

- Every event is applied at most once per entity (de-duplicated by ``event_id`` for
  ``DEDUPE_MS`` of event time).
- Likes, notification opt-ins and follows keep the *latest action by event time* per user
  (ties broken by event id): ``like_count`` is the number of users whose latest like/unlike is a
  like, and so on.
- A listening session pairs ``listen_start`` and ``listen_stop`` of one (user, show), in event
  time order whatever the arrival order (a stop that arrives before its start still closes it:
  see ``user_sessions``). A session left open is closed when the show ends (at the end time) or
  after ``MAX_SESSION_MS`` of event time (the inactivity cut-off: the app sends no heartbeats),
  so live counts never drift upward. ``sessions_5min`` counts sessions of 5 minutes or more,
  an open one as soon as the watermark is 5 minutes past its start.
- ``plays_7d`` of a creator counts listen starts on the creator's shows whose event time is in
  the 7 days before the watermark (hourly buckets; older buckets fall out as time passes).
- Late events (behind the watermark) are applied like any other; the Flink job counts them.
  A play older than the 7-day window when it arrives is not counted.
"""

from __future__ import annotations

import bisect
import marshal
from array import array
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Any

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
SESSION_LONG_MS = 5 * MINUTE_MS
MAX_SESSION_MS = 4 * HOUR_MS
PLAYS_WINDOW_MS = 7 * DAY_MS
DEDUPE_MS = DAY_MS


@dataclass(slots=True)
class _Dedupe:
    """Event ids applied in the last ``DEDUPE_MS`` of event time."""

    seen: dict[str, int] = field(default_factory=dict)
    newest: int = 0

    def first_time(self, event_id: str, ts: int) -> bool:
        if event_id in self.seen:
            return False
        self.seen[event_id] = ts
        if ts > self.newest:
            self.newest = ts
            if len(self.seen) > 1024:  # prune rarely: amortised O(1)
                cutoff = ts - DEDUPE_MS
                self.seen = {k: v for k, v in self.seen.items() if v >= cutoff}
        return True


def _later(new: tuple[int, str], old: tuple[int, str] | None) -> bool:
    return old is None or new > old


def _flip(old: tuple[int, str, bool] | None, ts: int, event_id: str, on: bool
          ) -> tuple[tuple[int, str, bool] | None, int]:
    """The latest action by event time (ties by event id): (new latest, change of the count
    of users whose latest action is 'on')."""
    if not _later((ts, event_id), old[:2] if old else None):
        return old, 0
    return (ts, event_id, on), int(on) - int(old[2] if old else False)


@dataclass(slots=True)
class _LatestFlags:
    """Per user: the latest (ts, event_id) and whether the flag is on."""

    latest: dict[str, tuple[int, str, bool]] = field(default_factory=dict)
    on: int = 0

    def set(self, user: str, ts: int, event_id: str, value: bool) -> None:
        self.latest[user], delta = _flip(self.latest.get(user), ts, event_id, value)
        self.on += delta

    def members(self) -> list[str]:
        return sorted(u for u, (_, _, v) in self.latest.items() if v)


@dataclass(frozen=True)
class Eviction:
    """When entities leave state, by event time (flags of compute_features)."""

    idle_ms: int = 30 * DAY_MS      # users and creators with nothing live, this long idle
    # Shows this long after they ended. Days, not the hours a show's events can trail it:
    # an idle source can move the watermark past a backlog still to be read, and an event
    # that arrives after its entity was evicted starts the entity anew.
    ended_ms: int = 7 * DAY_MS


@dataclass(slots=True)
class EntityState:
    """What every entity keeps for the online store: how many events it applied (``seq``,
    the version Redis writes compare) and the newest contributing event time."""

    seq: int = 0
    event_ts: int = 0
    dedupe: _Dedupe = field(default_factory=_Dedupe)

    def next_timer(self) -> int | None:
        """Event time of the next ``advance`` that can change something (None: never)."""
        return None

    def take_parts(self) -> list[tuple[str, Any]]:
        """Parts of the state kept apart from the object's own pickle (saved as separate
        state entries), changed since the last call: none unless a kind has them."""
        return []

    def part_names(self) -> list[str]:
        """Every part's name (what an eviction removes beside the entity)."""
        return []

    def evict_at(self, bounds: Eviction) -> int | None:
        """Event time from which the entity may leave state (None: not while it holds what
        it holds). Only state that says nothing the online store needs is evicted, so an
        entity that comes back starts anew and agrees with a store from which it was
        deleted; what it forgets (de-duplication of events older than the bound, the
        latest action of an unfollow) matters only for events later than the bound."""
        return None

    def load_part(self, name: str, part: Any) -> None:
        raise TypeError(f"{type(self).__name__} has no parts (got {name!r})")

    def part_for(self, event: dict) -> str | None:
        """The part ``event`` applies to when parts are read one by one (kinds whose parts
        are not all in memory); None: none, or all are in memory."""
        return None

    def holds_part(self, name: str) -> bool:
        return True

    def accept(self, event: dict, dedupe: _Dedupe | None = None) -> bool:
        """Count ``event`` in unless ``dedupe`` (default: the entity's own) has seen it."""
        if not (dedupe or self.dedupe).first_time(event["event_id"], event["ts"]):
            return False
        self.seq += 1
        self.event_ts = max(self.event_ts, event["ts"])
        return True


def user_sessions(marks: list[tuple[int, int]], ended_ts: int, watermark: int
                  ) -> tuple[int, int | None]:
    """One listener's sessions on one show from their start/stop marks, in any arrival order.

    ``marks`` are (ts, 1 for start / 0 for stop), sorted. A session opens at a start (a start
    while open continues it) and closes at the next stop, at the show's end, or
    ``MAX_SESSION_MS`` after it opened once event time (``watermark``) gets there; stops with
    no open session are ignored, as are starts at or after the end. Returns (sessions of 5+
    minutes, start of the session still open or None); an open session counts as 5+ minutes
    once the watermark is 5 minutes past its start.
    """
    long_sessions, open_at = 0, None
    for ts, is_start in marks:
        if ended_ts and ts >= ended_ts:
            break
        if is_start and open_at is None:
            open_at = ts
        elif not is_start and open_at is not None:
            long_sessions += ts - open_at >= SESSION_LONG_MS
            open_at = None
    if open_at is not None:
        cut = ended_ts or (open_at + MAX_SESSION_MS if watermark - open_at >= MAX_SESSION_MS
                           else None)
        if cut is not None:
            long_sessions += cut - open_at >= SESSION_LONG_MS
            open_at = None
        else:
            long_sessions += watermark - open_at >= SESSION_LONG_MS
    return long_sessions, open_at


class _SessionQueue:
    """Open sessions that come due ``delay`` after they opened, in order of their start: an
    array of starts and a list of users side by side, about 16 bytes a session where a heap
    of (due, user, start) tuples took about a hundred. Entries of sessions closed or reopened
    since are left in place and skipped (``open_at`` says which are current); starts arrive
    nearly in order, so an insert lands near the end."""

    __slots__ = ("delay", "head", "starts", "users")

    def __init__(self, delay: int) -> None:
        self.delay = delay
        self.starts = array("q")
        self.users: list[str] = []
        self.head = 0          # entries before it were taken

    def push(self, start: int, user: str) -> None:
        i = bisect.bisect_right(self.starts, start, self.head)
        self.starts.insert(i, start)
        self.users.insert(i, user)

    def fill(self, sessions: list[tuple[int, str]]) -> None:
        """Every entry at once, in any order (a rebuild after a restore)."""
        sessions.sort()
        self.starts = array("q", (start for start, _ in sessions))
        self.users = [user for _, user in sessions]
        self.head = 0

    def take_due(self, watermark: int, open_at: dict[str, int], into: set[str]) -> None:
        """Adds to ``into`` the users whose current session is due by ``watermark``."""
        starts, users, head = self.starts, self.users, self.head
        while head < len(users) and starts[head] + self.delay <= watermark:
            if open_at.get(users[head]) == starts[head]:
                into.add(users[head])
            head += 1
        self.head = head
        self._compact()

    def first_due(self, open_at: dict[str, int]) -> int | None:
        starts, users, head = self.starts, self.users, self.head
        while head < len(users) and open_at.get(users[head]) != starts[head]:
            head += 1
        self.head = head
        self._compact()
        return starts[head] + self.delay if head < len(users) else None

    def _compact(self) -> None:
        if self.head > 64 and 2 * self.head > len(self.users):
            del self.starts[:self.head]
            del self.users[:self.head]
            self.head = 0


@dataclass(slots=True)
class Listener:
    """One user's part of a show's state: kept (and saved) apart from the show's core, so a
    show with thousands of listeners saves only the listeners an event touched. A pickled
    ``ShowState`` with 2,000 listeners took ~2 ms: saved ten times a second for each show,
    that alone was more than a core."""

    dedupe: _Dedupe = field(default_factory=_Dedupe)   # this user's events on the show
    like: tuple[int, str, bool] | None = None           # latest (ts, event_id, on)
    notify: tuple[int, str, bool] | None = None
    listened: bool = False
    marks: list[tuple[int, int]] = field(default_factory=list)   # see user_sessions
    sessions: tuple[int, int | None] = (0, None)                  # user_sessions result


@dataclass(slots=True)
class ShowState(EntityState):
    """A show's core (status, counts, open sessions) plus its listeners; ``to_saved`` keeps
    only the core: the listeners are ``parts`` saved on their own (see
    ``models.features.buckets``)."""

    status: str = "unknown"
    status_ts: int = 0
    scheduled_start: int = 0
    ended_ts: int = 0
    creator_id: str = ""
    topic: str = ""
    like_count: int = 0
    notify_count: int = 0
    listen_count: int = 0
    unique_listeners: int = 0
    # Listeners with an open session, when it opened. Not saved: each listener's part holds
    # its own (``sessions``), so a show's core stays small however many are listening.
    open_at: dict[str, int] = field(default_factory=dict)
    # Earliest event time at which an open session passes 5 minutes or times out; kept as
    # sessions open (it may be early once they close: a timer then finds nothing to do).
    next_at: int | None = None
    sessions_5min: int = 0
    live_listeners: int = 0
    watermark: int = 0
    unattributed_plays: list[int] = field(default_factory=list)  # play ts, creator unknown
    # A listener is held frozen (``freeze``) from when it was
    # last saved until an event or timer touches it again: a live show holds its listeners
    # for hours, and as objects they took several times the memory.
    listeners: dict[str, Listener | bytes] = field(default_factory=dict)
    changed: set[str] = field(default_factory=set)   # listeners changed since take_parts
    # Open sessions by when they next change: at 5 minutes (``short``), then at the cut-off
    # (``long``). Not saved: rebuilt from ``open_at``.
    short: _SessionQueue = field(default_factory=lambda: _SessionQueue(SESSION_LONG_MS))
    long: _SessionQueue = field(default_factory=lambda: _SessionQueue(MAX_SESSION_MS))
    queues_built: bool = False

    def take_parts(self) -> list[tuple[str, Listener]]:
        """Listeners changed since the last call, by user id; from now on they are held
        frozen until touched again."""
        out = [(user, self.listener(user)) for user in self.changed]
        for user, lst in out:
            self.listeners[user] = freeze(to_saved(lst))
        self.changed = set()
        return out

    def listener(self, user: str) -> Listener | None:
        """The user's part (thawed, and kept so until it is next saved), or None."""
        lst = self.listeners.get(user)
        if isinstance(lst, bytes):
            lst = self.listeners[user] = thaw(lst)
        return lst

    def load_part(self, user: str, listener: Listener) -> None:
        self.listeners[user] = freeze(to_saved(listener))
        if listener.sessions[1] is not None:
            self.open_at[user] = listener.sessions[1]

    def part_names(self) -> list[str]:
        return list(self.listeners)

    def evict_at(self, bounds: Eviction) -> int | None:
        if self.status == "ended":
            return self.ended_ts + bounds.ended_ms
        if self.open_at or self.status == "live":
            return None
        return max(self.event_ts, self.scheduled_start) + bounds.idle_ms

    def apply(self, event: dict) -> list[dict]:
        """Apply one show-related event; return derived creator updates (plays, live)."""
        user = event.get("user_id")
        # A listener's events are de-duplicated by the listener's part, so that part, not
        # the show's core, grows with them.
        lst = None if user is None else self._listener(user)
        if not self.accept(event, None if lst is None else lst.dedupe):
            return []
        kind, ts, out = event["event_type"], event["ts"], []
        if event.get("creator_id") and not self.creator_id:
            self.creator_id = event["creator_id"]
            out += [_play(self.creator_id, t) for t in self.unattributed_plays]
            self.unattributed_plays = []
            if self.status == "live":
                out.append(_live(self.creator_id, event["show_id"], True, self.status_ts))
        if kind in ("scheduled", "live", "ended", "updated"):
            out += self._show_event(event)
        elif kind in ("like", "unlike"):
            lst.like, delta = _flip(lst.like, ts, event["event_id"], kind == "like")
            self.like_count += delta
        elif kind in ("notify_on", "notify_off"):
            lst.notify, delta = _flip(lst.notify, ts, event["event_id"], kind == "notify_on")
            self.notify_count += delta
        elif kind in ("listen_start", "listen_stop"):
            if kind == "listen_start":
                self.listen_count += 1
                self.unique_listeners += not lst.listened
                lst.listened = True
                if self.creator_id:
                    out.append(_play(self.creator_id, ts))
                else:
                    self.unattributed_plays.append(ts)
            bisect.insort(lst.marks, (ts, int(kind == "listen_start")))
            self._resession(user)
        return out

    def _listener(self, user: str) -> Listener:
        self.changed.add(user)
        lst = self.listener(user)
        if lst is None:
            lst = self.listeners[user] = Listener()
        return lst

    def _show_event(self, event: dict) -> list[dict]:
        self.topic = event.get("topic") or self.topic
        if event.get("scheduled_start"):
            self.scheduled_start = event["scheduled_start"]
        kind, ts = event["event_type"], event["ts"]
        if kind == "updated" or (ts, kind) < (self.status_ts, self.status):
            return []
        was_live = self.status == "live"
        self.status, self.status_ts = kind, ts
        if kind == "ended":
            self.ended_ts = ts
            for user in list(self.listeners):
                lst = self.listeners[user]
                if (lst.marks if isinstance(lst, Listener)
                        else thaw(lst).marks):
                    self._resession(user)
        if self.creator_id and was_live != (kind == "live"):
            return [_live(self.creator_id, event["show_id"], kind == "live", ts)]
        return []

    def _resession(self, user: str) -> None:
        lst = self._listener(user)
        old_long, old_open = lst.sessions
        new_long, new_open = user_sessions(lst.marks, self.ended_ts, self.watermark)
        self.sessions_5min += new_long - old_long
        self.live_listeners += (new_open is not None) - (old_open is not None)
        lst.sessions = (new_long, new_open)
        if new_open is None:
            self.open_at.pop(user, None)
        else:
            self.open_at[user] = new_open
            queue = self._queue(new_open)
            queue.push(new_open, user)
            due = new_open + queue.delay
            self.next_at = due if self.next_at is None else min(self.next_at, due)

    def _queue(self, open_at: int) -> _SessionQueue:
        """Where an open session waits: for its 5 minutes, then for its cut-off."""
        return self.short if self.watermark - open_at < SESSION_LONG_MS else self.long

    def advance(self, watermark: int) -> None:
        """Event time reached ``watermark``: open sessions may pass 5 minutes or time out.
        Only the sessions due by then are re-evaluated (and their listeners saved), found on
        a heap: a live show holds thousands of open sessions, and each time step used to
        touch them all."""
        if watermark <= self.watermark:
            return
        if not self.queues_built:    # new or restored: the queues are not saved
            short: list[tuple[int, str]] = []
            long: list[tuple[int, str]] = []
            for user, start in self.open_at.items():
                (short if self._queue(start) is self.short else long).append((start, user))
            self.short.fill(short)
            self.long.fill(long)
            self.queues_built = True
        due: set[str] = set()
        self.short.take_due(watermark, self.open_at, due)
        self.long.take_due(watermark, self.open_at, due)
        self.watermark = watermark
        for user in due:
            self._resession(user)
        nexts = [t for t in (self.short.first_due(self.open_at),
                             self.long.first_due(self.open_at)) if t is not None]
        self.next_at = min(nexts, default=None)

    def next_timer(self) -> int | None:
        return self.next_at

    def features(self) -> dict[str, Any]:
        return {
            "status": self.status, "scheduled_start": self.scheduled_start,
            "creator_id": self.creator_id, "topic": self.topic,
            "like_count": self.like_count, "listen_count": self.listen_count,
            "live_listeners": self.live_listeners, "sessions_5min": self.sessions_5min,
            "unique_listeners": self.unique_listeners, "notify_count": self.notify_count,
        }


def _play(creator_id: str, ts: int) -> dict:
    return {"kind": "play", "creator_id": creator_id, "ts": ts}


def _live(creator_id: str, show_id: str, live: bool, ts: int) -> dict:
    return {"kind": "live", "creator_id": creator_id, "show_id": show_id, "live": live, "ts": ts}


@dataclass(slots=True)
class Follower:
    """One user's part of a creator's state, as a ``Listener`` is of a show's: their follow
    events applied, and their latest follow or unfollow (ts, event_id, on)."""

    dedupe: _Dedupe = field(default_factory=_Dedupe)
    latest: tuple[int, str, bool] | None = None


@dataclass(slots=True)
class CreatorState(EntityState):
    """A creator's followers are parts (``Follower``), saved apart from its core and read one
    by one: every listen start on the creator's shows changes the creator, and a core holding
    its followers cost a save in proportion to them (a popular creator's, every play). A
    bucket reads a follower's part before the creator applies their follow (``part_for``);
    in memory only the parts read since the last save stay."""

    follower_count: int = 0
    # Followers ever given a part. Parts cannot be listed without scanning the state, so a
    # creator that has any stays (its core, a few hundred bytes) rather than leave them behind.
    follower_parts: int = 0
    followers: dict[str, Follower] = field(default_factory=dict)
    changed: set[str] = field(default_factory=set)       # followers changed since saved
    plays_by_hour: dict[int, int] = field(default_factory=dict)
    live_shows: dict[str, tuple[int, bool]] = field(default_factory=dict)  # show -> (ts, live)
    watermark: int = 0

    def part_for(self, event: dict) -> str | None:
        """The part ``event`` applies to, if any: what the caller reads first."""
        if (event.get("kind") or event["event_type"]) in ("follow", "unfollow"):
            return event["user_id"]
        return None

    def holds_part(self, name: str) -> bool:
        return name in self.followers

    def apply(self, event: dict) -> None:
        """A follow/unfollow event, or a derived update from a show (``kind`` play/live)."""
        kind = event.get("kind") or event["event_type"]
        if kind == "play":
            if event["ts"] >= self.watermark - PLAYS_WINDOW_MS:
                hour = event["ts"] // HOUR_MS
                self.plays_by_hour[hour] = self.plays_by_hour.get(hour, 0) + 1
            self._touch(event["ts"])
        elif kind == "live":
            old = self.live_shows.get(event["show_id"])
            if old is None or event["ts"] >= old[0]:
                self.live_shows[event["show_id"]] = (event["ts"], event["live"])
            self._touch(event["ts"])
        else:
            self._follow(event, kind == "follow")

    def _follow(self, event: dict, on: bool) -> None:
        user = event["user_id"]
        part = self.followers.get(user)
        if part is None:
            part = self.followers[user] = Follower()
            self.follower_parts += 1
        if not self.accept(event, part.dedupe):
            return
        part.latest, delta = _flip(part.latest, event["ts"], event["event_id"], on)
        self.follower_count += delta
        self.changed.add(user)

    def take_parts(self) -> list[tuple[str, Follower]]:
        out = [(user, self.followers[user]) for user in self.changed]
        self.changed = set()
        return out

    def part_names(self) -> list[str]:
        return list(self.followers)

    def load_part(self, name: str, part: Follower) -> None:
        self.followers[name] = part

    def _from_earlier(self) -> None:
        """Restored from a layout that held the followers (``_LatestFlags``) and their follow
        ids (``dedupe``) in the core: each follower becomes a part (saved at the creator's
        next save), with the id of the follow event that set it."""
        flags = self.followers   # the earlier layout set a _LatestFlags here
        self.followers, self.dedupe = {}, _Dedupe()
        for user, latest in flags.latest.items():
            self.followers[user] = Follower(_Dedupe({latest[1]: latest[0]}, latest[0]), latest)
            self.changed.add(user)
        self.follower_count, self.follower_parts = flags.on, len(self.followers)

    def _touch(self, ts: int) -> None:
        # Derived updates are already de-duplicated by the show that made them.
        self.seq += 1
        self.event_ts = max(self.event_ts, ts)

    def advance(self, watermark: int) -> None:
        self.watermark = max(self.watermark, watermark)
        oldest = (self.watermark - PLAYS_WINDOW_MS) // HOUR_MS
        for hour in [h for h in self.plays_by_hour if h < oldest]:
            del self.plays_by_hour[hour]

    def evict_at(self, bounds: Eviction) -> int | None:
        if self.follower_parts or any(live for _, live in self.live_shows.values()):
            return None
        return max(self.event_ts + bounds.idle_ms, self.next_timer() or 0)

    def next_timer(self) -> int | None:
        """When the oldest hour of plays leaves the window."""
        if not self.plays_by_hour:
            return None
        return (min(self.plays_by_hour) + 1) * HOUR_MS + PLAYS_WINDOW_MS

    def features(self) -> dict[str, Any]:
        return {
            "follower_count": self.follower_count,
            "plays_7d": sum(self.plays_by_hour.values()),
            "live_shows": sum(1 for _, live in self.live_shows.values() if live),
        }


@dataclass(slots=True)
class UserState(EntityState):
    """What ranking needs of a listener in real time: the creators they follow now and their
    listen starts by topic over the last 7 days."""

    follows: _LatestFlags = field(default_factory=_LatestFlags)
    listens_by_topic_day: dict[tuple[str, int], int] = field(default_factory=dict)
    watermark: int = 0

    def apply(self, event: dict) -> None:
        if not self.accept(event):
            return
        kind = event["event_type"]
        if kind in ("follow", "unfollow"):
            self.follows.set(event["creator_id"], event["ts"], event["event_id"],
                             kind == "follow")
        elif (kind == "listen_start" and event.get("topic")
              and event["ts"] >= self.watermark - PLAYS_WINDOW_MS):
            key = (event["topic"], event["ts"] // DAY_MS)
            self.listens_by_topic_day[key] = self.listens_by_topic_day.get(key, 0) + 1

    def advance(self, watermark: int) -> None:
        self.watermark = max(self.watermark, watermark)
        oldest = (self.watermark - PLAYS_WINDOW_MS) // DAY_MS
        for key in [k for k in self.listens_by_topic_day if k[1] < oldest]:
            del self.listens_by_topic_day[key]

    def evict_at(self, bounds: Eviction) -> int | None:
        if self.follows.on:
            return None
        return max(self.event_ts + bounds.idle_ms, self.next_timer() or 0)

    def next_timer(self) -> int | None:
        """When the oldest day of listens leaves the window."""
        if not self.listens_by_topic_day:
            return None
        return (min(d for _, d in self.listens_by_topic_day) + 1) * DAY_MS + PLAYS_WINDOW_MS

    def features(self) -> dict[str, Any]:
        by_topic: dict[str, int] = {}
        for (topic, _), n in self.listens_by_topic_day.items():
            by_topic[topic] = by_topic.get(topic, 0) + n
        return {"follow_count": self.follows.on, "follows": ",".join(self.follows.members()),
                "listens_7d_by_topic": dict(sorted(by_topic.items()))}


def routes(event: dict) -> list[tuple[str, str]]:
    """(entity kind, entity id) that an incoming event updates first-hand."""
    kind = event["event_type"]
    if kind in ("follow", "unfollow"):
        return [("creator", event["creator_id"]), ("user", event["user_id"])]
    if "user_id" not in event:  # a show event
        return [("show", event["show_id"])]
    out = [("show", event["show_id"])]
    if kind == "listen_start":
        out.append(("user", event["user_id"]))
    return out


STATE_TYPES = {"show": ShowState, "creator": CreatorState, "user": UserState}

# Saved state: plain tuples (a type code, then the fields in declaration order, nested
# objects as tuples of theirs), not pickled objects. Pickle reduces every dataclass instance
# through Python calls: a 228-byte Listener took 11 us, its tuple 3 us, and a show's saves
# are one listener per event.
_SAVED_TYPES: list[type] = [ShowState, CreatorState, UserState, Listener, Follower]
_NESTED = (_Dedupe, _LatestFlags)
# ShowState's listeners are saved as parts, its open sessions come back with them, its
# queues of due sessions are rebuilt; a creator's followers are parts too.
_TRANSIENT = {"listeners", "changed", "short", "long", "queues_built", "open_at", "followers"}


def _layout(cls: type, transient: set[str], ignored: frozenset[str] = frozenset()) -> list:
    return [("_ignored" if f.name in ignored else f.name,
             next((n for n in _NESTED if n.__name__ in str(f.type)), None))
            for f in fields(cls) if f.name not in transient]


_LAYOUT = {cls: _layout(cls, _TRANSIENT) for cls in _SAVED_TYPES}
_FIELDS = {cls: [f.name for f in fields(cls)] for cls in _NESTED}
# Layouts that checkpoints of earlier versions hold, by length: restored, not lost. A show's
# core held its open sessions until they moved to the listeners' parts (which have them too).
# A creator held its followers (and their follow ids, in its dedupe) in its core.
_EARLIER = {
    (ShowState, len(_LAYOUT[ShowState]) + 1): _layout(
        ShowState, _TRANSIENT - {"open_at"}, frozenset({"open_at"})),
    (CreatorState, len(_LAYOUT[CreatorState]) - 1): [
        ("seq", None), ("event_ts", None), ("dedupe", _Dedupe), ("followers", _LatestFlags),
        ("plays_by_hour", None), ("live_shows", None), ("watermark", None)],
}
# What an earlier layout's object needs beyond its fields to be today's.
_UPGRADES = {CreatorState: CreatorState._from_earlier}


# One C call per object reads its saved fields (``attrgetter`` of several names gives a
# tuple): saves run several times an event, and a field-by-field loop was most of their cost.
# By field, not ``value.__dict__``: reading that builds a dict the object keeps.
_GETTERS = {cls: (code, attrgetter(*(name for name, _ in _LAYOUT[cls])),
                  [(i, attrgetter(*_FIELDS[nested]))
                   for i, (_, nested) in enumerate(_LAYOUT[cls]) if nested])
            for code, cls in enumerate(_SAVED_TYPES)}


def to_saved(obj: Any) -> tuple:
    """``obj`` (an entity state or part) as a tuple of builtins, for Flink state."""
    code, get, nested = _GETTERS[type(obj)]
    values = get(obj)
    if nested:
        values = list(values)
        for i, get_nested in nested:
            values[i] = get_nested(values[i])
    return (code, *values)


def freeze(saved: tuple) -> bytes:
    """A saved state or part held in memory at rest: marshalled builtins take a fraction of
    the live objects' memory and are read back (``thaw``) in microseconds."""
    return marshal.dumps(saved)


def thaw(frozen: bytes) -> Any:
    return from_saved(marshal.loads(frozen))


def from_saved(saved: tuple) -> Any:
    cls = _SAVED_TYPES[saved[0]]
    obj = cls()
    earlier = _EARLIER.get((cls, len(saved) - 1))
    for (name, nested), value in zip(earlier or _LAYOUT[cls], saved[1:], strict=True):
        if name != "_ignored":
            setattr(obj, name, nested(*value) if nested else value)
    if earlier is not None and cls in _UPGRADES:
        _UPGRADES[cls](obj)
    return obj


class FeatureReference:
    """The plain-Python reference: every entity's state from a log of events, in one process.

    ``apply`` routes an event to its entities (and a show's derived updates to its creator);
    ``finish(watermark)`` advances every entity to the final watermark.
    """

    def __init__(self) -> None:
        self.entities: dict[tuple[str, str], EntityState] = {}

    def state(self, kind: str, entity_id: str) -> EntityState:
        key = (kind, entity_id)
        if key not in self.entities:
            self.entities[key] = STATE_TYPES[kind]()
        return self.entities[key]

    def apply(self, event: dict) -> None:
        for kind, entity_id in routes(event):
            derived = self.state(kind, entity_id).apply(event)
            for update in derived or ():
                self.state("creator", update["creator_id"]).apply(update)

    def finish(self, watermark: int, eviction: Eviction | None = None
               ) -> dict[tuple[str, str], EntityState]:
        """Every entity advanced to ``watermark``; with ``eviction``, those the job would
        have evicted by then are left out (``evicted`` names them)."""
        self.evicted: set[tuple[str, str]] = set()
        for key, st in self.entities.items():
            st.advance(watermark)
            at = None if eviction is None else st.evict_at(eviction)
            if at is not None and at <= watermark:
                self.evicted.add(key)
        return {k: st for k, st in self.entities.items() if k not in self.evicted}
