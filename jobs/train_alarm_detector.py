"""train_alarm_detector (bounded): log-mel window features in parallel Flink subtasks, one audio
file per record; a Random Forest trained on them, exported to ONNX with parity checked,
evaluated (window level, event level per SNR, false alerts per hour of background) and
registered with its report. ``--promote`` moves the ``production`` alias to it.

    flink run -py jobs/train_alarm_detector.py -pyfs operators,models,connectors \\
        -- --dataset DIR [--promote]

DIR is what ``onair alarms dataset`` writes: ``train/<class>/*.wav`` (labels = folder names,
alphabetical), ``holdout/<class>/*.wav``, ``events/streams`` and ``events/background``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from pyflink.common import Types
from pyflink.datastream import MapFunction

from connectors.flink_env import FlinkJobSettings, stream_env
from connectors.job_config import add_alarm_policy_flags, alarm_policy, env_default
from models.alarm_dataset import class_files
from models.alarm_training import (
    TrainParams,
    debounce,
    event_metrics,
    file_windows,
    model_extra,
    oob_threshold,
    report_markdown,
    summarise_events,
    train_forest,
    window_metrics,
)
from models.onnx_export import OnnxScorer, curves_png, parity, to_onnx
from models.registry import Registry, fingerprint_files
from operators.audio_features import FeatureSpec, feature_names
from operators.audio_stream import StreamPolicy

JOB = "train_alarm_detector"


@dataclass(frozen=True)
class TrainAlarmConfig:
    dataset: Path
    name: str
    alarm_label: str
    spec: FeatureSpec
    policy: StreamPolicy
    params: TrainParams
    flink: FlinkJobSettings
    promote: bool
    target_fpr: float
    fixed_threshold: bool

    @classmethod
    def from_args(cls, argv: list[str] | None = None) -> TrainAlarmConfig:
        p = argparse.ArgumentParser(prog=JOB, description=__doc__.splitlines()[0])
        p.add_argument("--dataset", required=True, help="dataset folder (onair alarms dataset)")
        p.add_argument("--name", default=env_default("ALARM_MODEL", "alarm_detector"),
                       help="registry model name (env ALARM_MODEL)")
        p.add_argument("--alarm-label", default="alarm", help="the class that raises alerts")
        p.add_argument("--parallelism", type=int, default=2, help="feature-extraction subtasks")
        p.add_argument("--window-s", type=float, default=FeatureSpec.window_s)
        p.add_argument("--hop-s", type=float, default=FeatureSpec.hop_s)
        p.add_argument("--fmin-hz", type=float, default=FeatureSpec.fmin_hz,
                       help="band crop, low edge")
        p.add_argument("--fmax-hz", type=float, default=FeatureSpec.fmax_hz,
                       help="band crop, high edge")
        p.add_argument("--n-estimators", type=int, default=TrainParams.n_estimators)
        p.add_argument("--max-depth", type=int, default=TrainParams.max_depth)
        p.add_argument("--seed", type=int, default=TrainParams.seed)
        p.add_argument("--target-fpr", type=float, default=0.001,
                       help="window false-positive rate the default threshold is set for "
                            "(out-of-bag, training data only; --threshold overrides)")
        p.add_argument("--promote", action="store_true",
                       help="point the production alias at the new version")
        add_alarm_policy_flags(p)
        a = p.parse_args(argv)
        dataset = Path(a.dataset).resolve()
        if not (dataset / "train").is_dir():
            p.error(f"{dataset}/train not found: build a dataset with "
                    f"`onair alarms dataset --out {a.dataset}`")
        try:
            spec = FeatureSpec(window_s=a.window_s, hop_s=a.hop_s, fmin_hz=a.fmin_hz,
                               fmax_hz=a.fmax_hz)
            policy = alarm_policy(a)
        except ValueError as e:
            p.error(str(e))
        return cls(dataset, a.name, a.alarm_label, spec, policy,
                   TrainParams(a.n_estimators, a.max_depth, seed=a.seed),
                   FlinkJobSettings(parallelism=a.parallelism, python_mode="process",
                                    batch=True), a.promote, a.target_fpr, a.threshold is not None)


class ExtractFeatures(MapFunction):
    """(kind, key, path) -> pickled (kind, key, path, windows x features)."""

    def __init__(self, spec: dict):
        self.spec = spec

    def open(self, runtime_context) -> None:
        self.features = FeatureSpec(**self.spec)

    def map(self, value):
        kind, key, path = value
        return kind, key, path, file_windows(path, self.features)


def _records(cfg: TrainAlarmConfig) -> tuple[list[tuple[str, str, str]], list[str], list[dict]]:
    train = class_files(cfg.dataset / "train")
    labels = sorted(train)
    if cfg.alarm_label not in labels:
        raise SystemExit(f"no {cfg.alarm_label!r} class folder in {cfg.dataset / 'train'}")
    records = [("train", label, str(p)) for label, paths in train.items() for p in paths]
    if (cfg.dataset / "holdout").is_dir():
        records += [("holdout", label, str(p)) for label, paths in
                    class_files(cfg.dataset / "holdout").items() for p in paths]
    streams = []
    events = cfg.dataset / "events"
    if (events / "streams.json").exists():
        streams = json.loads((events / "streams.json").read_text())
        records += [("stream", s["file"], str(events / "streams" / s["file"])) for s in streams]
    records += [("background", p.name, str(p))
                for p in sorted((events / "background").glob("*.wav"))]
    return records, labels, streams


def extract(cfg: TrainAlarmConfig, records: list[tuple[str, str, str]]) -> list[tuple]:
    env = stream_env(cfg.flink)
    ds = env.from_collection(records, type_info=Types.TUPLE(
        [Types.STRING(), Types.STRING(), Types.STRING()]))
    features = (ds.rebalance()
                .map(ExtractFeatures(cfg.spec.as_dict()), output_type=Types.PICKLED_BYTE_ARRAY())
                .name("log-mel-features"))
    with features.execute_and_collect(f"{JOB}-features") as results:
        return list(results)


def train_and_register(cfg: TrainAlarmConfig, rows: list[tuple], labels: list[str],
                       streams: list[dict]) -> dict:
    by_kind: dict[str, list[tuple]] = {}
    for kind, key, path, x in rows:
        by_kind.setdefault(kind, []).append((key, path, x))

    def matrix(kind: str) -> tuple[np.ndarray, np.ndarray]:
        items = sorted(by_kind.get(kind, []), key=lambda r: r[1])  # subtasks finish in any order
        x = [m for _, _, m in items if len(m)]
        y = [labels.index(k) for k, _, m in items for _ in range(len(m))]
        return (np.concatenate(x) if x else np.zeros((0, cfg.spec.n_features), np.float32),
                np.array(y, dtype=np.int64))

    x_train, y_train = matrix("train")
    t = time.perf_counter()
    model = train_forest(x_train, y_train, cfg.params)
    fit_s = time.perf_counter() - t
    alarm = labels.index(cfg.alarm_label)
    if not cfg.fixed_threshold:
        cfg = replace(cfg, policy=replace(
            cfg.policy, threshold=oob_threshold(model, y_train, alarm, cfg.target_fpr)))
    onnx_bytes = to_onnx(model, cfg.spec.n_features)
    scorer = OnnxScorer(onnx_bytes)
    x_hold, y_hold = matrix("holdout")
    diff = parity(model, scorer, x_hold if len(x_hold) else x_train)
    if diff > 1e-5:
        raise SystemExit(f"ONNX parity failed: max |sklearn - onnx| = {diff:.2e} > 1e-5")
    metrics: dict = {"train_windows": len(y_train), "fit_s": round(fit_s, 2),
                     "onnx_max_abs_diff": diff, "threshold": round(cfg.policy.threshold, 4),
                     "oob_accuracy": round(model.oob_score_, 4)}
    artifacts = {}
    if len(x_hold):
        p_hold = scorer(x_hold)[:, alarm]
        metrics["window"] = window_metrics(y_hold == alarm, p_hold, cfg.policy.threshold)
        artifacts["curves.png"] = curves_png(y_hold == alarm, p_hold, f"{cfg.name} holdout")
    dets = {key: debounce(scorer(x), cfg.spec, cfg.policy, labels, cfg.alarm_label)
            for key, _, x in by_kind.get("stream", [])}
    metrics["events"] = event_metrics(streams, dets, cfg.spec.window_s)
    metrics["event_f1_snr_ge_0"] = summarise_events(metrics["events"], 0.0)["f1"]
    bg = [x for _, _, x in by_kind.get("background", [])]
    hours = sum((len(x) - 1) * cfg.spec.hop_s + cfg.spec.window_s for x in bg if len(x)) / 3600
    false_alerts = sum(len(debounce(scorer(x), cfg.spec, cfg.policy, labels, cfg.alarm_label))
                       for x in bg if len(x))
    metrics["background"] = {"hours": round(hours, 3), "false_alerts": false_alerts,
                             "false_alerts_per_hour": round(false_alerts / hours, 3)
                             if hours else None}
    registry = Registry()
    meta_preview = {"name": cfg.name, "labels": labels, "params": asdict(cfg.params),
                    "metrics": metrics, "policy": asdict(cfg.policy)}
    artifacts["report.md"] = report_markdown(meta_preview).encode()
    files = [Path(p) for _, _, p, _ in rows]
    mv = registry.register(
        cfg.name, onnx_bytes, feature_names=feature_names(cfg.spec), labels=labels,
        params=asdict(cfg.params), metrics=metrics,
        data_fingerprint={**fingerprint_files(files, cfg.dataset),
                          "rows": {k: len(v) for k, v in by_kind.items()}},
        extra=model_extra(cfg.spec, cfg.policy, cfg.alarm_label),
        artifacts=artifacts)
    if cfg.promote:
        registry.promote(cfg.name, mv.version)
    return {"model": mv.ref, "promoted": cfg.promote,
            "report": str(registry.version_dir(mv) / "report.md"), **metrics}


def main(argv: list[str] | None = None) -> None:
    cfg = TrainAlarmConfig.from_args(argv)
    records, labels, streams = _records(cfg)
    t = time.perf_counter()
    rows = extract(cfg, records)
    extract_s = time.perf_counter() - t
    summary = train_and_register(cfg, rows, labels, streams)
    summary["extract_s"] = round(extract_s, 1)
    print(json.dumps(summary))


if __name__ == "__main__":
    main(sys.argv[1:])
