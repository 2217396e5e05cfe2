"""train_alarm_detector (bounded): log-mel window features in parallel Flink subtasks, one audio
file per record; a Random Forest trained on them, exported to ONNX with parity checked,
evaluated (window level, event level per SNR, false alerts per hour of background) and
registered with its report. ``--promote`` moves the ``production`` alias to it.

    flink run -py jobs/train_alarm_detector.py -pyfs core,models,connectors,operators \\
        -- --dataset DIR [--promote]

DIR is what ``onair alarms dataset`` writes: ``train/<class>/*.wav`` (labels = folder names,
alphabetical), ``holdout/<class>/*.wav``, ``events/streams`` and ``events/background``.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from pyflink.common import Types
from pyflink.datastream import DataStream, StreamExecutionEnvironment

from connectors.flink_env import stream_env
from core.config import group, option, parse
from core.settings import BatchJobSettings
from models.alarms.dataset import class_files
from models.alarms.mel import FeatureSpec, feature_names
from models.alarms.stream import PolicyOptions, StreamPolicy
from models.alarms.training import (
    TARGET_FPR,
    TrainParams,
    debounce,
    event_metrics,
    model_extra,
    oob_threshold,
    report_markdown,
    summarise_events,
    train_forest,
    window_metrics,
)
from models.onnx_export import OnnxScorer, curves_png, parity, to_onnx
from models.registry import Registry, fingerprint_files
from operators.alarms import ExtractFeatures

JOB = "train_alarm_detector"


@dataclass(frozen=True)
class TrainAlarmConfig:
    dataset: str | None = option(None, "dataset folder (onair alarms dataset --out DIR)",
                                 required=True)
    name: str = option("alarm_detector", "registry model name", legacy_env=("ALARM_MODEL",))
    alarm_label: str = option("alarm", "the class that raises alerts")
    window_s: float = option(FeatureSpec.window_s, "window length, s", minimum=0.1)
    hop_s: float = option(FeatureSpec.hop_s, "hop between windows, s", minimum=0.01)
    fmin_hz: float = option(FeatureSpec.fmin_hz, "band crop, low edge, Hz", minimum=0)
    fmax_hz: float = option(FeatureSpec.fmax_hz, "band crop, high edge, Hz", minimum=1)
    n_estimators: int = option(TrainParams.n_estimators, "trees in the forest", minimum=1)
    max_depth: int = option(TrainParams.max_depth, "deepest a tree grows", minimum=1)
    seed: int = option(TrainParams.seed, "random seed")
    target_fpr: float = option(TARGET_FPR, "window false-positive rate the default threshold is "
                               "set for (out-of-bag, training data only; --threshold overrides)",
                               minimum=0.0, maximum=1.0)
    promote: bool = option(False, "point the production alias at the new version")
    policy: PolicyOptions = group(PolicyOptions)
    # Many files per bundle: one file is light work, a bundle per file would cost more.
    flink: BatchJobSettings = group(BatchJobSettings, bundle_size=1000)

    @property
    def root(self) -> Path:
        return Path(self.dataset).resolve()

    @property
    def spec(self) -> FeatureSpec:
        return FeatureSpec(window_s=self.window_s, hop_s=self.hop_s, fmin_hz=self.fmin_hz,
                           fmax_hz=self.fmax_hz)

    @property
    def params(self) -> TrainParams:
        return TrainParams(self.n_estimators, self.max_depth, seed=self.seed)

    @property
    def stream_policy(self) -> StreamPolicy:
        return self.policy.policy()

    @property
    def fixed_threshold(self) -> bool:
        return self.policy.threshold is not None


def build_pipeline(env: StreamExecutionEnvironment, cfg: TrainAlarmConfig,
                   records: list[tuple[str, str, str]]) -> DataStream:
    """(kind, key, path) of every audio file -> its window features, in parallel subtasks."""
    return (env.from_collection(records, type_info=Types.TUPLE(
                [Types.STRING(), Types.STRING(), Types.STRING()]))
            .rebalance()
            .map(ExtractFeatures(cfg.spec.as_dict()), output_type=Types.PICKLED_BYTE_ARRAY())
            .name("log-mel-features"))


def _records(cfg: TrainAlarmConfig) -> tuple[list[tuple[str, str, str]], list[str], list[dict]]:
    train = class_files(cfg.root / "train")
    labels = sorted(train)
    if cfg.alarm_label not in labels:
        raise SystemExit(f"no {cfg.alarm_label!r} class folder in {cfg.root / 'train'}")
    records = [("train", label, str(p)) for label, paths in train.items() for p in paths]
    if (cfg.root / "holdout").is_dir():
        records += [("holdout", label, str(p)) for label, paths in
                    class_files(cfg.root / "holdout").items() for p in paths]
    streams = []
    events = cfg.root / "events"
    if (events / "streams.json").exists():
        streams = json.loads((events / "streams.json").read_text())
        records += [("stream", s["file"], str(events / "streams" / s["file"])) for s in streams]
    records += [("background", p.name, str(p))
                for p in sorted((events / "background").glob("*.wav"))]
    return records, labels, streams


def extract(cfg: TrainAlarmConfig, records: list[tuple[str, str, str]]) -> list[tuple]:
    features = build_pipeline(stream_env(cfg.flink.runtime()), cfg, records)
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
                     "onnx_max_abs_diff": diff, "threshold": round(cfg.stream_policy.threshold, 4),
                     "oob_accuracy": round(model.oob_score_, 4)}
    artifacts = {}
    if len(x_hold):
        p_hold = scorer(x_hold)[:, alarm]
        metrics["window"] = window_metrics(y_hold == alarm, p_hold, cfg.stream_policy.threshold)
        artifacts["curves.png"] = curves_png(y_hold == alarm, p_hold, f"{cfg.name} holdout")
    dets = {key: debounce(scorer(x), cfg.spec, cfg.stream_policy, labels, cfg.alarm_label)
            for key, _, x in by_kind.get("stream", [])}
    metrics["events"] = event_metrics(streams, dets, cfg.spec.window_s)
    metrics["event_f1_snr_ge_0"] = summarise_events(metrics["events"], 0.0)["f1"]
    bg = [x for _, _, x in by_kind.get("background", [])]
    hours = sum((len(x) - 1) * cfg.spec.hop_s + cfg.spec.window_s for x in bg if len(x)) / 3600
    policy = cfg.stream_policy
    false_alerts = sum(len(debounce(scorer(x), cfg.spec, policy, labels, cfg.alarm_label))
                       for x in bg if len(x))
    metrics["background"] = {"hours": round(hours, 3), "false_alerts": false_alerts,
                             "false_alerts_per_hour": round(false_alerts / hours, 3)
                             if hours else None}
    registry = Registry()
    meta_preview = {"name": cfg.name, "labels": labels, "params": asdict(cfg.params),
                    "metrics": metrics, "policy": asdict(cfg.stream_policy)}
    artifacts["report.md"] = report_markdown(meta_preview).encode()
    files = [Path(p) for _, _, p, _ in rows]
    mv = registry.register(
        cfg.name, onnx_bytes, feature_names=feature_names(cfg.spec), labels=labels,
        params=asdict(cfg.params), metrics=metrics,
        data_fingerprint={**fingerprint_files(files, cfg.root),
                          "rows": {k: len(v) for k, v in by_kind.items()}},
        extra=model_extra(cfg.spec, cfg.stream_policy, cfg.alarm_label),
        artifacts=artifacts)
    if cfg.promote:
        registry.promote(cfg.name, mv.version)
    return {"model": mv.ref, "promoted": cfg.promote,
            "report": str(registry.version_dir(mv) / "report.md"), **metrics}


def main(argv: list[str] | None = None) -> None:
    cfg = parse(TrainAlarmConfig, JOB, argv, __doc__.splitlines()[0])
    if not (cfg.root / "train").is_dir():
        sys.exit(f"{JOB}: {cfg.root}/train not found: build a dataset with "
                 f"`onair alarms dataset --out {cfg.dataset}`")
    records, labels, streams = _records(cfg)
    t = time.perf_counter()
    rows = extract(cfg, records)
    extract_s = time.perf_counter() - t
    summary = train_and_register(cfg, rows, labels, streams)
    summary["extract_s"] = round(extract_s, 1)
    print(json.dumps(summary))


if __name__ == "__main__":
    main(sys.argv[1:])
