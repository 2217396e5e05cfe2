"""Training and evaluating the show ranker (pure Python; ``jobs/train_ranker.py`` runs it in
Flink subtasks).

The forest is grown in parts: each part is a ``RandomForestClassifier`` with its own seed and
share of the trees, fitted on the same rows in its own subtask; ``merge_forests`` concatenates
the trees. A random forest's prediction is the mean of its trees' class probabilities, so the
merged forest is exactly the forest of all the trees (tested).
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from models.ranking.scoring import FEATURE_ORDER, heuristic_scores, ranking_metrics

LABELS = ["not_engaged", "engaged"]
K = 10


# What followed an impression, as training rows carry it (``connectors.ranker_dataset``).
OUTCOMES = ("liked", "followed", "notified", "listened", "listen_minutes",
            "attributed_minutes")


@dataclass(frozen=True)
class Utility:
    """What an impression is worth: minutes of listening it brought (in the session and
    later, through a notification or a follow) plus a weight per engagement action, in
    minutes of listening. The ranker is trained for this value; the weights are flags of
    ``train_ranker`` and recorded with the model."""

    minute: float = 1.0
    like: float = 5.0
    # Follows happen on live shows only: weighted low, the ranker filled the top with upcoming
    # shows and lost follows in the simulated A/B.
    follow: float = 15.0
    # A notification's worth is the listening it brings when the show starts, already in the
    # attributed minutes; weighting the opt-in too pushed upcoming shows over live ones.
    notify: float = 0.0
    listen: float = 5.0

    def of(self, frame: pd.DataFrame) -> np.ndarray:
        return (self.minute * frame["attributed_minutes"].to_numpy(np.float64)
                + self.like * frame["liked"].to_numpy(np.float64)
                + self.follow * frame["followed"].to_numpy(np.float64)
                + self.notify * frame["notified"].to_numpy(np.float64)
                + self.listen * frame["listened"].to_numpy(np.float64))


@dataclass(frozen=True)
class RankerParams:
    # 16 trees of depth 8 rank as well as 40, or 200 of depth 14, on the simulator's holdout
    # and score in a fraction of the time: ONNX was half of a ranking's CPU, and at 200
    # requests/s that CPU is what the 2 cores lack.
    trees: int = 16
    max_depth: int = 8
    min_samples_leaf: int = 50
    max_features: str = "sqrt"
    seed: int = 7
    utility: Utility = Utility()

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RankerParams:
        """Back from ``as_dict`` (a registry entry's ``params``)."""
        return cls(**{**d, "utility": Utility(**d.get("utility", {}))})


def tree_tasks(params: RankerParams, parts: int) -> list[tuple[int, int]]:
    """(seed, trees) of each part: distinct seeds, trees split as evenly as possible."""
    parts = max(1, min(parts, params.trees))
    base, extra = divmod(params.trees, parts)
    return [(params.seed * 1000 + i, base + (i < extra)) for i in range(parts)]


def load_rows(files: list[str], utility: Utility) -> tuple[np.ndarray, np.ndarray,
                                                          np.ndarray]:
    """Value-weighted training set of training-row Parquet files: every impression once as a
    negative of weight 1 and, when it brought anything, once as a positive weighted by its
    utility. A classifier's odds on it estimate the expected utility given the features
    (weighted logistic regression of watch time), so ranking by the probability ranks by
    value, and the model keeps the two-class ONNX interface serving reads."""
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    x = frame[list(FEATURE_ORDER)].to_numpy("float32")
    value = utility.of(frame)
    worth = value > 0
    return (np.concatenate([x, x[worth]]),
            np.concatenate([np.zeros(len(x), np.int8), np.ones(int(worth.sum()), np.int8)]),
            np.concatenate([np.ones(len(x)), value[worth]]))


def train_part(x: np.ndarray, y: np.ndarray, weight: np.ndarray, params: RankerParams,
               seed: int, trees: int):
    from sklearn.ensemble import RandomForestClassifier

    model = RandomForestClassifier(n_estimators=trees, max_depth=params.max_depth,
                                   min_samples_leaf=params.min_samples_leaf,
                                   max_features=params.max_features, random_state=seed,
                                   n_jobs=1)
    return model.fit(x.astype(np.float32), y, sample_weight=weight)


def merge_forests(parts: list):
    """One forest holding every part's trees (all parts were fitted on the same classes)."""
    merged = copy.deepcopy(parts[0])
    merged.estimators_ = [tree for part in parts for tree in part.estimators_]
    merged.n_estimators = len(merged.estimators_)
    return merged


def popularity(frame: pd.DataFrame) -> np.ndarray:
    """The heuristic's tie-breaker: listens so far (live) plus listens in the lookback."""
    return (frame["pit_listen_count"] + frame["s_listens"]).to_numpy(dtype=np.float64)


def heuristic_of_rows(frame: pd.DataFrame) -> np.ndarray:
    """The control arm on training rows: declared topic first, then popularity."""
    return heuristic_scores(frame["declared_topic"].to_numpy() > 0, popularity(frame))


def outcomes_of(frame: pd.DataFrame, utility: Utility) -> dict[str, np.ndarray]:
    """Each objective of ``models.ranking.offpolicy.OBJECTIVES`` per training row."""
    col = {name: frame[name].to_numpy(np.float64) for name in OUTCOMES}
    return {"likes": col["liked"], "follows": col["followed"], "notifies": col["notified"],
            "listens": col["listened"], "minutes": col["listen_minutes"],
            "minutes_attributed": col["attributed_minutes"],
            "actions": col["liked"] + col["followed"] + col["notified"],
            "utility": utility.of(frame)}


def offpolicy_evaluator(holdout: pd.DataFrame, utility: Utility, tie_seed: int,
                        estimator: str):
    """The holdout's logged feeds, ready to estimate any ranking's value per objective."""
    from models.ranking.offpolicy import Evaluator

    return Evaluator(holdout["request_id"].to_numpy(), holdout["position"].to_numpy(),
                     holdout["propensity"].to_numpy(np.float64),
                     outcomes_of(holdout, utility), K, tie_seed, estimator=estimator,
                     examined=holdout["label"].to_numpy())


def evaluate(holdout: pd.DataFrame, p_model: np.ndarray, utility: Utility,
             tie_seed: int = 0) -> dict:
    """Model against the heuristic on the holdout: per objective, off-policy estimates of what
    each one's top ``K`` brings per request (position-based, ``pbm_*``, and SNIPS, ``ips_*``),
    with bootstrap intervals and the model's lift; logged-order metrics (AUC, NDCG@10,
    engagement@10 of the engaged label) follow, as diagnostics only."""
    from sklearn.metrics import roc_auc_score

    from models.ranking.offpolicy import ESTIMATORS

    y = holdout["label"].to_numpy()
    req = holdout["request_id"].to_numpy()
    h = heuristic_of_rows(holdout)
    out: dict = {"holdout_rows": len(holdout), "holdout_positives": int(y.sum())}
    propensity = holdout["propensity"].to_numpy(np.float64)
    if len(holdout) and np.all(propensity > 0):
        out["offpolicy"] = {}
        for estimator, prefix in zip(ESTIMATORS, ("ips", "pbm"), strict=True):
            offline = offpolicy_evaluator(holdout, utility, tie_seed, estimator).compare(
                {"model": p_model, "heuristic": h}, baseline="heuristic")
            out["offpolicy"][estimator] = offline
            out["holdout_requests"] = offline["requests"]
            for objective, row in offline["objectives"].items():
                out[f"{prefix}_{objective}_model"] = row["model"]["value"]
                out[f"{prefix}_{objective}_heuristic"] = row["heuristic"]["value"]
                out[f"{prefix}_{objective}_lift"] = row["model"].get("lift")
    model_rank = ranking_metrics(req, y, p_model, K, tie_seed)
    heur_rank = ranking_metrics(req, y, h, K, tie_seed)

    def lift(a, b):
        return round((a - b) / b, 4) if b else None

    both = 0 < y.sum() < len(y)
    return out | {
        "auc_model": round(float(roc_auc_score(y, p_model)), 4) if both else None,
        "auc_heuristic": round(float(roc_auc_score(y, h)), 4) if both else None,
        "ndcg10_model": round(model_rank["ndcg"], 4),
        "ndcg10_heuristic": round(heur_rank["ndcg"], 4),
        "eng10_model": round(model_rank["engagement"], 4),
        "eng10_heuristic": round(heur_rank["engagement"], 4),
        "ndcg10_lift": lift(model_rank["ndcg"], heur_rank["ndcg"]),
        "eng10_lift": lift(model_rank["engagement"], heur_rank["engagement"]),
    }


def importances(model) -> dict[str, float]:
    return dict(sorted(((n, round(float(v), 4)) for n, v in
                        zip(FEATURE_ORDER, model.feature_importances_, strict=True)),
                       key=lambda kv: -kv[1]))


def _ci(pair) -> str:
    return f"[{pair[0]:.3f}, {pair[1]:.3f}]" if pair else ""


def report_markdown(meta: dict) -> str:
    m, extra = meta["metrics"], meta["extra"]
    utility = meta["params"].get("utility", {})
    forest = {k: v for k, v in meta["params"].items() if k != "utility"}
    lines = [
        f"# {meta['name']} training report", "",
        f"- model: RandomForest {json.dumps(forest)}, grown in {extra['tree_tasks']} "
        "parallel parts",
        f"- objective: utility per impression = {utility.get('minute')} x minutes (in the "
        f"session and brought later) + {utility.get('like')} x like + "
        f"{utility.get('follow')} x follow + {utility.get('notify')} x notification + "
        f"{utility.get('listen')} x listen; "
        "trained value-weighted (odds = expected utility)",
        f"- training days {extra['train_days'][0]} .. {extra['train_days'][-1]}"
        f" ({m['train_rows']} impressions), holdout days {extra['eval_days'][0]} .. "
        f"{extra['eval_days'][-1]} ({m['holdout_rows']} impressions)",
        f"- ONNX parity: max |sklearn - onnx| = {m['onnx_max_abs_diff']:.2e}", "",
    ]
    titles = {"pbm": "position-based (every impression of the top 10; assumes engagement = "
                     "appeal x examination of the position)",
              "snips": "SNIPS (only impressions the ranking puts where they were logged; "
                       "unbiased, noisier)"}
    for estimator, off in (extra.get("offpolicy") or {}).items():
        lines += [
            f"## Off-policy estimate per request of the top {off['k']}: {titles[estimator]}",
            "", f"{off['requests']} requests, {off['resamples']} bootstrap resamples, ties "
            f"broken with seed {off['tie_seed']}.", "",
            "| objective | model | heuristic | lift |", "|---|---|---|---|"]
        for objective, row in off["objectives"].items():
            lift = row["model"].get("lift")
            ci = row["model"].get("lift_ci95")
            lift_s = (f"{lift:+.1%} [{ci[0]:+.1%}, {ci[1]:+.1%}]"
                      if lift is not None and ci else "")
            lines.append(f"| {objective} | {row['model']['value']:.3f} "
                         f"{_ci(row['model']['ci95'])} | {row['heuristic']['value']:.3f} "
                         f"{_ci(row['heuristic']['ci95'])} | {lift_s} |")
        lines.append("")
        if estimator == "snips":
            lines += [f"The model's ranking puts {off['matched_share']['model']:.1%} of the "
                      "holdout impressions at their logged position within the top "
                      f"{off['k']} (the data the SNIPS estimate rests on); the heuristic's "
                      f"{off['matched_share']['heuristic']:.1%}.", ""]
    gate = extra.get("gate")
    if gate:
        lines += ["## Promotion gate", "",
                  "passed: a utility lift above zero over every baseline" if gate["promote"]
                  else "refused: " + "; ".join(gate["reasons"]), "",
                  "| estimator | baseline | utility lift | 95 % interval | passed |",
                  "|---|---|---|---|---|",
                  *[f"| {c['estimator']} | {c['baseline']} | "
                    f"{'' if c['lift'] is None else format(c['lift'], '+.1%')} | "
                    f"{_ci(c['lift_ci95'])} | {'yes' if c['passed'] else 'no'} |"
                    for c in gate["checks"]], ""]
    lines += [
        "## Diagnostics on the logged feeds (biased by the logging policy's order)", "",
        "| metric | model | heuristic (declared topics, then popularity) |", "|---|---|---|",
        f"| AUC of engaged | {m['auc_model']} | {m['auc_heuristic']} |",
        f"| NDCG@10 of engaged | {m['ndcg10_model']} | {m['ndcg10_heuristic']} |",
        f"| engagement@10 | {m['eng10_model']} | {m['eng10_heuristic']} |", "",
        "## Feature importances", "",
        "| feature | importance |", "|---|---|",
        *[f"| `{k}` | {v} |" for k, v in extra["importances"].items()],
        "", "![ROC and precision/recall of engaged](curves.png)", "",
    ]
    return "\n".join(lines)
