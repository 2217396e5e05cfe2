"""The promotion gate of the show ranker (pure Python): may a trained candidate replace the
model in production?

It decides on the utility the ranker is trained for, estimated off-policy on the holdout's
logged feeds, against every baseline there is: the declared-topics heuristic always, the
production model when one is registered. A candidate passes when

* the **position-based** estimate of its utility lift has a 95 % interval above zero (this
  estimator uses every impression of the top 10, so its interval can decide on a few days of
  logs), and
* the **SNIPS** estimate, unbiased whatever position does to engagement but several times
  noisier, does not show it worse (its interval reaches zero or above).

Otherwise it refuses, saying which check failed and with what figures.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.ranking.training import Utility, heuristic_of_rows, offpolicy_evaluator

OBJECTIVE = "utility"


def promotion_gate(holdout: pd.DataFrame, candidate: np.ndarray,
                   production: np.ndarray | None, utility: Utility,
                   tie_seed: int = 0, production_ref: str | None = None) -> dict:
    """``{"promote": bool, "objective", "checks": [...], "reasons": [...]}``; ``production``
    is the production model's scores of the same rows (None: nothing in production)."""
    rankings = {"candidate": candidate, "heuristic": heuristic_of_rows(holdout)}
    if production is not None:
        rankings["production"] = production
    baselines = [b for b in ("heuristic", "production") if b in rankings]
    checks, reasons = [], []
    for estimator in ("pbm", "snips"):
        ev = offpolicy_evaluator(holdout, utility, tie_seed, estimator)
        for baseline in baselines:
            row = ev.compare(rankings, baseline)["objectives"][OBJECTIVE]["candidate"]
            lift, ci = row.get("lift"), row.get("lift_ci95")
            # pbm: shown better; snips: not shown worse (no evidence of harm)
            passed = (ci is not None and ci[0] > 0) if estimator == "pbm" else (
                ci is None or ci[1] >= 0)
            name = production_ref if baseline == "production" and production_ref else baseline
            checks.append({"estimator": estimator, "baseline": name, "lift": lift,
                           "lift_ci95": ci, "passed": passed})
            if not passed:
                reasons.append(_reason(estimator, name, lift, ci))
    return {"promote": not reasons, "objective": OBJECTIVE, "checks": checks,
            "reasons": reasons}


def _reason(estimator: str, baseline: str, lift: float | None, ci) -> str:
    figures = (f"{lift:+.1%} [{ci[0]:+.1%}, {ci[1]:+.1%}]" if lift is not None and ci
               else "not estimable (no impression of the holdout supports it)")
    if estimator == "pbm":
        return (f"utility lift over {baseline} is {figures} (position-based estimate): its "
                "95 % interval does not lie above zero")
    return (f"utility lift over {baseline} is {figures} (SNIPS, unbiased): the candidate is "
            "worse")


def refused(name: str) -> dict:
    """The gate's answer when the production model cannot be compared on this holdout."""
    return {"promote": False, "objective": OBJECTIVE, "checks": [],
            "reasons": [f"the production model {name} reads other features than this "
                        "candidate: compare them in an A/B test, then promote by hand "
                        "(`onair models promote`)"]}
