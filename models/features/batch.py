"""The 21 batch features as of a day, computed from one day's events at a time (pure pandas).

Features as of day ``D`` with a lookback of ``L`` days use the events dated ``D-L .. D-1``
(``days_ago`` 1..L) and nothing dated ``D`` or later: point-in-time correct by construction,
since the lake is partitioned by event date. Each day's events become *partial aggregates*
(``day_partials``) that merge associatively (``merge``), so days can be read by different
subtasks in any order; ``finalize`` turns the merged partials of one entity shard into features.

Definitions (docs/features.md lists the same, from ``FEATURES``): counts are over the lookback
window unless the name says a shorter one; a window longer than the lookback is the lookback. A
listen is a ``listen_start``; listening time is the ``duration_ms`` of ``listen_stop`` events;
likes are net (likes minus unlikes, floored at 0 per pair); follow state is the last
follow/unfollow in the window (a follow wins a tie at equal time).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

WINDOWS = (7, 30, 60)
BEHAVIOR_COLUMNS = ["event_type", "ts", "user_id", "show_id", "creator_id", "topic",
                    "duration_ms"]
IMPRESSION_COLUMNS = ["show_id", "engaged"]


@dataclass(frozen=True)
class Feature:
    name: str
    table: str
    definition: str


FEATURES: tuple[Feature, ...] = (
    Feature("ut_listen_share", "user_topic", "share of the user's listening time on the topic"),
    Feature("ut_like_rate", "user_topic", "net likes / listens of the topic's shows (0 if none)"),
    Feature("ut_listens_7d", "user_topic", "listens of the topic's shows in the last 7 days"),
    Feature("uc_listens", "user_creator", "listens of the creator's shows"),
    Feature("uc_likes", "user_creator", "net likes of the creator's shows"),
    Feature("uc_listen_minutes", "user_creator", "minutes listened to the creator's shows"),
    Feature("uc_follows", "user_creator", "1 if the user's last follow/unfollow was a follow"),
    Feature("c_plays_7d", "creator", "listens of the creator's shows, last 7 days"),
    Feature("c_plays_30d", "creator", "listens of the creator's shows, last 30 days"),
    Feature("c_plays_60d", "creator", "listens of the creator's shows, last 60 days"),
    Feature("c_unique_listeners_7d", "creator", "distinct listeners, last 7 days"),
    Feature("c_unique_listeners_30d", "creator", "distinct listeners, last 30 days"),
    Feature("c_unique_listeners_60d", "creator", "distinct listeners, last 60 days"),
    Feature("c_followers", "creator", "users whose last follow/unfollow was a follow"),
    Feature("s_listens", "show", "listens of the show"),
    Feature("s_like_rate", "show", "net likes / listens (0 if no listens)"),
    Feature("s_avg_listen_minutes", "show", "mean minutes per ended listen (0 if none)"),
    Feature("s_engagement_rate", "show", "engaged impressions / impressions (0 if none)"),
    Feature("u_active_days", "user", "days with at least one event"),
    Feature("u_listens_7d", "user", "listens in the last 7 days"),
    Feature("u_listen_minutes", "user", "minutes listened"),
)

# Output tables: key columns and feature columns, in FEATURES order.
TABLE_KEYS = {"user_topic": ("user_id", "topic"), "user_creator": ("user_id", "creator_id"),
              "user": ("user_id",), "creator": ("creator_id",), "show": ("show_id",)}
TABLE_FEATURES = {t: tuple(f.name for f in FEATURES if f.table == t) for t in TABLE_KEYS}


@dataclass(frozen=True)
class Group:
    """A kind of partial aggregate: key columns, how each value column merges, and which
    entity's shard it travels to."""

    keys: tuple[str, ...]
    sums: tuple[str, ...] = ()
    # "last" columns take the value of the row with the largest (follow_ts, follow_state).
    last: tuple[str, ...] = ()
    entity: str = "user"


GROUPS: dict[str, Group] = {
    "user_topic": Group(("user_id", "topic"), sums=("listens", "listen_ms", "likes",
                                                     "listens_7d")),
    "user_creator": Group(("user_id", "creator_id"), sums=("listens", "listen_ms", "likes")),
    # Follow state travels apart from the sums: few pairs have one, and "last" merges cost a sort.
    "user_follow": Group(("user_id", "creator_id"), last=("follow_ts", "follow_state")),
    "user": Group(("user_id",), sums=("active_days", "listens_7d", "listen_ms")),
    "creator_listener": Group(("creator_id", "user_id"),
                              sums=tuple(f"plays_{w}d" for w in WINDOWS), entity="creator"),
    "creator_follow": Group(("creator_id", "user_id"), last=("follow_ts", "follow_state"),
                            entity="creator"),
    "show": Group(("show_id",), sums=("listens", "likes", "listen_ms", "stops", "impressions",
                                      "engaged"), entity="show"),
}
ENTITY_KEY = {"user": "user_id", "creator": "creator_id", "show": "show_id"}
ENTITY_GROUPS = {e: tuple(g for g, spec in GROUPS.items() if spec.entity == e)
                 for e in ENTITY_KEY}


def _sum_by(df: pd.DataFrame, keys: list[str], values: dict[str, pd.Series]) -> pd.DataFrame:
    frame = df[keys].assign(**values)
    return frame.groupby(keys, sort=False, observed=True).sum().reset_index()


def _last_follow(follows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    ordered = follows.sort_values(["ts", "follow_state"], kind="stable")
    last = ordered.groupby(keys, sort=False).tail(1)
    return last[[*keys, "ts", "follow_state"]].rename(columns={"ts": "follow_ts"})


def day_partials(behavior: pd.DataFrame, impressions: pd.DataFrame | None, days_ago: int,
                 lookback_days: int) -> dict[str, pd.DataFrame]:
    """Partial aggregates of one day's events (``days_ago`` = as-of date minus event date)."""
    return partials(behavior.assign(days_ago=days_ago), impressions, lookback_days)


KEY_COLUMNS = ("user_id", "creator_id", "topic", "show_id")


def _encode(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Key columns as integer codes (-1 = missing), factorised once: every group-by below then
    hashes integers, not strings (string factorisation was a third of the time)."""
    uniques = {}
    out = frame.copy(deep=False)
    for col in KEY_COLUMNS:
        codes, uniques[col] = pd.factorize(frame[col])
        out[col] = codes
    return out, {c: np.asarray(u, dtype=object) for c, u in uniques.items()}


def _decode(frame: pd.DataFrame, uniques: dict[str, np.ndarray]) -> pd.DataFrame:
    for col, values in uniques.items():
        if col in frame:
            # Code -1 (missing) picks the None appended last.
            codes = frame[col].to_numpy(dtype=np.int64)
            frame[col] = np.append(values, None)[codes]
    return frame


def _kind(codes: np.ndarray, uniques: np.ndarray, name: str) -> np.ndarray:
    found = np.flatnonzero(uniques == name)
    return (codes == found[0]) if len(found) else np.zeros(len(codes), dtype=bool)


def partials(behavior: pd.DataFrame, impressions: pd.DataFrame | None,
             lookback_days: int) -> dict[str, pd.DataFrame]:
    """Partial aggregates of the events of one or more whole days; ``behavior`` carries each
    row's ``days_ago``. Blocks of days must not overlap (active days add up across blocks)."""
    behavior = behavior.reset_index(drop=True)  # the per-event series below align on it
    days_ago = behavior["days_ago"]
    if len(behavior) and not (days_ago.between(1, lookback_days)).all():
        raise ValueError(f"days_ago {sorted(set(days_ago[~days_ago.between(1, lookback_days)]))}"
                         f" is outside the lookback 1..{lookback_days}")
    kind_codes, kinds = pd.factorize(behavior["event_type"])
    kinds = np.asarray(kinds, dtype=object)

    def is_(name: str) -> pd.Series:
        return pd.Series(_kind(kind_codes, kinds, name).astype(np.int64))

    coded, uniques = _encode(behavior)
    listen, stop = is_("listen_start"), is_("listen_stop")
    listen_ms = behavior["duration_ms"].fillna(0).astype(np.int64) * stop
    likes = is_("like") - is_("unlike")
    listens_7d = listen * (days_ago <= 7)
    show_ev = coded[coded["show_id"] >= 0]
    ix = show_ev.index
    active = coded.groupby("user_id", sort=False)["days_ago"].nunique()
    out = {
        "user_topic": _sum_by(show_ev[show_ev["topic"] >= 0], ["user_id", "topic"], {
            "listens": listen, "listen_ms": listen_ms, "likes": likes,
            "listens_7d": listens_7d}),
        "user": _sum_by(coded, ["user_id"], {
            "listens_7d": listens_7d, "listen_ms": listen_ms}).assign(
                active_days=lambda d: d["user_id"].map(active).to_numpy()),
        "show": _sum_by(show_ev, ["show_id"], {
            "listens": listen[ix], "likes": likes[ix], "listen_ms": listen_ms[ix],
            "stops": stop[ix], "impressions": 0, "engaged": 0}),
    }
    by_creator = coded[coded["creator_id"] >= 0]
    cx = by_creator.index
    # Follow-only pairs get a row too (zero sums): uc_follows needs one.
    out["user_creator"] = _sum_by(by_creator, ["user_id", "creator_id"], {
        "listens": listen[cx], "listen_ms": listen_ms[cx], "likes": likes[cx]})
    follow, unfollow = is_("follow")[cx], is_("unfollow")[cx]
    follows = by_creator[(follow | unfollow).astype(bool).to_numpy()]
    follows = follows.assign(follow_state=follow[follows.index])
    last = _last_follow(follows, ["user_id", "creator_id"])
    out["user_follow"] = last
    out["creator_follow"] = last.copy()
    listened = by_creator[listen[cx].astype(bool).to_numpy()]
    out["creator_listener"] = _sum_by(listened, ["creator_id", "user_id"], {
        f"plays_{w}d": (listened["days_ago"] <= min(w, lookback_days)).astype(np.int64)
        for w in WINDOWS})
    out = {g: _decode(f, uniques) for g, f in out.items()}
    if impressions is not None and len(impressions):
        shown = _sum_by(impressions, ["show_id"], {
            "impressions": pd.Series(1, index=impressions.index),
            "engaged": impressions["engaged"].astype(np.int64)})
        zeros = {c: 0 for c in ("listens", "likes", "listen_ms", "stops")}
        out["show"] = pd.concat([out["show"], shown.assign(**zeros)], ignore_index=True)
    return {g: _with_columns(g, f) for g, f in out.items()}


def _with_columns(group: str, frame: pd.DataFrame) -> pd.DataFrame:
    spec = GROUPS[group]
    return frame[[*spec.keys, *spec.sums, *spec.last]].reset_index(drop=True)


def merge(group: str, frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Partials of one group from any number of days (or earlier merges) as one partial."""
    spec = GROUPS[group]
    keys = list(spec.keys)
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    parts = []
    if spec.sums:
        parts.append(df.groupby(keys, sort=False)[list(spec.sums)].sum())
    if spec.last:
        ordered = df.sort_values(["follow_ts", "follow_state"], kind="stable")
        parts.append(ordered.groupby(keys, sort=False)[list(spec.last)].last())
    merged = parts[0] if len(parts) == 1 else parts[0].join(parts[1])
    return merged.reset_index()[[*keys, *spec.sums, *spec.last]]


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    den = den.astype(float)
    return (num.astype(float) / den.where(den > 0)).fillna(0.0)


def finalize(entity: str, partials: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Merged partials of one entity shard -> output tables (``TABLE_KEYS`` / ``TABLE_FEATURES``
    columns, sorted by key)."""
    if entity == "user":
        out = _finalize_user(partials)
    elif entity == "creator":
        out = _finalize_creator(partials)
    else:
        s = partials["show"]
        likes = s["likes"].clip(lower=0)
        out = {"show": s.assign(s_listens=s["listens"], s_like_rate=_ratio(likes, s["listens"]),
                                s_avg_listen_minutes=_ratio(s["listen_ms"] / 60_000, s["stops"]),
                                s_engagement_rate=_ratio(s["engaged"], s["impressions"]))}
    return {t: _table(t, df) for t, df in out.items()}


def _finalize_user(p: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    ut = p["user_topic"]
    total = ut.groupby("user_id")["listen_ms"].transform("sum")
    uc = p["user_creator"]
    follow = p.get("user_follow")
    state = (follow.set_index(["user_id", "creator_id"])["follow_state"]
             .reindex(pd.MultiIndex.from_frame(uc[["user_id", "creator_id"]])).fillna(0)
             .to_numpy() if follow is not None and len(follow) else 0)
    u = p["user"]
    return {
        "user_topic": ut.assign(ut_listen_share=_ratio(ut["listen_ms"], total),
                                ut_like_rate=_ratio(ut["likes"].clip(lower=0), ut["listens"]),
                                ut_listens_7d=ut["listens_7d"]),
        "user_creator": uc.assign(uc_listens=uc["listens"], uc_likes=uc["likes"].clip(lower=0),
                                  uc_listen_minutes=uc["listen_ms"] / 60_000,
                                  uc_follows=state),
        "user": u.assign(u_active_days=u["active_days"], u_listens_7d=u["listens_7d"],
                         u_listen_minutes=u["listen_ms"] / 60_000),
    }


def _finalize_creator(p: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    cl = p.get("creator_listener")
    cf = p.get("creator_follow")
    per = {}
    if cl is not None and len(cl):
        g = cl.groupby("creator_id")
        for w in WINDOWS:
            per[f"c_plays_{w}d"] = g[f"plays_{w}d"].sum()
            per[f"c_unique_listeners_{w}d"] = (cl[f"plays_{w}d"] > 0).groupby(
                cl["creator_id"]).sum()
    if cf is not None and len(cf):
        per["c_followers"] = cf.groupby("creator_id")["follow_state"].sum()
    frame = pd.DataFrame(per).fillna(0).astype(np.int64).rename_axis("creator_id").reset_index()
    for name in TABLE_FEATURES["creator"]:
        if name not in frame:
            frame[name] = 0
    return {"creator": frame}


def _table(table: str, df: pd.DataFrame) -> pd.DataFrame:
    cols = [*TABLE_KEYS[table], *TABLE_FEATURES[table]]
    out = df[cols].sort_values(list(TABLE_KEYS[table]), kind="stable").reset_index(drop=True)
    for name in TABLE_FEATURES[table]:
        out[name] = out[name].astype(np.float64)
    return out


def shard_of(keys: pd.Series, shards: int) -> np.ndarray:
    """Stable shard of each key (the same in every process: pandas' fixed-key SipHash)."""
    return (pd.util.hash_pandas_object(keys, index=False).to_numpy() % np.uint64(shards)).astype(
        np.int64)


def split_by_shard(partials: dict[str, pd.DataFrame],
                   shards: int) -> dict[tuple[str, int], dict[str, pd.DataFrame]]:
    """One day's partials regrouped as {(entity, shard): {group: frame}} for the shuffle."""
    out: dict[tuple[str, int], dict[str, pd.DataFrame]] = {}
    for group, frame in partials.items():
        entity = GROUPS[group].entity
        if not len(frame):
            continue
        shard = shard_of(frame[ENTITY_KEY[entity]], shards)
        for s in np.unique(shard):
            out.setdefault((entity, int(s)), {})[group] = frame[shard == s]
    return out


def merge_all(pending: dict[str, list[pd.DataFrame]]) -> dict[str, pd.DataFrame]:
    return {g: merge(g, frames) for g, frames in pending.items() if frames}
