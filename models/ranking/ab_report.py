"""What followed each ranking, and the A/B comparison of the two arms (pure logic).

Attribution: a listener's behaviour event belongs to their latest ranking at or before it, if
that ranking is less than ``WINDOW_MS`` old and the event concerns a ranked show (a like,
notifications turned on, a listen and its listening time) or a ranked show's creator (a
follow). A listen of another show by a creator the listener followed from that ranking
belongs to it too: the listening a follow brings. Each event counts once.
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
    ts: int = 0  # when the ranking was made: the sequential test follows requests in time

    @property
    def actions(self) -> int:
        """Engagement actions: likes, follows and notification opt-ins."""
        return self.likes + self.follows + self.notifies

    def as_dict(self) -> dict:
        return {"request_id": self.request_id, "variant": self.variant, "ts": self.ts,
                **{m: getattr(self, m) for m in METRICS}}


def attribute(rankings: list[dict], events: list[dict]) -> list[Outcome]:
    """One user's rankings (``ts``, ``items`` with ``show_id`` and ``creator_id``) and
    behaviour events -> one Outcome per ranking."""
    rankings = sorted(rankings, key=lambda r: (r["ts"], r["request_id"]))
    times = [r["ts"] for r in rankings]
    outcomes = [Outcome(r["request_id"], r["variant"], ts=r["ts"]) for r in rankings]
    shows = [{i["show_id"] for i in r["items"]} for r in rankings]
    creators = [{i.get("creator_id") for i in r["items"]} - {None} for r in rankings]
    followed: list[set] = [set() for _ in rankings]
    for e in sorted(events, key=lambda e: e["ts"]):
        at = bisect.bisect_right(times, e["ts"]) - 1
        if at < 0 or e["ts"] - times[at] >= WINDOW_MS:
            continue
        o, kind = outcomes[at], e["event_type"]
        if kind == "follow":
            if e.get("creator_id") in creators[at]:
                o.follows += 1
                followed[at].add(e["creator_id"])
        elif e.get("show_id") in shows[at] or (
                kind.startswith("listen_") and e.get("creator_id") in followed[at]):
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
        row["sequential"] = sequential_test(arms["ml"], arms["heuristic"], m)
        report["metrics"][m] = row
    report["sequential"] = {"alpha": ALPHA, "mixing_sd_relative": MIXING_SD,
                            "test": "mSPRT, normal mixture, checked after every "
                                    f"{CHECK_EVERY} requests per arm"}
    return report


ALPHA = 0.05
MIXING_SD = 0.1   # the effects the test is tuned to: about 10 % of the control's mean
CHECK_EVERY = 50


def msprt(diff: float, var: float, tau2: float) -> float:
    """Likelihood ratio of the mixture sequential probability ratio test (Johari et al.):
    an estimate ``diff`` of a difference with variance ``var`` against 0, the alternative
    mixed over N(0, tau2)."""
    if var <= 0:
        return math.inf if diff else 1.0
    return math.sqrt(var / (var + tau2)) * math.exp(
        diff * diff * tau2 / (2 * var * (var + tau2)))


def sequential_test(ml: list[Outcome], heuristic: list[Outcome], metric: str) -> dict:
    """An always-valid test of ml's mean against the heuristic's: the arms are followed in
    request time, and after every ``CHECK_EVERY`` requests per arm the mSPRT ratio is
    computed; the always-valid p-value is one over its running maximum, so the experiment
    may be looked at (and stopped) at any of those checks without inflating false
    positives. Decision: ``winner`` / ``loser`` when p < ``ALPHA`` and the difference is
    above / below zero, else ``undecided``. The interval is the always-valid confidence
    sequence of the difference at the last check."""
    a = [float(getattr(o, metric)) for o in sorted(ml, key=lambda o: o.ts)]
    b = [float(getattr(o, metric)) for o in sorted(heuristic, key=lambda o: o.ts)]
    n_max = min(len(a), len(b))
    if n_max < 2:
        return {"decision": "undecided", "p_always_valid": 1.0, "n_per_arm": n_max}
    base = sum(b[:n_max]) / n_max
    tau2 = (MIXING_SD * base) ** 2 or 1e-12
    best, diff, var = 1.0, 0.0, 0.0
    sa = sb = qa = qb = 0.0
    for n in range(1, n_max + 1):
        sa, sb = sa + a[n - 1], sb + b[n - 1]
        qa, qb = qa + a[n - 1] ** 2, qb + b[n - 1] ** 2
        if (n % CHECK_EVERY and n != n_max) or n < 2:
            continue
        ma, mb = sa / n, sb / n
        va = max(qa / n - ma * ma, 0.0) * n / (n - 1)
        vb = max(qb / n - mb * mb, 0.0) * n / (n - 1)
        diff, var = ma - mb, (va + vb) / n
        best = max(best, msprt(diff, var, tau2))
    p = min(1.0, 1.0 / best)
    half = (math.sqrt(var * (var + tau2) / tau2
                      * (math.log((var + tau2) / var) + 2 * math.log(1 / ALPHA)))
            if var > 0 else 0.0)
    decision = "undecided" if p >= ALPHA else ("winner" if diff > 0 else "loser")
    return {"decision": decision, "p_always_valid": round(p, 6), "n_per_arm": n_max,
            "difference": round(diff, 4),
            "difference_cs95": [round(diff - half, 4), round(diff + half, 4)]}


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
             f"{'per request':<16}{'ml':>24}{'heuristic':>24}{'lift':>26}  sequential test"]
    for m, row in report["metrics"].items():
        lift = row.get("lift")
        lift_s = (f"{lift['relative']:+.1%} [{lift['ci95'][0]:+.1%}, {lift['ci95'][1]:+.1%}]"
                  if lift else "n/a")
        seq = row.get("sequential", {})
        lines.append(f"{m:<16}{_cell(row['ml']):>24}{_cell(row['heuristic']):>24}{lift_s:>26}"
                     f"  {seq.get('decision', '')} (p {seq.get('p_always_valid', 1):.3g})")
    return "\n".join(lines)
