"""Day-by-day history of a simulated world: behaviour events, show events and impressions as
DataFrames in the lake's raw-row shape (columns of ``core.topics`` schemas, nested values
as JSON text). Deterministic: day ``d`` draws from its own generator seeded by (seed, d), and the
only state carried between days is who follows whom.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.topics import BEHAVIOR_EVENT, IMPRESSION, SHOW_EVENT
from onair.sim.world import (
    DAILY_RHYTHM,
    DAY_MS,
    FIVE_MINUTES_MS,
    HOUR_MS,
    MINUTE_MS,
    TOPICS,
    WEEKLY_RHYTHM,
    Population,
    Shows,
    WorldConfig,
    creator_id,
    draw_population,
    draw_shows,
    engagement_logit,
    follow_probability,
    like_probability,
    listen_mean_ms,
    show_id,
    sigmoid,
    user_id,
)

BUCKET_MS = 10 * MINUTE_MS  # openings in one bucket see the same candidate shows
MAX_SHOW_MS = 120 * MINUTE_MS
DUPLICATE_RATE = 0.002  # at-least-once producers: a few events reach the lake twice


@dataclass
class DayHistory:
    behavior: pd.DataFrame
    shows: pd.DataFrame
    impressions: pd.DataFrame


@dataclass
class World:
    cfg: WorldConfig
    pop: Population
    shows: Shows
    follows: set[int] = field(default_factory=set)  # user * n_creators + creator

    @classmethod
    def create(cls, cfg: WorldConfig) -> World:
        pop = draw_population(cfg)
        return cls(cfg, pop, draw_shows(cfg, pop))

    def history(self):
        """Yield (day index, DayHistory) for every simulated day, in order."""
        for day in range(self.cfg.days):
            yield day, self.day(day)

    def day(self, day: int) -> DayHistory:
        rng = np.random.default_rng([self.cfg.seed, 2, day])
        imp = self._feeds(day, rng)
        behavior = self._engage(day, imp, rng)
        return DayHistory(behavior=behavior, shows=self._show_events(day, rng),
                          impressions=_impressions_frame(day, imp))

    # ------------------------------------------------------------------ show lifecycle
    def _show_events(self, day: int, rng: np.random.Generator) -> pd.DataFrame:
        s = self.shows
        day_start = self.cfg.t0_ms + day * DAY_MS
        idx = np.flatnonzero((s.start_ms >= day_start) & (s.start_ms < day_start + DAY_MS))
        updated = idx[rng.random(len(idx)) < 0.1]
        update_ts = s.announced_ms[updated] + (
            (s.start_ms[updated] - s.announced_ms[updated]) * rng.random(len(updated))
        ).astype(np.int64)
        kinds = [("scheduled", idx, s.announced_ms[idx]),
                 ("updated", updated, update_ts),
                 ("live", idx, s.start_ms[idx] + rng.integers(0, 90_000, size=len(idx))),
                 ("ended", idx, s.end_ms[idx])]
        frames = []
        for kind, which, ts in kinds:
            topic = np.asarray(TOPICS)[s.topic[which]]
            cid = creator_id(s.creator[which])
            frames.append(pd.DataFrame({
                "event_type": kind, "ts": ts, "show_id": show_id(which), "creator_id": cid,
                "topic": topic,
                "title": pd.Series(np.char.add(np.char.add(topic, " with "), cid)),
                "scheduled_start": pd.array(np.where(kind == "scheduled", s.start_ms[which], 0),
                                            dtype="Int64"),
                "props": np.where(s.promoted[which], '{"promo":true}', '{"promo":false}'),
            }))
        df = pd.concat(frames, ignore_index=True).sort_values(["ts", "show_id"], kind="stable")
        df.loc[df["event_type"] != "scheduled", "scheduled_start"] = pd.NA
        df.insert(0, "event_id", [f"se{day}-{i}" for i in range(len(df))])
        return df[list(SHOW_EVENT.field_names())].reset_index(drop=True)

    # ------------------------------------------------------------------ feeds
    def _feeds(self, day: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Who opened the app when, and which shows each opening showed."""
        cfg, pop, s = self.cfg, self.pop, self.shows
        day_start = cfg.t0_ms + day * DAY_MS
        weekday = (cfg.start.weekday() + day) % 7
        n_open = rng.poisson(cfg.openings_per_user_day * pop.user_activity * WEEKLY_RHYTHM[weekday])
        users = np.repeat(np.arange(cfg.users), n_open)
        ts = (day_start + rng.choice(24, size=len(users), p=DAILY_RHYTHM) * HOUR_MS
              + rng.integers(0, HOUR_MS, size=len(users)))
        order = np.argsort(ts, kind="stable")
        users, ts = users[order], ts[order]
        request = np.arange(len(users))
        out: dict[str, list[np.ndarray]] = {k: [] for k in ("request", "user", "show", "pos",
                                                             "ts", "propensity")}
        bucket = (ts - day_start) // BUCKET_MS
        bounds = np.searchsorted(bucket, np.arange(DAY_MS // BUCKET_MS + 1))
        for b in range(DAY_MS // BUCKET_MS):
            lo, hi = bounds[b], bounds[b + 1]
            if lo == hi:
                continue
            t = day_start + b * BUCKET_MS
            first = np.searchsorted(s.start_ms, t - MAX_SHOW_MS)
            last = np.searchsorted(s.start_ms, t + cfg.lookahead_ms, side="right")
            cand = first + np.flatnonzero(s.end_ms[first:last] > t)
            if len(cand) == 0:
                continue
            k_max = min(cfg.feed_size, len(cand))
            keys = np.log(s.exposure[cand]) + rng.gumbel(size=(hi - lo, len(cand)))
            chosen = cand[np.argsort(-keys, axis=1)[:, :k_max]]
            # A feed of k shows is the first k of the draw: still k drawn without replacement.
            k_min = min(cfg.feed_min, k_max)
            sizes = (np.full(hi - lo, k_max) if k_min >= k_max
                     else rng.integers(k_min, k_max + 1, size=hi - lo))
            for k in np.unique(sizes):
                rows = np.flatnonzero(sizes == k)
                shown, propensity = _logged_order(chosen[rows, :k], s.exposure[chosen[rows, :k]],
                                                  cfg.explore, rng)
                at = lo + rows
                out["request"].append(np.repeat(request[at], k))
                out["user"].append(np.repeat(users[at], k))
                out["ts"].append(np.repeat(ts[at], k))
                out["show"].append(shown.ravel())
                out["pos"].append(np.tile(np.arange(k), len(rows)))
                out["propensity"].append(propensity.ravel())
        if not out["show"]:
            return {k: np.zeros(0, dtype=np.int64) for k in out}
        feeds = {k: np.concatenate(v) for k, v in out.items()}
        order = np.lexsort((feeds["pos"], feeds["request"]))  # feed sizes grouped them
        return {k: v[order] for k, v in feeds.items()}

    # ------------------------------------------------------------------ engagement
    def _engage(self, day: int, imp: dict[str, np.ndarray],
                rng: np.random.Generator) -> pd.DataFrame:
        pop, s, n = self.pop, self.shows, len(imp["show"])
        u, sh, ts = imp["user"], imp["show"], imp["ts"]
        topic, creator = s.topic[sh], s.creator[sh]
        taste = pop.user_taste[u, topic]
        fav = pop.favourite_mask(u, creator)
        z = engagement_logit(taste, fav, pop.creator_popularity[creator],
                             pop.user_declared[u, topic], s.promoted[sh], imp["pos"],
                             self.cfg.loyalty)
        wants = rng.random(n) < sigmoid(z)
        live = s.start_ms[sh] <= ts
        listen = wants & live
        browse = ~wants & live & (rng.random(n) < 0.05)  # a short taste, not engagement
        start = ts + rng.integers(2_000, 30_000, size=n)
        duration = np.where(browse, rng.integers(10_000, 90_000, size=n),
                            rng.exponential(listen_mean_ms(taste, fav))).astype(np.int64)
        duration = np.maximum(1_000, np.minimum(duration, s.end_ms[sh] - start))
        heard = listen | browse
        liked = listen & (rng.random(n) < like_probability(taste))
        follow_try = listen & (rng.random(n) < follow_probability(taste, fav))
        notified = wants & ~live
        unfollow_try = heard & (taste < 0.03) & (rng.random(n) < 0.3)
        followed, unfollowed = self._update_follows(u, creator, ts, follow_try, unfollow_try)
        later = self._later_listens(imp, notified, followed, rng)
        imp["liked"], imp["followed"], imp["notified"] = liked, followed, notified
        imp["listened_5m"] = listen & (duration >= FIVE_MINUTES_MS)
        imp["listened"] = heard
        imp["listen_minutes"] = np.where(heard, duration / MINUTE_MS, 0.0)
        imp["attributed_minutes"] = imp["listen_minutes"] + later["minutes_by_impression"]
        imp["status"] = np.where(live, "live", "upcoming")
        imp["creator"], imp["topic"] = creator, topic

        def at(mask, when, kind, extra=None):
            idx = np.flatnonzero(mask)
            d = {"event_type": kind, "ts": when[idx], "user": u[idx], "show": sh[idx],
                 "duration_ms": np.full(len(idx), -1) if extra is None else extra[idx]}
            return pd.DataFrame(d)

        within = (rng.random(n) * duration).astype(np.int64)
        stopped = heard & (rng.random(n) >= 0.02)
        frames = [
            at(heard, start, "listen_start"),
            at(stopped, start + duration, "listen_stop", duration),
            at(liked, start + within, "like"),
            at(liked & (rng.random(n) < 0.05), start + duration + MINUTE_MS, "unlike"),
            at(notified, ts + rng.integers(1_000, 20_000, size=n), "notify_on"),
            at(notified & (rng.random(n) < 0.1), ts + HOUR_MS // 2, "notify_off"),
            at(followed, start + within + 1, "follow"),
            at(unfollowed, start + duration + 2, "unfollow"),
        ]
        frames += later["frames"]
        ev = pd.concat(frames, ignore_index=True)
        ev = ev.sort_values(["ts", "user", "event_type"], kind="stable").reset_index(drop=True)
        shows_of = ev["show"].to_numpy()
        follow_kind = ev["event_type"].isin(["follow", "unfollow"]).to_numpy()
        out = pd.DataFrame({
            "event_id": [f"be{day}-{i}" for i in range(len(ev))],
            "event_type": ev["event_type"],
            "ts": ev["ts"].astype(np.int64),
            "user_id": user_id(ev["user"].to_numpy()),
            "show_id": pd.Series(show_id(shows_of)).where(~follow_kind, None),
            "creator_id": creator_id(s.creator[shows_of]),
            "topic": pd.Series(np.asarray(TOPICS)[s.topic[shows_of]]).where(~follow_kind, None),
            "duration_ms": pd.array(ev["duration_ms"], dtype="Int64"),
            "props": None,
        })
        out.loc[out["event_type"] != "listen_stop", "duration_ms"] = pd.NA
        dupes = out[rng.random(len(out)) < DUPLICATE_RATE]
        out = pd.concat([out, dupes], ignore_index=True)
        return out[list(BEHAVIOR_EVENT.field_names())]

    def _later_listens(self, imp: dict[str, np.ndarray], notified: np.ndarray,
                       followed: np.ndarray, rng: np.random.Generator) -> dict:
        """Listening that an impression brings later: a notification, when its show starts
        (``notify_listen``); a follow, at the creator's next show within a week
        (``follow_listen``). Returns the listen events and each impression's minutes."""
        cfg, pop, s = self.cfg, self.pop, self.shows
        n = len(imp["show"])
        target = np.full(n, -1)
        notify = notified & (rng.random(n) < cfg.notify_listen)
        target[notify] = imp["show"][notify]
        for i in np.flatnonzero(followed & (rng.random(n) < cfg.follow_listen)):
            target[i] = s.next_of_creator(int(s.creator[imp["show"][i]]), int(imp["ts"][i]))
        idx = np.flatnonzero(target >= 0)
        shows, users = target[idx], imp["user"][idx]
        start = s.start_ms[shows] + rng.integers(0, 10 * MINUTE_MS, size=len(idx))
        taste = pop.user_taste[users, s.topic[shows]]
        duration = rng.exponential(listen_mean_ms(taste, pop.favourite_mask(users, s.creator[
            shows]))).astype(np.int64)
        duration = np.maximum(1_000, np.minimum(duration, s.end_ms[shows] - start))
        minutes = np.zeros(n)
        minutes[idx] = duration / MINUTE_MS
        frames = [pd.DataFrame({"event_type": "listen_start", "ts": start, "user": users,
                                "show": shows, "duration_ms": -1}),
                  pd.DataFrame({"event_type": "listen_stop", "ts": start + duration,
                                "user": users, "show": shows, "duration_ms": duration})]
        return {"frames": frames, "minutes_by_impression": minutes}

    def _update_follows(self, users, creators, ts, follow_try, unfollow_try):
        """Apply follow / unfollow attempts in time order against who already follows whom;
        return which attempts changed something."""
        n_c = len(self.pop.creator_topic)
        followed = np.zeros(len(users), dtype=bool)
        unfollowed = np.zeros(len(users), dtype=bool)
        tried = np.flatnonzero(follow_try | unfollow_try)
        for i in tried[np.argsort(ts[tried], kind="stable")]:
            pair = int(users[i]) * n_c + int(creators[i])
            if follow_try[i] and pair not in self.follows:
                self.follows.add(pair)
                followed[i] = True
            elif unfollow_try[i] and not follow_try[i] and pair in self.follows:
                self.follows.discard(pair)
                unfollowed[i] = True
        return followed, unfollowed


def _logged_order(chosen: np.ndarray, exposure: np.ndarray, explore: float,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The logging policy's order of each feed (a row of ``chosen`` shows): by exposure, most
    first (ties by show index), except a share ``explore`` of feeds shown in a uniformly random
    order. Returns the shown order and each slot's propensity: the probability that the
    policy puts that show in that slot, given the feed's shows (exact, so an off-policy
    estimate can divide by it)."""
    m, k = chosen.shape
    by_exposure = np.lexsort((chosen, -exposure), axis=1)
    ranked = np.take_along_axis(chosen, by_exposure, axis=1)
    explored = rng.random(m) < explore
    perm = np.argsort(rng.random((m, k)), axis=1)
    rank_in_slot = np.where(explored[:, None], perm, np.arange(k))
    shown = np.take_along_axis(ranked, rank_in_slot, axis=1)
    propensity = explore / k + (1 - explore) * (rank_in_slot == np.arange(k))
    return shown, propensity


def _impressions_frame(day: int, imp: dict[str, np.ndarray]) -> pd.DataFrame:
    engaged = imp["liked"] | imp["followed"] | imp["notified"] | imp["listened_5m"]
    df = pd.DataFrame({
        "impression_id": [f"im{day}-{i}" for i in range(len(imp["show"]))],
        "request_id": np.char.add(f"rq{day}-", imp["request"].astype(str)),
        "ts": imp["ts"].astype(np.int64) + imp["pos"],
        "user_id": user_id(imp["user"]),
        "show_id": show_id(imp["show"]),
        "creator_id": creator_id(imp["creator"]),
        "topic": np.asarray(TOPICS)[imp["topic"]],
        "position": imp["pos"].astype(np.int64),
        "show_status": imp["status"],
        "liked": imp["liked"], "followed": imp["followed"], "notified": imp["notified"],
        "listened_5m": imp["listened_5m"], "engaged": engaged,
        "listened": imp["listened"],
        "listen_minutes": np.round(imp["listen_minutes"], 3),
        "attributed_minutes": np.round(imp["attributed_minutes"], 3),
        "propensity": imp["propensity"],
    })
    return df[list(IMPRESSION.field_names())]


def write_world(lake_root: str, cfg: WorldConfig, progress=None) -> dict:
    """Simulate ``cfg`` into the lake's raw zone: profiles as a snapshot dated the first day,
    then each day's events and impressions (files tagged by seed and day, so a rerun with the
    same seed rewrites the same files). Returns what was written."""
    from connectors.lake import LAKE_TABLES, write_raw
    from onair.sim.world import creators_table, users_table

    world = World.create(cfg)
    start, seed = cfg.start.isoformat(), f"sim{cfg.seed}"
    write_raw(lake_root, LAKE_TABLES["users"], users_table(world.pop), seed, start)
    write_raw(lake_root, LAKE_TABLES["creators"], creators_table(world.pop), seed, start)
    totals = {"behavior_events": 0, "show_events": 0, "impressions": 0}
    for day, hist in world.history():
        for table, rows in (("behavior_events", hist.behavior), ("show_events", hist.shows),
                            ("impressions", hist.impressions)):
            write_raw(lake_root, LAKE_TABLES[table], rows, f"{seed}-d{day:03d}")
            totals[table] += len(rows)
        if progress:
            progress(day, hist)
    return {"users": cfg.users, "creators": cfg.n_creators, "shows": len(world.shows),
            "days": cfg.days, "start": start, **totals}


def as_messages(rows: pd.DataFrame) -> list[dict]:
    """Raw-zone rows back to Kafka messages: nulls dropped, JSON-text objects parsed."""
    out = []
    for rec in rows.to_dict("records"):
        msg = {k: v for k, v in rec.items() if v is not None and v is not pd.NA
               and not (isinstance(v, float) and np.isnan(v))}
        if isinstance(msg.get("props"), str):
            msg["props"] = json.loads(msg["props"])
        for k, v in msg.items():
            if isinstance(v, np.integer):
                msg[k] = int(v)
        out.append(msg)
    return out
