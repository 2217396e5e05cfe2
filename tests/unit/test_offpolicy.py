"""The off-policy estimator against the truth of a world where it is known, and the
simulator's logging propensities against their frequencies."""

from __future__ import annotations

import numpy as np
import pytest

from models.ranking.offpolicy import Evaluator, tied_ranks
from onair.sim.world_history import _logged_order

N, SHOWS, K = 40_000, 6, 3


def _world(seed=3):
    """Feeds of 6 shows out of 12; a show's reward chance depends on the show and, falling
    with it, on its position (no effect of the other shows)."""
    rng = np.random.default_rng(seed)
    appeal = np.linspace(0.05, 0.6, 12)
    exposure = rng.uniform(0.5, 2.0, 12)
    chosen = np.stack([rng.choice(12, SHOWS, replace=False) for _ in range(N)])
    shown, propensity = _logged_order(chosen, exposure[chosen], 0.3, rng)
    position = np.tile(np.arange(SHOWS), N)
    p_reward = appeal[shown.ravel()] * np.exp(-0.15 * position)
    reward = rng.random(len(p_reward)) < p_reward
    request = np.repeat(np.arange(N), SHOWS)
    return appeal, shown, propensity.ravel(), position, reward, request


def _truth(appeal, shown, score_of):
    """What ranking every feed by ``score_of`` brings in its top K, in expectation."""
    best = np.argsort(-score_of[shown], axis=1, kind="stable")[:, :K]
    top = np.take_along_axis(shown, best, axis=1)
    return float((appeal[top] * np.exp(-0.15 * np.arange(K))).sum(axis=1).mean())


def test_snips_recovers_what_a_ranking_would_have_brought():
    appeal, shown, propensity, position, reward, request = _world()
    ev = Evaluator(request, position, propensity, {"reward": reward}, k=K, seed=1)
    good, bad = appeal, -appeal   # best shows first / worst first
    out = ev.compare({"good": good[shown.ravel()], "bad": bad[shown.ravel()]}, "bad")
    for name, score in (("good", good), ("bad", bad)):
        row = out["objectives"]["reward"][name]
        truth = _truth(appeal, shown, score)
        assert row["value"] == pytest.approx(truth, rel=0.05)
        assert row["ci95"][0] <= truth <= row["ci95"][1]
    assert out["objectives"]["reward"]["good"]["lift_ci95"][0] > 0


def test_position_based_estimate_recovers_the_truth_with_narrower_intervals():
    """In a world where outcome = appeal x examination(position), as this one is, the
    position-based estimate is unbiased and uses every impression of the top K."""
    appeal, shown, propensity, position, reward, request = _world(5)
    scores = {"good": appeal[shown.ravel()], "bad": -appeal[shown.ravel()]}
    width = {}
    for estimator in ("snips", "pbm"):
        ev = Evaluator(request, position, propensity, {"reward": reward}, k=K, seed=1,
                       estimator=estimator)
        out = ev.compare(scores, "bad")["objectives"]["reward"]
        for name, score in (("good", appeal), ("bad", -appeal)):
            assert out[name]["value"] == pytest.approx(_truth(appeal, shown, score), rel=0.05)
        width[estimator] = out["good"]["lift_ci95"][1] - out["good"]["lift_ci95"][0]
    assert width["pbm"] < width["snips"] / 2
    theta = Evaluator(request, position, propensity, {"reward": reward}, k=K,
                      estimator="pbm").theta
    np.testing.assert_allclose(theta, np.exp(-0.15 * np.arange(SHOWS)), rtol=0.05)


def test_a_ranking_of_ties_is_worth_a_random_order_not_the_logged_one():
    """Constant scores: the estimate is what a random order brings; a stable sort would have
    kept the logged order and been credited with the logger's choice of the top slots."""
    appeal, shown, propensity, position, reward, request = _world(4)
    ev = Evaluator(request, position, propensity, {"reward": reward}, k=K, seed=2)
    out = ev.compare({"ties": np.zeros(len(position))}, "ties")
    random_order = float((appeal[shown].mean(axis=1, keepdims=True)
                          * np.exp(-0.15 * np.arange(K))).sum(axis=1).mean())
    assert out["objectives"]["reward"]["ties"]["value"] == pytest.approx(random_order, rel=0.05)


def test_logging_propensities_are_the_frequencies_of_each_show_in_each_slot():
    rng = np.random.default_rng(0)
    chosen = np.tile(np.array([[4, 9, 2, 7]]), (50_000, 1))
    exposure = np.tile(np.array([[1.0, 3.0, 2.0, 3.0]]), (50_000, 1))  # a tie: 9 before 7... by id
    shown, propensity = _logged_order(chosen, exposure, 0.25, rng)
    for slot in range(4):
        for show in (4, 9, 2, 7):
            at = shown[:, slot] == show
            if at.any():
                assert at.mean() == pytest.approx(propensity[at, slot][0], abs=0.01)
    assert list(shown[np.argmax(propensity[:, 0])]) == [7, 9, 2, 4]  # by exposure, ties by id


def test_ties_are_broken_at_random_by_seed_not_by_logged_order():
    requests = np.repeat(np.arange(2000), 3)
    ranks = tied_ranks(requests, np.zeros(len(requests)), seed=5)
    top_is_first_logged = ranks.reshape(-1, 3)[:, 0] == 0
    assert 0.28 < top_is_first_logged.mean() < 0.39
    assert (tied_ranks(requests, np.zeros(len(requests)), seed=5) == ranks).all()
    assert (tied_ranks(np.array(["a", "a", "b"]), np.array([0.1, 0.9, 0.5]), 0)
            == [1, 0, 0]).all()
