"""A recorded-style log of behaviour and show events for the feature job's tests and benchmark.

Deterministic by seed. Event time moves forward (small jitter only), shows go scheduled ->
live -> ended, listeners start and stop sessions (some longer than 5 minutes, some left open,
some stops before their start), like/unlike, follow/unfollow, notification opt-ins, and a few
events are sent twice. Every session ends before its show does.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from onair.sim.sample_events import T0_MS, TOPICS_OF_SHOWS

MINUTE = 60_000


def feature_log(n: int, *, seed: int = 3, t0_ms: int = T0_MS, shows: int = 60,
                users: int = 2000, creators: int = 20, ids: str = "") -> list[tuple[str, dict]]:
    """About ``n`` (topic, event) pairs in send order; ``ids`` prefixes every entity id."""
    rng = random.Random(seed)
    out: list[tuple[str, dict]] = []
    counter = iter(range(10**9))

    def eid() -> str:
        return f"f{seed}-{next(counter)}"

    show_info = {}
    for s in range(shows):
        start = t0_ms + rng.randrange(0, 90) * MINUTE
        show_info[f"{ids}s{s}"] = (f"{ids}c{s % creators}", rng.choice(TOPICS_OF_SHOWS), start,
                              start + rng.randrange(60, 150) * MINUTE)
    timeline: list[tuple[int, str, dict]] = []
    for sid, (cid, topic, start, end) in show_info.items():
        base = {"show_id": sid, "creator_id": cid, "topic": topic}
        timeline.append((start - 30 * MINUTE, "show-events",
                         {**base, "event_type": "scheduled", "scheduled_start": start}))
        timeline.append((start, "show-events", {**base, "event_type": "live"}))
        timeline.append((end, "show-events", {**base, "event_type": "ended"}))
    per_show = max(1, (n - len(timeline)) // shows)
    for sid, (cid, topic, start, end) in show_info.items():
        made = 0
        while made < per_show:
            user = f"{ids}u{rng.randrange(users)}"
            t = rng.randrange(start, end - 16 * MINUTE)
            r = rng.random()
            common = {"user_id": user, "show_id": sid, "topic": topic}
            if r < 0.45:  # a session
                length = rng.choice([rng.randrange(1, 4), rng.randrange(5, 15)]) * MINUTE
                timeline.append((t, "behavior-events", {**common, "event_type": "listen_start"}))
                if rng.random() < 0.9:  # some are never stopped: closed by the show's end
                    timeline.append((t + length, "behavior-events",
                                     {**common, "event_type": "listen_stop"}))
                made += 2
            elif r < 0.7:
                timeline.append((t, "behavior-events", {**common, "event_type": "like"}))
                if rng.random() < 0.2:
                    timeline.append((t + MINUTE, "behavior-events",
                                     {**common, "event_type": "unlike"}))
                made += 1
            elif r < 0.85:
                timeline.append((t, "behavior-events", {**common, "event_type":
                                 rng.choice(["notify_on", "notify_on", "notify_off"])}))
                made += 1
            else:
                timeline.append((t, "behavior-events", {
                    "user_id": user, "creator_id": cid,
                    "event_type": rng.choice(["follow", "follow", "follow", "unfollow"])}))
                made += 1
    timeline.sort(key=lambda x: x[0])
    for t, topic, event in timeline:
        # Small disorder: within seconds, far below the job's out-of-orderness bound.
        message = {"event_id": eid(), "ts": t + rng.randrange(-2000, 2000), **event}
        out.append((topic, message))
        if rng.random() < 0.01:  # sent twice
            out.append((topic, dict(message)))
    return out


def end_of_log(log: list[tuple[str, dict]], *, after_ms: int = 24 * 60 * MINUTE
               ) -> Iterator[tuple[str, dict]]:
    """Marker events far after the log, so event time passes every timer of the log."""
    last = max(e["ts"] for _, e in log)
    for i, topic in enumerate(("behavior-events", "show-events")):
        ts = last + after_ms
        if topic == "behavior-events":
            yield topic, {"event_id": f"end-{i}", "event_type": "like", "ts": ts,
                          "user_id": "end-of-log", "show_id": "end-of-log"}
        else:
            yield topic, {"event_id": f"end-{i}", "event_type": "updated", "ts": ts,
                          "show_id": "end-of-log", "creator_id": "end-of-log"}
