"""What followed each ranking, and the A/B comparison of the two arms (pure logic).

Attribution: a listener's behaviour event belongs to their latest ranking at or before it, if
that ranking is less than ``WINDOW_MS`` old and the event concerns a ranked show (a like,
notifications turned on, a listen and its listening time) or a ranked show's creator (a
follow). Each event counts once.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

WINDOW_MS = 3_600_000
METRICS = ("likes", "follows", "notifies", "listens", "listen_minutes", "actions")


@dataclass
class Outcome:
    request_id: str
    variant: str
    likes: int = 0
    follows: int = 0
    notifies: int = 0
    listens: int = 0
    listen_minutes: float = 0.0

    @property
    def actions(self) -> int:
        """Engagement actions: likes, follows and notification opt-ins."""
        return self.likes + self.follows + self.notifies

    def as_dict(self) -> dict:
        return {"request_id": self.request_id, "variant": self.variant,
                **{m: getattr(self, m) for m in METRICS}}


def attribute(rankings: list[dict], events: list[dict]) -> list[Outcome]:
    """One user's rankings (``ts``, ``items`` with ``show_id`` and ``creator_id``) and
    behaviour events -> one Outcome per ranking."""
    rankings = sorted(rankings, key=lambda r: (r["ts"], r["request_id"]))
    times = [r["ts"] for r in rankings]
    outcomes = [Outcome(r["request_id"], r["variant"]) for r in rankings]
    shows = [{i["show_id"] for i in r["items"]} for r in rankings]
    creators = [{i.get("creator_id") for i in r["items"]} - {None} for r in rankings]
    for e in events:
        at = bisect.bisect_right(times, e["ts"]) - 1
        if at < 0 or e["ts"] - times[at] >= WINDOW_MS:
            continue
        o, kind = outcomes[at], e["event_type"]
        if kind == "follow":
            o.follows += e.get("creator_id") in creators[at]
        elif e.get("show_id") in shows[at]:
            if kind == "like":
                o.likes += 1
            elif kind == "notify_on":
                o.notifies += 1
            elif kind == "listen_start":
                o.listens += 1
            elif kind == "listen_stop":
                o.listen_minutes += (e.get("duration_ms") or 0) / 60_000
    return outcomes


def _mean_ci(values: list[float]) -> tuple[float, float, float]:
    n = len(values)
    if n == 0:
        return 0.0, 0.0, 0.0
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    half = 1.96 * math.sqrt(var / n)
    return mean, mean - half, mean + half


def compare(outcomes: list[Outcome]) -> dict:
    """Per arm: requests and each metric's mean per request with a 95 % interval; the relative
    lift of ml over heuristic with a 95 % interval (delta method on the ratio of means)."""
    arms = {v: [o for o in outcomes if o.variant == v] for v in ("ml", "heuristic")}
    report: dict = {"requests": {v: len(os) for v, os in arms.items()}, "metrics": {}}
    for m in METRICS:
        row = {}
        stats = {}
        for v, os in arms.items():
            values = [float(getattr(o, m)) for o in os]
            mean, lo, hi = _mean_ci(values)
            stats[v] = (mean, values)
            row[v] = {"mean": round(mean, 4), "ci95": [round(lo, 4), round(hi, 4)]}
        (m_ml, x_ml), (m_h, x_h) = stats["ml"], stats["heuristic"]
        if m_h > 0 and x_ml and x_h:
            lift = m_ml / m_h - 1
            se_ml = math.sqrt(_var(x_ml) / len(x_ml)) / m_h
            se_h = m_ml * math.sqrt(_var(x_h) / len(x_h)) / m_h ** 2
            half = 1.96 * math.sqrt(se_ml ** 2 + se_h ** 2)
            row["lift"] = {"relative": round(lift, 4),
                           "ci95": [round(lift - half, 4), round(lift + half, 4)]}
        report["metrics"][m] = row
    return report


def _var(values: list[float]) -> float:
    n = len(values)
    if n < 2:
        return 0.0
    mean = sum(values) / n
    return sum((v - mean) ** 2 for v in values) / (n - 1)


def _cell(stat: dict) -> str:
    return f"{stat['mean']:.3f} [{stat['ci95'][0]:.3f}, {stat['ci95'][1]:.3f}]"


def format_report(report: dict) -> str:
    lines = [f"requests: ml {report['requests']['ml']}, heuristic "
             f"{report['requests']['heuristic']}",
             f"{'per request':<16}{'ml':>24}{'heuristic':>24}{'lift':>26}"]
    for m, row in report["metrics"].items():
        lift = row.get("lift")
        lift_s = (f"{lift['relative']:+.1%} [{lift['ci95'][0]:+.1%}, {lift['ci95'][1]:+.1%}]"
                  if lift else "n/a")
        lines.append(f"{m:<16}{_cell(row['ml']):>24}{_cell(row['heuristic']):>24}{lift_s:>26}")
    return "\n".join(lines)
