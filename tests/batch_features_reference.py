"""A plain single-process pandas computation of the 21 batch features, written independently
of ``models.features.batch`` (whole window at once, no partials): the integration test's
oracle and the benchmark's baseline."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from connectors.lake import local_path, transformed_path

COLUMNS = ["event_type", "ts", "user_id", "show_id", "creator_id", "topic", "duration_ms"]


def _read(lake: str, table: str, as_of: date, lookback: int, columns: list[str]) -> pd.DataFrame:
    root = local_path(transformed_path(lake, table))
    frames = []
    for back in range(1, lookback + 1):
        day = as_of - timedelta(days=back)
        f = root / f"dt={day.isoformat()}" / "part-0.parquet"
        if f.exists():
            frames.append(pq.read_table(f, columns=columns).to_pandas().assign(days_ago=back))
    if not frames:
        return pd.DataFrame(columns=[*columns, "days_ago"])
    return pd.concat(frames, ignore_index=True)


def _rate(num, den):
    num, den = np.asarray(num, float), np.asarray(den, float)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def reference_features(lake: str, as_of: date, lookback: int = 60) -> dict[str, pd.DataFrame]:
    ev = _read(lake, "behavior_events", as_of, lookback, COLUMNS)
    imp = _read(lake, "impressions", as_of, lookback, ["show_id", "engaged"])
    ev["is_listen"] = (ev["event_type"] == "listen_start").astype(int)
    ev["is_stop"] = (ev["event_type"] == "listen_stop").astype(int)
    ev["heard_ms"] = np.where(ev["is_stop"] == 1, ev["duration_ms"].fillna(0), 0).astype(np.int64)
    ev["net_like"] = (ev["event_type"] == "like").astype(int) - (
        ev["event_type"] == "unlike").astype(int)
    ev["listen_7d"] = ev["is_listen"] * (ev["days_ago"] <= 7)

    topical = ev[ev["show_id"].notna() & ev["topic"].notna()]
    ut = topical.groupby(["user_id", "topic"]).agg(
        listens=("is_listen", "sum"), ms=("heard_ms", "sum"), likes=("net_like", "sum"),
        l7=("listen_7d", "sum")).reset_index()
    ut_total = ut.groupby("user_id")["ms"].transform("sum")
    user_topic = pd.DataFrame({
        "user_id": ut["user_id"], "topic": ut["topic"],
        "ut_listen_share": _rate(ut["ms"], ut_total),
        "ut_like_rate": _rate(ut["likes"].clip(lower=0), ut["listens"]),
        "ut_listens_7d": ut["l7"]})

    with_creator = ev[ev["creator_id"].notna()]
    follows = with_creator[with_creator["event_type"].isin(["follow", "unfollow"])].copy()
    follows["state"] = (follows["event_type"] == "follow").astype(int)
    follows = follows.sort_values(["ts", "state"], kind="stable")
    last_state = follows.groupby(["user_id", "creator_id"])["state"].last()
    uc = with_creator.groupby(["user_id", "creator_id"]).agg(
        listens=("is_listen", "sum"), likes=("net_like", "sum"), ms=("heard_ms", "sum"))
    uc["follows"] = last_state.reindex(uc.index).fillna(0)
    uc = uc.reset_index()
    user_creator = pd.DataFrame({
        "user_id": uc["user_id"], "creator_id": uc["creator_id"], "uc_listens": uc["listens"],
        "uc_likes": uc["likes"].clip(lower=0), "uc_listen_minutes": uc["ms"] / 60_000,
        "uc_follows": uc["follows"]})

    listens = with_creator[with_creator["is_listen"] == 1]
    creator = pd.DataFrame(index=pd.Index(sorted(set(listens["creator_id"])
                                                 | set(last_state.index.get_level_values(1))),
                                          name="creator_id"))
    for w in (7, 30, 60):
        inside = listens[listens["days_ago"] <= min(w, lookback)]
        creator[f"c_plays_{w}d"] = inside.groupby("creator_id").size()
        creator[f"c_unique_listeners_{w}d"] = inside.groupby("creator_id")["user_id"].nunique()
    creator["c_followers"] = last_state.groupby(level="creator_id").sum()
    creator = creator.fillna(0).reset_index()

    on_show = ev[ev["show_id"].notna()]
    s = on_show.groupby("show_id").agg(listens=("is_listen", "sum"), likes=("net_like", "sum"),
                                        ms=("heard_ms", "sum"), stops=("is_stop", "sum"))
    shown = imp.groupby("show_id").agg(n=("engaged", "size"), engaged=("engaged", "sum"))
    s = s.join(shown, how="outer").fillna(0).reset_index()
    show = pd.DataFrame({
        "show_id": s["show_id"], "s_listens": s["listens"],
        "s_like_rate": _rate(s["likes"].clip(lower=0), s["listens"]),
        "s_avg_listen_minutes": _rate(s["ms"] / 60_000, s["stops"]),
        "s_engagement_rate": _rate(s["engaged"], s["n"])})

    u = ev.groupby("user_id").agg(days=("days_ago", "nunique"), l7=("listen_7d", "sum"),
                                  ms=("heard_ms", "sum")).reset_index()
    user = pd.DataFrame({"user_id": u["user_id"], "u_active_days": u["days"],
                         "u_listens_7d": u["l7"], "u_listen_minutes": u["ms"] / 60_000})
    out = {"user_topic": user_topic, "user_creator": user_creator, "user": user,
           "creator": creator, "show": show}
    keys = {"user_topic": ["user_id", "topic"], "user_creator": ["user_id", "creator_id"],
            "user": ["user_id"], "creator": ["creator_id"], "show": ["show_id"]}
    return {t: df.sort_values(keys[t]).reset_index(drop=True).astype(
        {c: float for c in df.columns if c not in keys[t]}) for t, df in out.items()}
