"""Deterministic sample events (valid and malformed) for the demo, tests and benchmarks."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

BEHAVIOR_TYPES = ("like", "unlike", "follow", "unfollow", "listen_start", "listen_stop",
                  "notify_on", "notify_off")
SHOW_TYPES = ("scheduled", "live", "ended", "updated")
TOPICS_OF_SHOWS = ("pop_music", "baseball", "politics", "comedy", "tech")
T0_MS = 1_764_000_000_000  # 2025-11-24T16:00:00Z


def behavior_events(n: int, seed: int = 7, t0_ms: int = T0_MS,
                    span_ms: int = 6 * 3_600_000) -> Iterator[dict]:
    rng = random.Random(seed)
    for i in range(n):
        kind = rng.choice(BEHAVIOR_TYPES)
        event = {
            "event_id": f"b-{seed}-{i}",
            "event_type": kind,
            "ts": t0_ms + rng.randrange(span_ms),
            "user_id": f"u{rng.randrange(1000)}",
        }
        if kind in ("follow", "unfollow"):
            event["creator_id"] = f"c{rng.randrange(50)}"
        else:
            event["show_id"] = f"s{rng.randrange(200)}"
            event["topic"] = rng.choice(TOPICS_OF_SHOWS)
        yield event


def show_events(n: int, seed: int = 11, t0_ms: int = T0_MS,
                span_ms: int = 6 * 3_600_000) -> Iterator[dict]:
    rng = random.Random(seed)
    for i in range(n):
        kind = rng.choice(SHOW_TYPES)
        ts = t0_ms + rng.randrange(span_ms)
        event = {
            "event_id": f"s-{seed}-{i}",
            "event_type": kind,
            "ts": ts,
            "show_id": f"s{rng.randrange(200)}",
            "creator_id": f"c{rng.randrange(50)}",
            "topic": rng.choice(TOPICS_OF_SHOWS),
            "title": f"Show {i}",
            "props": {"promo": rng.random() < 0.1},
        }
        if kind == "scheduled":
            event["scheduled_start"] = ts + rng.randrange(1, 48) * 3_600_000
        yield event


def malformed_values(m: int, seed: int = 13) -> Iterator[bytes]:
    """Raw values that every job must reject, cycling through the kinds of mistakes."""
    rng = random.Random(seed)
    good = next(behavior_events(1, seed=seed))
    makers = [
        lambda i: b"{not json " + str(i).encode(),
        lambda i: json.dumps({k: v for k, v in good.items() if k != "user_id"}
                             | {"event_id": f"bad-{i}"}).encode(),
        lambda i: json.dumps(good | {"event_id": f"bad-{i}", "ts": "yesterday"}).encode(),
        lambda i: json.dumps(good | {"event_id": f"bad-{i}", "event_type": "teleport"}).encode(),
        lambda i: json.dumps(good | {"event_id": f"bad-{i}", "pad": "x" * 70_000}).encode(),
        lambda i: b"\xff\xfe" + bytes(rng.randrange(256) for _ in range(20)),
        lambda i: json.dumps([good]).encode(),
        lambda i: json.dumps(good | {"event_id": f"bad-{i}", "ts": 1_700_000_000}).encode(),
    ]
    for i in range(m):
        yield makers[i % len(makers)](i)
