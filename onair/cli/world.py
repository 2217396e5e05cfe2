"""``onair simulate`` (history into the lake's raw zone) and ``onair replay`` (a simulated day
to Kafka as live traffic, at a chosen rate)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date

from onair.cli.common import CliError, iso_date, kafka_settings


def cmd_simulate(args: argparse.Namespace) -> int:
    from onair.sim.world_history import write_world

    if args.users < 10 or args.days < 1:
        raise CliError("--users must be at least 10 and --days at least 1")
    cfg = _world(args)
    started = time.monotonic()

    def progress(day, hist):
        if not args.quiet:
            print(f"day {day + 1}/{cfg.days}: {len(hist.behavior)} behaviour events, "
                  f"{len(hist.impressions)} impressions", file=sys.stderr)

    summary = write_world(args.lake, cfg, progress)
    print(json.dumps(summary | {"seconds": round(time.monotonic() - started, 1),
                                "lake": args.lake}))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """Events of one simulated day, shifted so the day starts now, sent in event-time order."""
    import pandas as pd

    from connectors.kafka_admin import producer
    from connectors.lake import read_raw
    from core.topics import BEHAVIOR_EVENTS, SHOW_EVENTS
    from onair.sim.world_history import as_messages

    day = args.day.isoformat()
    frames = []
    for topic, table in ((BEHAVIOR_EVENTS, "behavior_events"), (SHOW_EVENTS, "show_events")):
        rows = pd.DataFrame([r for r in read_raw(args.lake, table) if r.get("dt") == day])
        if len(rows):
            rows = rows.drop(columns=["dt", "hour"]).assign(_topic=topic.name,
                                                             _key=topic.key_field)
            frames.append(rows)
    if not frames:
        raise CliError(f"no raw events dated {day} under {args.lake}; "
                       "run `onair simulate` first (or pick a --day it covered)")
    events = pd.concat(frames, ignore_index=True).sort_values("ts", kind="stable")
    if args.limit:
        events = events.head(args.limit)
    shift = int(time.time() * 1000) - int(events["ts"].min())
    kafka = kafka_settings()
    p = producer(kafka)
    started = time.monotonic()
    try:
        for i, (topic_name, key_field, rows) in enumerate(_batches(events)):
            for msg in as_messages(rows):
                msg["ts"] += shift
                if msg.get("scheduled_start"):
                    msg["scheduled_start"] += shift
                p.send(kafka.topic(topic_name), json.dumps(msg).encode(),
                       key=str(msg[key_field]).encode())
            # Pace by count: event i is due at i / rate seconds.
            ahead = (i + 1) * len(rows) / args.rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        p.flush()
    finally:
        p.close()
    print(f"replayed {len(events)} events of {day} in {time.monotonic() - started:.1f} s",
          file=sys.stderr)
    return 0


def cmd_simulate_live(args: argparse.Namespace) -> int:
    from onair.sim.world_live import run_live

    cfg = _world(args)
    day = cfg.days - 1 if args.day is None else args.day
    stats = run_live(cfg, kafka_settings(), args.requests, args.rate, day, args.hour)
    print(json.dumps({"requests": stats.requests, "rankings": stats.rankings,
                      "behavior_events": stats.events}))
    if stats.rankings < stats.requests:
        raise CliError(f"only {stats.rankings} of {stats.requests} requests were ranked: is "
                       "rank_shows running (`onair submit rank_shows`)?")
    return 0


# The world's assumptions a user may vary (``WorldConfig`` fields; see onair/sim/world.py).
WORLD_FLAGS = {
    "feed_min": (int, "shortest feed: each opening shows feed-min .. feed-size shows"),
    "feed_size": (int, "longest feed"),
    "declared_agreement": (float, "chance a declared topic is a true favourite topic "
                                  "(how informative declared interests are)"),
    "loyalty": (float, "pull of a favourite creator in the engagement score"),
    "announce_hours": (int, "shows are announced 1 h to this many hours ahead (<= 168)"),
    "lookahead_hours": (float, "upcoming shows this close are in feeds (the live/upcoming "
                               "mix)"),
    "explore": (float, "share of feeds the logging policy shows in random order"),
}


def _add_world_flags(p) -> None:
    from onair.sim.world import WorldConfig

    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--start", type=iso_date, default=date(2026, 9, 1), help="first day (UTC)")
    p.add_argument("--seed", type=int, default=7)
    for name, (kind, text) in WORLD_FLAGS.items():
        default = getattr(WorldConfig, name)
        p.add_argument("--" + name.replace("_", "-"), type=kind, default=default,
                       help=f"{text} ({default})")


def _world(args: argparse.Namespace):
    from onair.sim.world import WorldConfig

    cfg = WorldConfig(users=args.users, days=args.days, start=args.start, seed=args.seed,
                      **{name: getattr(args, name) for name in WORLD_FLAGS})
    if not (1 <= cfg.feed_min <= cfg.feed_size and 1 <= cfg.announce_hours <= 168
            and 0 <= cfg.explore <= 1 and 0 <= cfg.declared_agreement <= 1
            and cfg.lookahead_hours > 0):
        raise CliError("world flags out of range: 1 <= --feed-min <= --feed-size, "
                       "1 <= --announce-hours <= 168, --explore and --declared-agreement in "
                       "[0, 1], --lookahead-hours > 0")
    return cfg


def _batches(events, size: int = 50):
    """Consecutive runs of at most ``size`` events bound for one topic."""
    topic = events["_topic"].to_numpy()
    start = 0
    for end in range(1, len(events) + 1):
        if end == len(events) or topic[end] != topic[start] or end - start == size:
            rows = events.iloc[start:end]
            yield rows["_topic"].iat[0], rows["_key"].iat[0], rows.drop(columns=["_topic",
                                                                                 "_key"])
            start = end


def add_parsers(sub) -> None:
    from core.settings import lake_root

    p = sub.add_parser("simulate", help="write N days of a simulated world into the lake's "
                                        "raw zone (events, impressions, profiles)")
    _add_world_flags(p)
    p.add_argument("--lake", default=lake_root(), help="lake root URI (env ONAIR_LAKE)")
    p.add_argument("--quiet", action="store_true", help="no per-day progress")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("simulate-live", help="simulated listeners against a running "
                                             "rank_shows: requests in, engagement out")
    _add_world_flags(p)  # the world of `simulate`: the same flags
    p.add_argument("--day", type=int, default=None, help="simulated day whose shows are on "
                                                         "air (default: the last)")
    p.add_argument("--hour", type=int, default=20, help="UTC hour of that day (20)")
    p.add_argument("--requests", type=int, default=400)
    p.add_argument("--rate", type=float, default=20.0, help="requests per second")
    p.set_defaults(func=cmd_simulate_live)

    p = sub.add_parser("replay", help="send one simulated day to Kafka as live traffic")
    p.add_argument("--day", type=iso_date, required=True, help="which simulated day (YYYY-MM-DD)")
    p.add_argument("--rate", type=float, default=500.0, help="events per second")
    p.add_argument("--limit", type=int, default=0, help="stop after this many events")
    p.add_argument("--lake", default=lake_root(), help="lake root URI (env ONAIR_LAKE)")
    p.set_defaults(func=cmd_replay)
