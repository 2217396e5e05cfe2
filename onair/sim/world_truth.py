"""What a ranking of logged feeds would truly have brought, from the world's own generative
model: the yardstick the off-policy estimators are checked against in the benchmarks (the
simulator knows each listener's taste; no estimator may use it).

For every impression a ranking keeps in its top ``k`` (ties broken with the evaluators'
``tied_ranks``), the expected outcomes at its new position: engagement
``sigmoid(engagement_logit(...))``, then for a live show a listen of mean length
``listen_mean_ms`` cut at the show's end, a like and a follow with their probabilities; for an
upcoming show a notification, which brings a listen when the show starts (``notify_listen``).
A follow's later listening is counted at the full mean length, whether or not the creator has
a next show within the week (an upper bound: close enough for a yardstick). Summed per
request, averaged over requests.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.ranking.scoring import tied_ranks
from onair.sim.world import (
    MINUTE_MS,
    engagement_logit,
    follow_probability,
    like_probability,
    listen_mean_ms,
    sigmoid,
)
from onair.sim.world_history import World


def expected_outcomes(world: World, holdout: pd.DataFrame, scores: np.ndarray, k: int = 10,
                      tie_seed: int = 0) -> dict[str, float]:
    """Per request, the expected likes, follows, notifies, listens, minutes (in the session),
    minutes_attributed and actions of ranking each holdout feed by ``scores``."""
    pop, s, cfg = world.pop, world.shows, world.cfg
    users = holdout["user_id"].str[1:].astype(int).to_numpy()
    shows = holdout["show_id"].str[1:].astype(int).to_numpy()
    live = s.start_ms[shows] <= holdout["ts"].to_numpy()
    topic, creator = s.topic[shows], s.creator[shows]
    taste = pop.user_taste[users, topic]
    favourite = pop.favourite_mask(users, creator)
    ranks = tied_ranks(holdout["request_id"].to_numpy(), scores, tie_seed)
    p = sigmoid(engagement_logit(taste, favourite, pop.creator_popularity[creator],
                                 pop.user_declared[users, topic], s.promoted[shows], ranks,
                                 cfg.loyalty)) * (ranks < k)
    mean = listen_mean_ms(taste, favourite) / MINUTE_MS
    ts = holdout["ts"].to_numpy()
    # A listen ends with the show: E[min(X, c)] = mean (1 - exp(-c / mean)) for an exponential.
    left = np.maximum(s.end_ms[shows] - np.maximum(ts, s.start_ms[shows]), 0) / MINUTE_MS
    in_session = mean * -np.expm1(-left / mean)
    whole_show = mean * -np.expm1(-(s.end_ms[shows] - s.start_ms[shows]) / MINUTE_MS / mean)
    follows = p * live * follow_probability(taste, favourite)
    value = {"likes": p * live * like_probability(taste), "follows": follows,
             "notifies": p * ~live, "listens": p * live, "minutes": p * live * in_session}
    value["minutes_attributed"] = (value["minutes"]
                                   + p * ~live * cfg.notify_listen * whole_show
                                   + follows * cfg.follow_listen * mean)
    value["actions"] = value["likes"] + value["follows"] + value["notifies"]
    requests = holdout["request_id"].nunique() or 1
    return {name: float(v.sum() / requests) for name, v in value.items()}
