"""The simulated listeners, live: they open the app (``rec-requests``), read the ranking that
comes back (``rec-rankings``) and engage with what it shows them, by the same generative model
as the history (``onair.sim.world``), the ranking's order being the feed's order. What they do goes
to ``behavior-events``, so ``report_ab`` can measure each arm.

The shows on air are those of one simulated moment (``--day`` at ``--hour``), announced to
``show-events`` shifted to now. Time is compressed: a listen's events are sent at once, its
``duration_ms`` says how long it lasted.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

import numpy as np
from kafka import TopicPartition

from connectors.kafka_admin import consumer, partitions_of, producer
from core.settings import KafkaSettings
from onair.sim.world import (
    DAY_MS,
    HOUR_MS,
    TOPICS,
    WorldConfig,
    creator_id,
    engagement_logit,
    follow_probability,
    like_probability,
    listen_mean_ms,
    show_id,
    sigmoid,
)
from onair.sim.world_history import World


@dataclass
class LiveStats:
    requests: int = 0
    rankings: int = 0
    events: int = 0


def on_air(world: World, moment_ms: int) -> np.ndarray:
    s = world.shows
    return np.flatnonzero((s.start_ms - world.cfg.lookahead_ms <= moment_ms)
                          & (s.end_ms > moment_ms))


def announce(world: World, kafka: KafkaSettings, p, moment_ms: int, shift: int) -> list[int]:
    """Send the shows on air at ``moment_ms`` as show events, shifted by ``shift`` ms."""
    s = world.shows
    shows = on_air(world, moment_ms)
    for i in shows:
        sid, cid = str(show_id(i)), str(creator_id(s.creator[i]))
        base = {"show_id": sid, "creator_id": cid, "topic": TOPICS[s.topic[i]],
                "title": f"{TOPICS[s.topic[i]]} with {cid}"}
        events = [base | {"event_id": f"live-sched-{sid}", "event_type": "scheduled",
                          "ts": int(s.announced_ms[i]) + shift,
                          "scheduled_start": int(s.start_ms[i]) + shift}]
        if s.start_ms[i] <= moment_ms:
            events.append(base | {"event_id": f"live-live-{sid}", "event_type": "live",
                                  "ts": int(s.start_ms[i]) + shift})
        for e in events:
            p.send(kafka.topic("show-events"), json.dumps(e).encode(), key=sid.encode())
    p.flush()
    return list(shows)


def world_show_index(world: World, show_id: str) -> int | None:
    """The world's index of show ``s<i>``, or None for an id the world did not make."""
    digits = show_id[1:]
    if show_id[:1] == "s" and digits.isdigit() and int(digits) < len(world.shows.topic):
        return int(digits)
    return None


def engage(world: World, user: int, ranking: dict, rng: np.random.Generator,
           now_ms: int, moment_ms: int) -> list[dict]:
    """The behaviour events of one listener reading one ranking (position = rank)."""
    pop, s = world.pop, world.shows
    out = []
    for pos, item in enumerate(ranking["items"]):
        i = world_show_index(world, item["show_id"])
        if i is None:
            continue  # a show from outside this world (other producers share the topic)
        topic, creator = s.topic[i], s.creator[i]
        taste = pop.user_taste[user, topic]
        fav = pop.favourite_mask(np.array([user]), np.array([creator]))[0]
        z = engagement_logit(taste, fav, pop.creator_popularity[creator],
                             pop.user_declared[user, topic], s.promoted[i], pos,
                             world.cfg.loyalty)
        if rng.random() >= sigmoid(z):
            continue
        base = {"user_id": f"u{user}", "show_id": item["show_id"],
                "creator_id": str(creator_id(creator)), "topic": TOPICS[topic]}
        tag = f"{ranking['request_id']}-{pos}"
        if s.start_ms[i] > moment_ms:
            out.append(base | {"event_id": f"n-{tag}", "event_type": "notify_on",
                               "ts": now_ms + 1})
            if rng.random() < world.cfg.notify_listen:  # it fires when the show starts
                out += _listen(world, user, i, rng, now_ms + 5, f"nl-{tag}")
            continue
        out += _listen(world, user, i, rng, now_ms + 1, f"l-{tag}")
        if rng.random() < like_probability(taste):
            out.append(base | {"event_id": f"lk-{tag}", "event_type": "like", "ts": now_ms + 3})
        if rng.random() < follow_probability(taste, fav):
            follow = {k: v for k, v in base.items() if k not in ("show_id", "topic")}
            out.append(follow | {"event_id": f"f-{tag}", "event_type": "follow",
                                 "ts": now_ms + 4})
            upcoming = world.shows.next_of_creator(int(creator), moment_ms)
            if upcoming >= 0 and rng.random() < world.cfg.follow_listen:
                out += _listen(world, user, upcoming, rng, now_ms + 5, f"fl-{tag}")
    return out


def _listen(world: World, user: int, show: int, rng: np.random.Generator, ts: int,
            tag: str) -> list[dict]:
    """A listen of ``show`` (start and stop, time compressed: ``duration_ms`` says how long)."""
    s, pop = world.shows, world.pop
    taste = pop.user_taste[user, s.topic[show]]
    fav = pop.favourite_mask(np.array([user]), np.array([s.creator[show]]))[0]
    ms = max(1_000, min(int(rng.exponential(listen_mean_ms(taste, fav))),
                        int(s.end_ms[show] - s.start_ms[show])))
    base = {"user_id": f"u{user}", "show_id": str(show_id(show)),
            "creator_id": str(creator_id(s.creator[show])), "topic": TOPICS[s.topic[show]]}
    return [base | {"event_id": f"{tag}-start", "event_type": "listen_start", "ts": ts},
            base | {"event_id": f"{tag}-stop", "event_type": "listen_stop", "ts": ts + 1,
                    "duration_ms": ms}]


def run_live(cfg: WorldConfig, kafka: KafkaSettings, requests: int, rate: float,
             day: int, hour: int, seed: int = 1, timeout_s: float = 60) -> LiveStats:
    world = World.create(cfg)
    moment = cfg.t0_ms + day * DAY_MS + hour * HOUR_MS
    shift = int(time.time() * 1000) - moment
    rng = np.random.default_rng(seed)
    p = producer(kafka, linger_ms=2)
    announce(world, kafka, p, moment, shift)
    time.sleep(3)  # the ranking job's catalog is broadcast: let the shows in first
    out_topic = kafka.topic("rec-rankings")
    c = consumer(kafka, fetch_max_wait_ms=20, isolation_level="read_uncommitted")
    c.assign([TopicPartition(out_topic, i) for i in partitions_of(kafka, out_topic)])
    c.seek_to_end()
    stats = LiveStats()
    sent: dict[str, int] = {}
    lock = threading.Lock()
    done = threading.Event()

    def respond():
        while not done.is_set():
            for records in c.poll(timeout_ms=50).values():
                for r in records:
                    ranking = json.loads(r.value)
                    with lock:
                        user = sent.pop(ranking["request_id"], None)
                    if user is None:
                        continue
                    events = engage(world, user, ranking, rng, int(time.time() * 1000), moment)
                    for e in events:
                        p.send(kafka.topic("behavior-events"), json.dumps(e).encode(),
                               key=e["user_id"].encode())
                    with lock:
                        stats.rankings += 1
                        stats.events += len(events)

    listener = threading.Thread(target=respond, daemon=True)
    listener.start()
    weights = world.pop.user_activity / world.pop.user_activity.sum()
    users = rng.choice(cfg.users, size=requests, p=weights)
    started = time.monotonic()
    for n, user in enumerate(users):
        time.sleep(max(0.0, started + n / rate - time.monotonic()))
        rid = f"live-{seed}-{n}"
        with lock:
            sent[rid] = int(user)
        msg = {"request_id": rid, "user_id": f"u{user}", "ts": int(time.time() * 1000)}
        p.send(kafka.topic("rec-requests"), json.dumps(msg).encode(), key=msg["user_id"].encode())
        stats.requests += 1
    p.flush()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with lock:
            if not sent:
                break
        time.sleep(0.2)
    done.set()
    listener.join(5)
    p.flush()
    p.close()
    c.close()
    return stats
