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

    def as_dict(self) -> dict:
        return asdict(self)


def tree_tasks(params: RankerParams, parts: int) -> list[tuple[int, int]]:
    """(seed, trees) of each part: distinct seeds, trees split as evenly as possible."""
    parts = max(1, min(parts, params.trees))
    base, extra = divmod(params.trees, parts)
    return [(params.seed * 1000 + i, base + (i < extra)) for i in range(parts)]


def load_rows(files: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(features in ``FEATURE_ORDER``, labels) of training-row Parquet files."""
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    return frame[list(FEATURE_ORDER)].to_numpy("float32"), frame["label"].to_numpy()


def train_part(x: np.ndarray, y: np.ndarray, params: RankerParams, seed: int, trees: int):
    from sklearn.ensemble import RandomForestClassifier

    model = RandomForestClassifier(n_estimators=trees, max_depth=params.max_depth,
                                   min_samples_leaf=params.min_samples_leaf,
                                   max_features=params.max_features, random_state=seed,
                                   n_jobs=1)
    return model.fit(x.astype(np.float32), y)


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


def evaluate(holdout: pd.DataFrame, p_model: np.ndarray) -> dict:
    from sklearn.metrics import roc_auc_score

    y = holdout["label"].to_numpy()
    req = holdout["request_id"].to_numpy()
    h = heuristic_of_rows(holdout)
    model_rank = ranking_metrics(req, y, p_model, K)
    heur_rank = ranking_metrics(req, y, h, K)

    def lift(a, b):
        return round((a - b) / b, 4) if b else None

    return {
        "holdout_rows": len(holdout), "holdout_positives": int(y.sum()),
        "holdout_requests": model_rank["requests"],
        "auc_model": round(float(roc_auc_score(y, p_model)), 4) if 0 < y.sum() < len(y) else None,
        "auc_heuristic": round(float(roc_auc_score(y, h)), 4) if 0 < y.sum() < len(y) else None,
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


def report_markdown(meta: dict) -> str:
    m = meta["metrics"]
    lines = [
        f"# {meta['name']} training report", "",
        f"- model: RandomForest {json.dumps(meta['params'])}, grown in "
        f"{meta['extra']['tree_tasks']} parallel parts",
        f"- training days {meta['extra']['train_days'][0]} .. {meta['extra']['train_days'][-1]}"
        f" ({m['train_rows']} impressions), holdout days {meta['extra']['eval_days'][0]} .. "
        f"{meta['extra']['eval_days'][-1]} ({m['holdout_rows']} impressions, "
        f"{m['holdout_requests']} requests with an engagement)",
        f"- label: engaged (like, follow, notifications on, or 5+ min listened) after the "
        f"impression; positives in training {m['train_positive_rate']:.3f}",
        f"- ONNX parity: max |sklearn - onnx| = {m['onnx_max_abs_diff']:.2e}", "",
        "| metric | model | heuristic (declared topics, then popularity) | lift |",
        "|---|---|---|---|",
        f"| AUC | {m['auc_model']} | {m['auc_heuristic']} | |",
        f"| NDCG@10 | {m['ndcg10_model']} | {m['ndcg10_heuristic']} | {m['ndcg10_lift']:+.1%} |",
        f"| engagement@10 | {m['eng10_model']} | {m['eng10_heuristic']} | "
        f"{m['eng10_lift']:+.1%} |", "",
        "NDCG@10 and engagement@10 re-rank each holdout request's logged feed (20 shows) and "
        "count the engaged shows in the top 10; requests without an engagement are left out.",
        "", "## Feature importances", "",
        "| feature | importance |", "|---|---|",
        *[f"| `{k}` | {v} |" for k, v in meta["extra"]["importances"].items()],
        "", "![ROC and precision/recall](curves.png)", "",
    ]
    return "\n".join(lines)
