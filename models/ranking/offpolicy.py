"""Off-policy evaluation of a ranking from logged feeds (pure numpy).

A logged impression says which show the logging policy put at which position of a feed, with
the probability that it would (its **propensity**, given the feed's shows), and what followed.
A candidate ranking re-orders each logged feed (ties broken at random with a recorded seed)
and keeps the top ``k``. The **item-position** estimator credits the candidate with an
impression's outcome when it puts that show at the very position it was logged at, weighted
by one over the propensity; since an outcome depends on the show and its position (not on the
other shows), the sum estimates without bias what the candidate's top ``k`` would have
brought. It is **self-normalised** (SNIPS): divided by the summed weights, times the slots the
candidate fills per feed, which trades a little bias for much less variance. Requests are
resampled for bootstrap intervals, the same resamples for every ranking compared, so a lift
has its interval too.

The **position-based** estimator (``estimator="pbm"``) uses every impression of the top
``k``, not only those the candidate puts where they were logged, so its intervals are several
times narrower; it assumes what position-based click models assume: an outcome's chance is
the show's appeal times an examination factor of the position (θ), with θ estimated from the
logs themselves (propensity-weighted outcome rates by position, which the logger's
randomised feeds make comparable). An impression logged at position p and ranked at q counts
θ(q)/θ(p) times its outcome. Where that assumption is wrong it is biased; SNIPS is not.

Logged-order metrics (NDCG@10, engagement@10 of the feed re-ranked) reward whatever the
logging policy put on top, position bias included; they stay only as diagnostics.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from models.ranking.scoring import tied_ranks

ESTIMATORS = ("snips", "pbm")
OBJECTIVES = ("likes", "follows", "notifies", "listens", "minutes", "minutes_attributed",
              "actions", "utility")


class Evaluator:
    """The logged feeds of one holdout, ready to score any number of rankings on the same
    bootstrap resamples."""

    def __init__(self, request_ids: np.ndarray, positions: np.ndarray,
                 propensities: np.ndarray, outcomes: Mapping[str, np.ndarray], k: int = 10,
                 seed: int = 0, resamples: int = 200, estimator: str = "snips",
                 examined: np.ndarray | None = None):
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator {estimator!r}: one of {ESTIMATORS}")
        self.estimator = estimator
        self.request_ids = np.asarray(request_ids)
        self.positions = np.asarray(positions, np.int64)
        self.propensities = np.asarray(propensities, np.float64)
        if np.any(self.propensities <= 0):
            raise ValueError("every impression needs a propensity above 0")
        self.outcomes = {name: np.asarray(v, np.float64) for name, v in outcomes.items()}
        self.k, self.seed = k, seed
        self.codes = np.unique(self.request_ids, return_inverse=True)[1]
        self.requests = int(self.codes.max()) + 1 if len(self.codes) else 0
        sizes = np.bincount(self.codes, minlength=self.requests)
        self.slots = np.minimum(sizes, k).astype(np.float64)
        # Position examination, from any engagement (``examined``) unless given per objective.
        signal = (np.asarray(examined, np.float64) if examined is not None
                  else sum(self.outcomes.values(), np.zeros(len(self.positions))))
        self.theta = examination_by_position(self.positions, self.propensities, signal)
        rng = np.random.default_rng([seed, 1])
        self.counts = rng.multinomial(self.requests, np.full(self.requests, 1 / self.requests),
                                      size=resamples).astype(np.float64) if self.requests else None

    def _per_request(self, scores: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray],
                                                        float]:
        """Summed weights and weighted outcomes per request, and the share of impressions
        the ranking puts where they were logged (the data its estimate rests on)."""
        ranks = tied_ranks(self.request_ids, scores, self.seed)
        matched = (ranks == self.positions) & (ranks < self.k)
        if self.estimator == "pbm":
            top = ranks < self.k
            weight = np.where(top, self.theta[np.minimum(ranks, len(self.theta) - 1)]
                              / self.theta[self.positions], 0.0)
        else:
            weight = matched / self.propensities
        w = np.bincount(self.codes, weight, self.requests)
        r = {name: np.bincount(self.codes, weight * v, self.requests)
             for name, v in self.outcomes.items()}
        return w, r, float(matched.mean()) if len(matched) else 0.0

    def _estimate(self, w: np.ndarray, r: np.ndarray, counts: np.ndarray | None) -> np.ndarray:
        """Value per request, on the full sample (counts None) or each resample."""
        if self.estimator == "pbm":  # each request's weighted outcomes, averaged
            if counts is None:
                return np.array(r.sum() / self.requests) if self.requests else np.nan
            return counts @ r / self.requests
        if counts is None:
            return np.array(r.sum() / w.sum() * self.slots.mean()) if w.sum() else np.nan
        ws, rs, ss = counts @ w, counts @ r, counts @ self.slots / self.requests
        with np.errstate(invalid="ignore", divide="ignore"):
            return rs / ws * ss

    def compare(self, scores: Mapping[str, np.ndarray], baseline: str) -> dict:
        """Per objective and ranking: the estimate with its 95 % bootstrap interval, and each
        ranking's relative lift over ``baseline`` with its interval."""
        per = {name: self._per_request(s) for name, s in scores.items()}
        out: dict = {"estimator": self.estimator, "requests": self.requests, "k": self.k,
                     "tie_seed": self.seed,
                     "resamples": 0 if self.counts is None else len(self.counts),
                     "matched_share": {name: round(m, 4) for name, (_, _, m) in per.items()},
                     "objectives": {}}
        for objective in self.outcomes:
            row: dict = {}
            boot = {}
            for name, (w, r, _) in per.items():
                value = float(self._estimate(w, r[objective], None))
                boot[name] = self._estimate(w, r[objective], self.counts)
                row[name] = {"value": round(value, 4), "ci95": _interval(boot[name])}
            base_value = row[baseline]["value"]
            for name in per:
                if name == baseline or not base_value:
                    continue
                with np.errstate(invalid="ignore", divide="ignore"):
                    lifts = boot[name] / boot[baseline] - 1
                row[name]["lift"] = round(row[name]["value"] / base_value - 1, 4)
                row[name]["lift_ci95"] = _interval(lifts)
            out["objectives"][objective] = row
        return out


def examination_by_position(positions: np.ndarray, propensities: np.ndarray,
                            signal: np.ndarray) -> np.ndarray:
    """θ per position, θ(0) = 1: the propensity-weighted rate of ``signal`` at each position
    (weighting by one over the propensity gives every show of a feed the same chance at every
    position, so the rates differ by examination alone), made non-increasing."""
    weight = 1.0 / propensities
    n = int(positions.max()) + 1 if len(positions) else 1
    hits = np.bincount(positions, weight * signal, n)
    seen = np.bincount(positions, weight, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = hits / seen
    if not np.isfinite(rate[0]) or rate[0] <= 0:
        return np.ones(n)
    rate = np.where(np.isfinite(rate) & (rate > 0), rate, np.nan)
    rate = np.fmin.accumulate(np.where(np.isnan(rate), np.inf, rate))  # noise, not a bump
    rate = np.where(np.isfinite(rate), rate, rate[np.isfinite(rate)][-1])
    return rate / rate[0]


def _interval(values: np.ndarray) -> list[float] | None:
    values = values[np.isfinite(values)]
    if not len(values):
        return None
    lo, hi = np.percentile(values, [2.5, 97.5])
    return [round(float(lo), 4), round(float(hi), 4)]
