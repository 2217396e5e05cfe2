"""The ranker's promotion gate on logged feeds whose truth is known: a better candidate
passes, one no better than production or worse than the heuristic is refused with its
reason."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.ranking.gate import promotion_gate
from models.ranking.training import Utility
from onair.sim.world_history import _logged_order

N, SHOWS = 6000, 6


def _holdout(seed: int = 2) -> tuple[pd.DataFrame, np.ndarray]:
    """Feeds of 6 of 12 shows; a show is listened to with a chance of its appeal times an
    examination falling with position. Returns the rows and each row's appeal."""
    rng = np.random.default_rng(seed)
    appeal = np.linspace(0.05, 0.6, 12)
    chosen = np.stack([rng.choice(12, SHOWS, replace=False) for _ in range(N)])
    shown, propensity = _logged_order(chosen, rng.uniform(0.5, 2, 12)[chosen], 0.5, rng)
    position = np.tile(np.arange(SHOWS), N)
    a = appeal[shown.ravel()]
    listened = rng.random(len(a)) < a * np.exp(-0.15 * position)
    zeros = np.zeros(len(a))
    frame = pd.DataFrame({
        "request_id": np.repeat(np.arange(N), SHOWS).astype(str), "position": position,
        "propensity": propensity.ravel(), "label": listened.astype(int),
        "declared_topic": rng.integers(0, 2, len(a)), "pit_listen_count": zeros,
        "s_listens": zeros, "liked": zeros, "followed": zeros, "notified": zeros,
        "listened": listened.astype(float), "listen_minutes": listened * 10.0,
        "attributed_minutes": listened * 10.0})
    return frame, a


def test_a_better_candidate_passes_against_the_heuristic():
    holdout, appeal = _holdout()
    gate = promotion_gate(holdout, appeal, None, Utility())
    assert gate["promote"] and not gate["reasons"]
    assert {c["baseline"] for c in gate["checks"]} == {"heuristic"}
    assert all(c["lift_ci95"][0] > 0 for c in gate["checks"] if c["estimator"] == "pbm")


def test_a_candidate_no_better_than_production_is_refused_and_says_why():
    holdout, appeal = _holdout()
    gate = promotion_gate(holdout, appeal, appeal.copy(), Utility(), production_ref="m:3")
    assert not gate["promote"]
    assert len(gate["reasons"]) == 1 and "over m:3" in gate["reasons"][0]
    assert "interval does not lie above zero" in gate["reasons"][0]


def test_a_worse_candidate_is_refused_by_both_estimates():
    holdout, appeal = _holdout()
    gate = promotion_gate(holdout, -appeal, None, Utility())
    assert not gate["promote"]
    assert {c["estimator"] for c in gate["checks"] if not c["passed"]} == {"pbm", "snips"}
