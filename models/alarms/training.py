"""Training, ONNX export and evaluation of the alarm detector (pure Python, no Flink).

``jobs/train_alarm_detector.py`` extracts features in Flink subtasks and calls these; the same
``OnnxScorer`` + ``detect_in_samples`` path is what ``onair detect`` runs, and the streaming job
scores with the same session and debouncer, so the reported event-level figures describe the
shipped model and policy.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from models.alarms.mel import FeatureSpec, clip_windows, feature_names
from models.alarms.pcm import read_wav
from models.alarms.stream import Debouncer, Detection, StreamPolicy, Window
from models.onnx_export import OnnxScorer
from models.registry import RegistryError


# What a registered alarm model carries besides the ONNX file (``ModelVersion.extra``): written
# by ``model_extra`` at training, read back by the accessors below wherever the model is used.
def model_extra(spec: FeatureSpec, policy: StreamPolicy, alarm_label: str) -> dict:
    return {"task": "alarm_detection", "alarm_label": alarm_label,
            "feature_spec": spec.as_dict(), "policy": asdict(policy)}


def feature_spec_of(mv) -> FeatureSpec:
    """The model's feature spec, refused (RegistryError) when this code computes other
    features than the model was trained on: a model older than a feature change would fail
    every batch it scores."""
    spec = FeatureSpec(**mv.extra["feature_spec"])
    now = feature_names(spec)
    if list(mv.feature_names) != now:
        new = [n for n in now if n not in mv.feature_names]
        raise RegistryError(
            f"{mv.ref} was trained on {len(mv.feature_names)} window features, this code "
            f"computes {len(now)} ({len(new)} new, e.g. {(new or ['none'])[0]}): train a new "
            "version (`onair alarms dataset`, then train_alarm_detector --promote)")
    return spec


def alarm_label_of(mv) -> str:
    return mv.extra["alarm_label"]


def threshold_of(mv) -> float | None:
    """The threshold chosen at training (None for a model registered without one)."""
    return policy_of(mv).get("threshold")


def policy_of(mv) -> dict:
    """The debounce policy the model was evaluated with at training (threshold, k, n, ...)."""
    return mv.extra.get("policy", {})


@dataclass(frozen=True)
class TrainParams:
    n_estimators: int = 120
    max_depth: int = 14
    min_samples_leaf: int = 2
    seed: int = 0


def file_windows(path: str | Path, spec: FeatureSpec) -> np.ndarray:
    """(windows, features) of one WAV file at the model's rate."""
    return clip_windows(read_wav(path, spec.sample_rate), spec)[1]


def train_forest(x: np.ndarray, y: np.ndarray, params: TrainParams):
    from sklearn.ensemble import RandomForestClassifier

    model = RandomForestClassifier(
        n_estimators=params.n_estimators, max_depth=params.max_depth,
        min_samples_leaf=params.min_samples_leaf, class_weight="balanced",
        random_state=params.seed, n_jobs=1, oob_score=True)
    return model.fit(x, y)


# The window false-positive rate the out-of-bag threshold is set for, chosen by `onair alarms
# evaluate` (leave one source out, docs/alarms.md): 0.005 missed more temporal-four alarms,
# 0.0075 let a held-out phone ringer through several times an hour.
TARGET_FPR = 0.006


def oob_threshold(model, y: np.ndarray, alarm: int, target_fpr: float) -> float:
    """The alarm probability that out-of-bag windows without an alarm exceed with frequency
    ``target_fpr``: a threshold chosen on training data only (each window scored by the trees
    that did not see it), so the holdout stays untouched. Kept within [0.5, 0.95]."""
    negatives = model.oob_decision_function_[y != alarm, alarm]
    return float(np.clip(np.quantile(negatives, 1.0 - target_fpr), 0.5, 0.95))


def debounce(probs: np.ndarray, spec: FeatureSpec, policy: StreamPolicy, labels: list[str],
             alarm_label: str, t0_ms: float = 0.0) -> list[Detection]:
    """Detections of consecutive windows (one every hop from ``t0_ms``) given their class
    probabilities: the streaming job's debouncer over a whole recording."""
    debouncer, out = Debouncer(policy), []
    for i, p in enumerate(probs):
        start = t0_ms + i * spec.hop_s * 1000.0
        window = Window(start, start + spec.window_s * 1000.0, np.zeros(0, np.float32))
        d = debouncer.decide(window, p, labels, alarm_label)
        if d:
            out.append(d)
    return out


def detect_in_samples(samples: np.ndarray, spec: FeatureSpec, policy: StreamPolicy,
                      scorer: OnnxScorer, labels: list[str], alarm_label: str,
                      t0_ms: float = 0.0) -> tuple[list[Detection], np.ndarray]:
    """A whole recording through the streaming path's windows and debouncer: detections and
    the windows' probabilities (window i starts at ``t0_ms + i * hop``)."""
    _, features = clip_windows(samples, spec)
    probs = scorer(features)
    return debounce(probs, spec, policy, labels, alarm_label, t0_ms), probs


def window_metrics(y_true: np.ndarray, alarm_p: np.ndarray, threshold: float) -> dict:
    pred = alarm_p >= threshold
    tp = int(np.sum(pred & y_true))
    fp = int(np.sum(pred & ~y_true))
    fn = int(np.sum(~pred & y_true))
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    from sklearn.metrics import roc_auc_score

    auc = float(roc_auc_score(y_true, alarm_p)) if 0 < y_true.sum() < len(y_true) else None
    return {"windows": len(y_true), "precision": round(precision, 4),
            "recall": round(recall, 4), "f1": round(f1, 4), "roc_auc": auc and round(auc, 4)}


def event_metrics(streams: list[dict], detections: dict[str, list[Detection]],
                  window_s: float) -> dict:
    """Per SNR: an alarm is detected when an alert's confirming window ends while it sounds
    or within one window after; every other alert is false. Delay = confirming window end -
    true onset (stream time; processing adds to it in the job)."""
    by_snr: dict[float, dict] = {}
    for s in streams:
        row = by_snr.setdefault(s["snr_db"], {"events": 0, "detected": 0, "false_alerts": 0,
                                              "delays_s": []})
        row["events"] += 1
        hit = False
        for d in detections.get(s["file"], []):
            end_s = d.window_end_ts / 1000.0
            if not hit and s["onset_s"] < end_s <= s["end_s"] + window_s:
                hit = True
                row["delays_s"].append(end_s - s["onset_s"])
            else:
                row["false_alerts"] += 1
        row["detected"] += hit
    out = {}
    for snr, r in sorted(by_snr.items()):
        tp, alerts = r["detected"], r["detected"] + r["false_alerts"]
        recall = tp / r["events"]
        precision = tp / alerts if alerts else 1.0
        delays = np.array(r["delays_s"]) if r["delays_s"] else np.array([np.nan])
        out[f"{snr:+.0f}dB"] = {
            "events": r["events"], "detection_rate": round(recall, 4),
            "precision": round(precision, 4),
            "f1": round(2 * precision * recall / (precision + recall), 4)
            if precision + recall else 0.0,
            "false_alerts": r["false_alerts"],
            "delay_p50_s": round(float(np.nanmedian(delays)), 2),
            "delay_p90_s": round(float(np.nanpercentile(delays, 90)), 2),
        }
    return out


def summarise_events(per_snr: dict, min_snr: float = 0.0) -> dict:
    """Event-level F1 pooled over SNR levels >= ``min_snr``."""
    rows = [r for k, r in per_snr.items() if float(k.removesuffix("dB")) >= min_snr]
    events = sum(r["events"] for r in rows)
    tp = sum(round(r["detection_rate"] * r["events"]) for r in rows)
    fa = sum(r["false_alerts"] for r in rows)
    recall = tp / events if events else 0.0
    precision = tp / (tp + fa) if tp + fa else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"events": events, "detection_rate": round(recall, 4),
            "precision": round(precision, 4), "f1": round(f1, 4)}


def report_markdown(meta: dict) -> str:
    m = meta["metrics"]
    lines = [f"# {meta['name']} training report", "",
             f"- model: RandomForest {json.dumps(meta['params'])}",
             f"- train windows: {m['train_windows']}; labels: {meta['labels']}",
             f"- ONNX parity (max |sklearn - onnx| on the holdout): {m['onnx_max_abs_diff']:.2e}",
             f"- stream policy: {json.dumps(meta.get('policy', {}))} (threshold chosen out of "
             f"bag on training windows; OOB accuracy {m.get('oob_accuracy')})",
             "", "## Window level (holdout clips)", "",
             "| precision | recall | F1 | ROC AUC |", "|---|---|---|---|",
             "| {precision} | {recall} | {f1} | {roc_auc} |".format(**m["window"]), "",
             "## Event level (holdout streams, one alarm each)", "",
             "| SNR | events | detection rate | precision | F1 | false alerts | delay p50 s "
             "| delay p90 s |", "|---|---|---|---|---|---|---|---|"]
    for snr, r in m["events"].items():
        lines.append(f"| {snr} | {r['events']} | {r['detection_rate']} | {r['precision']} | "
                     f"{r['f1']} | {r['false_alerts']} | {r['delay_p50_s']} | "
                     f"{r['delay_p90_s']} |")
    bg = m["background"]
    lines += ["", f"Event F1 at SNR >= 0 dB: {m['event_f1_snr_ge_0']}.",
              f"False alerts on {bg['hours']:.2f} h of background-only audio: "
              f"{bg['false_alerts']} ({bg['false_alerts_per_hour']:.2f} per hour).", ""]
    return "\n".join(lines)
