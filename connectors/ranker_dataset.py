"""Training rows for the show ranker, point-in-time correct.

Each impression of day ``D`` at time ``t`` is joined with

* the **batch features as of D** (events dated before D): read from the offline store when
  ``build_batch_features`` has a complete run for D, otherwise computed here with the same
  definitions (``models.features.batch``) and stored there for next time;
* the **streaming features of its show as they were at t**: the show's events before ``t``
  replayed through ``models.features.entities.ShowState``, the state machine ``compute_features``
  runs, so training sees exactly what serving reads from Redis at that moment (never today's
  Redis);
* whether the user declared the show's topic (the users snapshot).

Outcomes from the impression log (``models.ranking.training.OUTCOMES``: likes, follows,
notifications, listens, minutes in the session and attributed later), its position and the
logging policy's propensity (off-policy evaluation); ``label`` is ``engaged`` (a like, a
follow, notifications on or 5+ minutes listened), kept for diagnostics.
"""

from __future__ import annotations

import time
from datetime import date, timedelta

import numpy as np
import pandas as pd

from connectors.batch_store import (
    mark_offline_complete,
    offline_root,
    read_offline,
    write_offline_shard,
)
from connectors.lake_compaction import declared_topics, read_partition, transformed_partitions
from models.features.batch import (
    BEHAVIOR_COLUMNS,
    ENTITY_GROUPS,
    IMPRESSION_COLUMNS,
    TABLE_KEYS,
    finalize,
    merge_all,
    partials,
)
from models.features.entities import ShowState
from models.ranking.scoring import FEATURE_ORDER, assemble, pit_columns
from models.ranking.training import OUTCOMES

ROW_KEYS = ["impression_id", "request_id", "user_id", "show_id", "creator_id", "topic", "ts",
            "position", "day", "label", *OUTCOMES, "propensity"]


def batch_features_as_of(lake: str, as_of: date, lookback: int) -> dict[str, pd.DataFrame]:
    root = offline_root(lake)
    day = as_of.isoformat()
    try:
        return {t: read_offline(root, t, day) for t in TABLE_KEYS}
    except FileNotFoundError:
        pass
    behavior, shown = [], []
    for back in range(1, lookback + 1):
        dt = (as_of - timedelta(days=back)).isoformat()
        b = read_partition(lake, "behavior_events", dt, BEHAVIOR_COLUMNS)
        if b is not None:
            behavior.append(b.to_pandas().assign(days_ago=back))
        i = read_partition(lake, "impressions", dt, IMPRESSION_COLUMNS)
        if i is not None:
            shown.append(i.to_pandas())
    if behavior:
        groups = partials(pd.concat(behavior, ignore_index=True),
                          pd.concat(shown, ignore_index=True) if shown else None, lookback)
    else:
        groups = {}
    tables: dict[str, pd.DataFrame] = {}
    for entity, names in ENTITY_GROUPS.items():
        present = {g: [groups[g]] for g in names if g in groups and len(groups[g])}
        # Follow state is optional (few users follow anyone); the sums are what a table needs.
        if present and all(g in present for g in names if not g.endswith("_follow")):
            tables.update(finalize(entity, merge_all(present)))
    run_id = f"{as_of:%Y%m%d}-train-{int(time.time())}"
    for table, frame in tables.items():
        write_offline_shard(root, table, frame, day, run_id, 0)
    mark_offline_complete(root, day, run_id, {"written_by": "train_ranker",
                                              "rows": {t: len(f) for t, f in tables.items()}})
    return {t: read_offline(root, t, day) for t in TABLE_KEYS}


def _events_for(lake: str, day: date, shows: set[str]) -> list[dict]:
    """Every show event and behaviour event of ``shows`` up to the end of ``day``, in time
    order. How far back is read comes from the data: show events are read back day by day
    until each show's announcement is found (or the lake's first day), and behaviour events
    from the earliest day any of the shows had an event; no horizon is assumed, so a show
    announced a week ahead starts from its announcement as it did in ``compute_features``."""
    known = transformed_partitions(lake, "show_events")
    first = date.fromisoformat(known[0]) if known else day
    unannounced, earliest, frames = set(shows), day, []
    at = day
    while at >= first and unannounced:
        t = read_partition(lake, "show_events", at.isoformat())
        if t is not None:
            df = t.to_pandas()
            df = df[df["show_id"].isin(shows)]
            if len(df):
                frames.append(df)
                earliest = at
                unannounced -= set(df.loc[df["event_type"] == "scheduled", "show_id"])
        at -= timedelta(days=1)
    at = earliest
    while at <= day:
        t = read_partition(lake, "behavior_events", at.isoformat())
        if t is not None:
            df = t.to_pandas()
            frames.append(df[df["show_id"].isin(shows)])
        at += timedelta(days=1)
    if not frames:
        return []
    events = pd.concat(frames, ignore_index=True).sort_values(["ts", "event_id"], kind="stable")
    events = events.drop(columns=[c for c in ("props", "title") if c in events])
    return [{k: v for k, v in e.items() if v is not None and v == v}
            for e in events.to_dict("records")]


def pit_show_features(events: list[dict], queries: pd.DataFrame) -> pd.DataFrame:
    """For each (show_id, ts) query, the show's streaming features from its events strictly
    before ts (``SHOW_NUMERIC`` names, plus ``is_live``), in the queries' order."""
    order = np.argsort(queries["ts"].to_numpy(), kind="stable")
    q_show = queries["show_id"].to_numpy()[order]
    q_ts = queries["ts"].to_numpy()[order]
    states: dict[str, ShowState] = {}
    names = ("like_count", "listen_count", "unique_listeners", "notify_count",
             "scheduled_start")
    out = np.zeros((len(order), len(names) + 1), dtype=np.float64)
    e = 0
    for j in range(len(order)):
        while e < len(events) and events[e]["ts"] < q_ts[j]:
            ev = events[e]
            states.setdefault(ev["show_id"], ShowState()).apply(ev)
            e += 1
        st = states.get(q_show[j])
        if st is not None:
            f = st.features()
            out[j, :len(names)] = [f[n] for n in names]
            out[j, -1] = f["status"] == "live"
    frame = pd.DataFrame(out, columns=[*names, "is_live"])
    result = pd.DataFrame(index=range(len(order)), columns=frame.columns, dtype=np.float64)
    result.iloc[order] = frame.to_numpy()
    return result


def day_rows(lake: str, day: date, lookback: int) -> pd.DataFrame:
    """Training rows of one day's impressions: ``ROW_KEYS`` then ``FEATURE_ORDER`` columns."""
    imp = read_partition(lake, "impressions", day.isoformat())
    if imp is None:
        return pd.DataFrame(columns=[*ROW_KEYS, *FEATURE_ORDER])
    imp = imp.to_pandas()
    batch = batch_features_as_of(lake, day, lookback)
    pit = pit_show_features(_events_for(lake, day, set(imp["show_id"])), imp[["show_id", "ts"]])
    cols = pit_columns({k: pit[k].to_numpy() for k in pit.columns}, imp["ts"].to_numpy())

    def join(table: str, on: list[str], left: list[str] | None = None) -> pd.DataFrame:
        right = batch[table].drop(columns=["as_of", "run_id"])
        keys = imp[left or on].set_axis(on, axis=1)
        return keys.merge(right, on=on, how="left").fillna(0.0)

    for table, on, left in (("show", ["show_id"], None), ("creator", ["creator_id"], None),
                            ("user_topic", ["user_id", "topic"], None),
                            ("user_creator", ["user_id", "creator_id"], None),
                            ("user", ["user_id"], None)):
        joined = join(table, on, left)
        for name in joined.columns.difference(on):
            cols[name] = joined[name].to_numpy()
    declared = declared_topics(lake, day)
    cols["declared_topic"] = np.array([t in declared.get(u, ()) for u, t in
                                       zip(imp["user_id"], imp["topic"], strict=True)])
    x = assemble(cols, len(imp))
    rows = imp[["impression_id", "request_id", "user_id", "show_id", "creator_id", "topic",
                "ts", "position"]].assign(day=day.isoformat(),
                                          label=imp["engaged"].astype(np.int8))
    for name in OUTCOMES:
        # logs from before these columns existed: what they can say (a 5-minute listen)
        known = imp[name] if name in imp else pd.Series(np.nan, index=imp.index)
        fallback = imp["listened_5m"] if name == "listened" else 0
        rows[name] = known.fillna(fallback).astype(np.float32)
    rows["propensity"] = (imp["propensity"] if "propensity" in imp
                          else pd.Series(np.nan, index=imp.index)).astype(np.float64)
    return pd.concat([rows.reset_index(drop=True),
                      pd.DataFrame(x, columns=list(FEATURE_ORDER))], axis=1)
