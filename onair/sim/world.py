"""A simulated world of listeners, creators and shows: the generative model behind
``onair simulate`` (deterministic by seed, numpy only, no I/O).

The model, in the order it is drawn:

* **Topics** have a popularity (Dirichlet). **Creators** have a main topic drawn by topic
  popularity and a Pareto-skewed popularity; the top 5 % are *promoters*.
* **Listeners** have a latent taste over topics (a sparse Dirichlet) and a few favourite
  creators (drawn by creator popularity x taste). They *declare* three topics, each slot taken
  from their true top topics with probability ``declared_agreement`` and otherwise at random, so
  declared interests only partly agree with behaviour. Activity level is log-normal.
* **Shows**: each creator starts a Poisson number per day, at an hour drawn from a daily rhythm
  (evening peak), lasting 20-120 minutes, announced 1 hour to ``announce_hours`` (48)
  ahead. A promoter's show is promoted with probability 0.3 (exposure x5: the spikes).
* **App openings** ("requests"): per listener per day a Poisson number (activity x weekly
  rhythm), at hours from the same daily rhythm. Each opening shows ``feed_min`` to
  ``feed_size`` shows (20) that are live or start within ``lookahead_hours`` (2), drawn by
  exposure (popularity, promotion) without replacement, in an order by exposure or, in a
  share ``explore`` of feeds, at random: not personalised, with known propensities.
* **Engagement** with a shown show: ``sigmoid(z)`` with
  ``z = -3.2 + 6 taste[topic] + loyalty favourite + 0.35 log(popularity) + 0.3 declared
  + 0.5 promoted - 0.08 position``. Taste and favourites (what behaviour reveals) weigh far more
  than declared topics. A live show is listened to (duration exponential, longer with taste,
  capped by the show's end), then liked / creator followed with probabilities that grow with
  taste; an upcoming show gets notifications turned on instead. Listens end with a
  ``listen_stop`` carrying ``duration_ms``, except 2 % (app killed: the streaming job's timers
  close those). A few likes are undone, a few follows of disliked creators undone. A live show
  not wanted is still sampled for 10-90 s 5 % of the time (browsing: noise, not engagement).

Scale: about one behaviour event and four impressions per listener per day (100k listeners x
60 days ~ 6M behaviour events, ~25M impressions).

The impression log records each shown show and its outcome: ``engaged`` = liked, followed,
notified or listened 5+ minutes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd

# Bumped whenever the generative model changes what a seed produces (caches key on it).
WORLD_VERSION = 3
TOPICS = ("pop_music", "baseball", "politics", "comedy", "tech", "news", "true_crime",
          "cooking", "gaming", "wellness", "business", "k_pop")
COUNTRIES = ("US", "GB", "KR", "JP", "DE", "BR", "IN")
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
# Share of app openings / show starts per UTC hour: a morning bump and an evening peak.
DAILY_RHYTHM = np.array([2, 1, 1, 1, 1, 2, 3, 5, 6, 5, 4, 4, 5, 5, 4, 4, 5, 6, 8, 10, 11, 10,
                         7, 4], dtype=float)
DAILY_RHYTHM /= DAILY_RHYTHM.sum()
WEEKLY_RHYTHM = np.array([0.9, 0.9, 0.95, 1.0, 1.1, 1.25, 1.2])  # Monday .. Sunday
FIVE_MINUTES_MS = 5 * MINUTE_MS


@dataclass(frozen=True)
class WorldConfig:
    users: int = 1000
    days: int = 7
    start: date = date(2026, 9, 1)
    seed: int = 7
    creators: int = 0  # 0: users // 10, at least 20
    shows_per_creator_day: float = 0.5
    openings_per_user_day: float = 0.5
    feed_size: int = 20
    feed_min: int = 20  # each opening's feed holds feed_min .. feed_size shows (uniform)
    declared_agreement: float = 0.4  # how often a declared topic is a true top topic
    loyalty: float = 1.8  # pull of a favourite creator in the engagement score
    announce_hours: int = 48  # shows are announced 1 h to this many hours before they start
    lookahead_hours: float = 2.0  # upcoming shows this close are in feeds (the live mix)
    explore: float = 0.5  # share of feeds the logger shows in random order (exploration)
    notify_listen: float = 0.5  # chance a notification brings a listen when the show starts
    follow_listen: float = 0.5  # chance a follow brings a listen of the creator's next show

    @property
    def n_creators(self) -> int:
        return self.creators or max(20, self.users // 10)

    @property
    def lookahead_ms(self) -> int:
        return int(self.lookahead_hours * HOUR_MS)

    @property
    def t0_ms(self) -> int:
        return int(datetime(self.start.year, self.start.month, self.start.day,
                            tzinfo=UTC).timestamp() * 1000)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def listen_mean_ms(taste, favourite):
    """Mean of a wanted listen's (exponential) length: longer the more the topic is to taste
    and for a favourite creator."""
    return (3 + 30 * np.asarray(taste) + 10 * np.asarray(favourite)) * MINUTE_MS


def like_probability(taste):
    return 0.15 + 0.6 * np.asarray(taste)


def follow_probability(taste, favourite):
    return 0.03 + 0.25 * np.asarray(favourite) + 0.2 * np.asarray(taste)


def engagement_logit(taste: np.ndarray, favourite: np.ndarray, popularity: np.ndarray,
                     declared: np.ndarray, promoted: np.ndarray,
                     position: np.ndarray, loyalty: float) -> np.ndarray:
    """The generative model's engagement score (see the module docstring)."""
    return (-3.2 + 6.0 * taste + loyalty * favourite + 0.35 * np.log(popularity)
            + 0.3 * declared + 0.5 * promoted - 0.08 * position)


@dataclass
class Population:
    """Everything static about the world: who exists and what they secretly like."""

    topic_popularity: np.ndarray        # (topics,)
    creator_topic: np.ndarray           # (creators,) topic index
    creator_popularity: np.ndarray      # (creators,) mean 1
    creator_promoter: np.ndarray        # (creators,) bool
    creator_signup_ms: np.ndarray
    user_taste: np.ndarray              # (users, topics) rows sum to 1
    user_declared: np.ndarray           # (users, topics) bool, three per user
    user_favourites: np.ndarray         # (users, 3) creator indices
    user_activity: np.ndarray           # (users,) mean 1
    user_country: np.ndarray
    user_signup_ms: np.ndarray

    def favourite_mask(self, users: np.ndarray, creators: np.ndarray) -> np.ndarray:
        return (self.user_favourites[users] == creators[..., None]).any(axis=-1)


def draw_population(cfg: WorldConfig) -> Population:
    rng = np.random.default_rng([cfg.seed, 0])
    k, n_c, n_u = len(TOPICS), cfg.n_creators, cfg.users
    topic_pop = rng.dirichlet(np.full(k, 2.0))
    creator_topic = rng.choice(k, size=n_c, p=topic_pop)
    creator_pop = rng.pareto(1.3, size=n_c) + 0.2
    creator_pop /= creator_pop.mean()
    promoter = creator_pop >= np.quantile(creator_pop, 0.95)
    taste = rng.dirichlet(np.full(k, 0.25), size=n_u) * 0.85 + topic_pop * 0.15
    declared = np.zeros((n_u, k), dtype=bool)
    order = np.argsort(-taste, axis=1)
    for slot in range(3):
        agrees = rng.random(n_u) < cfg.declared_agreement
        random_topic = rng.choice(k, size=n_u, p=topic_pop)
        pick = np.where(agrees, order[:, slot], random_topic)
        declared[np.arange(n_u), pick] = True
    # Favourites: three creators per listener: a topic by taste, then one of its creators by
    # popularity (inverse-CDF draws, vectorised: worlds reach 100k listeners x 5k creators).
    fav_topics = _draw_rows(taste, rng.random((n_u, 3)))
    favourites = np.empty((n_u, 3), dtype=np.int64)
    for t in range(k):
        members = np.flatnonzero(creator_topic == t)
        if len(members) == 0:
            members = np.arange(n_c)
        cdf = np.cumsum(creator_pop[members]) / creator_pop[members].sum()
        where = fav_topics == t
        picks = np.searchsorted(cdf, rng.random(int(where.sum())), side="right")
        favourites[where] = members[np.minimum(picks, len(members) - 1)]
    activity = rng.lognormal(0.0, 0.8, size=n_u)
    activity /= activity.mean()
    horizon = 365 * DAY_MS
    return Population(
        topic_popularity=topic_pop, creator_topic=creator_topic, creator_popularity=creator_pop,
        creator_promoter=promoter,
        creator_signup_ms=cfg.t0_ms - rng.integers(DAY_MS, horizon, size=n_c),
        user_taste=taste, user_declared=declared, user_favourites=favourites,
        user_activity=activity, user_country=rng.choice(len(COUNTRIES), size=n_u),
        user_signup_ms=cfg.t0_ms - rng.integers(DAY_MS, horizon, size=n_u),
    )


def _draw_rows(p: np.ndarray, u: np.ndarray) -> np.ndarray:
    """One category per uniform in ``u`` (rows x draws), from the distribution in each row of
    ``p``."""
    cdf = np.cumsum(p, axis=1)
    idx = (u[:, :, None] * cdf[:, -1:, None] > cdf[:, None, :]).sum(axis=2)
    return np.minimum(idx, p.shape[1] - 1)


def user_id(i) -> np.ndarray:
    return np.char.add("u", np.asarray(i).astype(str))


def creator_id(i) -> np.ndarray:
    return np.char.add("c", np.asarray(i).astype(str))


def users_table(pop: Population) -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": user_id(np.arange(len(pop.user_activity))),
        "ts": pop.user_signup_ms,
        "declared_topics": [json.dumps([TOPICS[t] for t in np.flatnonzero(row)])
                            for row in pop.user_declared],
        "country": np.asarray(COUNTRIES)[pop.user_country],
    })


def creators_table(pop: Population) -> pd.DataFrame:
    ids = creator_id(np.arange(len(pop.creator_topic)))
    return pd.DataFrame({
        "creator_id": ids, "ts": pop.creator_signup_ms, "name": np.char.add("Creator ", ids),
        "main_topic": np.asarray(TOPICS)[pop.creator_topic],
    })


@dataclass
class Shows:
    """Every show of the simulated period (drawn up front: feeds need tomorrow's schedule)."""

    creator: np.ndarray
    topic: np.ndarray
    start_ms: np.ndarray
    end_ms: np.ndarray
    announced_ms: np.ndarray
    promoted: np.ndarray
    exposure: np.ndarray

    def __len__(self) -> int:
        return len(self.creator)

    def next_of_creator(self, creator: int, after_ms: int, within_ms: int = 7 * DAY_MS) -> int:
        """The creator's first show starting after ``after_ms`` (within a week), or -1."""
        if not hasattr(self, "_by_creator"):
            order = np.lexsort((self.start_ms, self.creator))
            self._by_creator = (order, self.creator[order], self.start_ms[order])
        order, creators, starts = self._by_creator
        lo, hi = np.searchsorted(creators, [creator, creator + 1])
        at = lo + np.searchsorted(starts[lo:hi], after_ms, side="right")
        if at < hi and starts[at] <= after_ms + within_ms:
            return int(order[at])
        return -1


def draw_shows(cfg: WorldConfig, pop: Population) -> Shows:
    rng = np.random.default_rng([cfg.seed, 1])
    n_c = len(pop.creator_topic)
    # Popular creators go live more often.
    rate = cfg.shows_per_creator_day * (0.5 + 0.5 * np.minimum(pop.creator_popularity, 4.0))
    counts = rng.poisson(np.tile(rate, cfg.days))
    creator = np.repeat(np.tile(np.arange(n_c), cfg.days), counts)
    day = np.repeat(np.repeat(np.arange(cfg.days), n_c), counts)
    n = len(creator)
    hour = rng.choice(24, size=n, p=DAILY_RHYTHM)
    start = (cfg.t0_ms + day * DAY_MS + hour * HOUR_MS
             + rng.integers(0, 4, size=n) * 15 * MINUTE_MS)
    duration = rng.integers(20, 121, size=n) * MINUTE_MS
    off_topic = rng.random(n) < 0.1
    topic = np.where(off_topic, rng.choice(len(TOPICS), size=n, p=pop.topic_popularity),
                     pop.creator_topic[creator])
    promoted = pop.creator_promoter[creator] & (rng.random(n) < 0.3)
    order = np.argsort(start, kind="stable")
    shows = Shows(creator=creator, topic=topic, start_ms=start, end_ms=start + duration,
                  announced_ms=start - rng.integers(HOUR_MS, cfg.announce_hours * HOUR_MS,
                                                     size=n),
                  promoted=promoted,
                  exposure=pop.creator_popularity[creator] * np.where(promoted, 5.0, 1.0))
    for name in ("creator", "topic", "start_ms", "end_ms", "announced_ms", "promoted",
                 "exposure"):
        setattr(shows, name, getattr(shows, name)[order])
    return shows


def show_id(i) -> np.ndarray:
    return np.char.add("s", np.asarray(i).astype(str))
