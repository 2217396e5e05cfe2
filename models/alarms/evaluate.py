"""Leave-one-source-out evaluation of the alarm detector: how it hears recordings of a source it
never trained on.

The real recordings are grouped by source (the folders of ``data/audio``). One pool of
training clips is drawn once, each clip tagged with the real sources in it. For each source
S, a model is trained (the production recipe: window features, a forest, the out-of-bag
threshold) on the clips without S, and scored on what only S gives:

* event streams: every alarm kind (``sounds.ALARM_KINDS``, drawn from a generator seed the
  pool never used, and S's own real alarms) mixed at known SNRs into S's real backgrounds, or
  into held-out generated backgrounds when S has none: detection rate, delay, false alerts
  before the onset;
* false alerts per hour on S's background recordings, replayed at levels from a near-silent
  room to loud, the quiet stretches included.

Nothing of S reaches the fold's training or its threshold. Pure logic: numpy and
scikit-learn, no Flink.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.alarms import sounds
from models.alarms.dataset import ALARM, DatasetConfig, Mixer, Sources
from models.alarms.mel import FeatureSpec, clip_windows
from models.alarms.pcm import read_wav
from models.alarms.stream import StreamPolicy
from models.alarms.training import (
    TARGET_FPR,
    TrainParams,
    debounce,
    oob_threshold,
    train_forest,
)

LABELS = [ALARM, "no_alarm"]


@dataclass(frozen=True)
class EvalConfig:
    real_audio: str
    clips_per_class: int = DatasetConfig.train_per_class
    streams: int = 3                  # per alarm kind and SNR, per source
    snrs_db: tuple[float, ...] = (-5.0, 0.0, 5.0, 10.0, 20.0)
    background_minutes: float = 30.0  # of each source's recordings, replayed at random levels
    seed: int = 11
    target_fpr: float = TARGET_FPR
    params: TrainParams = field(default_factory=TrainParams)
    stream_s: float = 24.0
    alarm_at_s: float = 8.0
    alarm_s: float = 8.0


@dataclass
class RealSource:
    name: str
    alarms: dict[str, np.ndarray]
    backgrounds: dict[str, np.ndarray]


def real_sources(root: str | Path, rate: int) -> dict[str, RealSource]:
    """Every source folder of ``root`` (``<source>/{alarm,background}/*.wav``)."""
    found: dict[str, RealSource] = {}
    for path in sorted(Path(root).glob("*/*/*.wav")):
        src = found.setdefault(path.parts[-3], RealSource(path.parts[-3], {}, {}))
        (src.alarms if path.parent.name == ALARM else src.backgrounds)[path.stem] = \
            read_wav(path, rate)
    return found


class _Tracking(Mixer):
    """A Mixer that remembers which real recordings went into the last clip."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.used: set[str] = set()

    def background(self, duration_s):
        x, name = super().background(duration_s)
        self.used.update(n for n in name.split("+") if n in self.sources.backgrounds)
        return x, name

    def alarm(self, duration_s):
        x, name = super().alarm(duration_s)
        if name in self.sources.alarms:
            self.used.add(name)
        return x, name


def training_pool(cfg: EvalConfig, sources: dict[str, RealSource], spec: FeatureSpec,
                  ) -> tuple[np.ndarray, np.ndarray, list[set[str]]]:
    """(features, labels, sources used) of ``clips_per_class`` clips of each class."""
    owner = {name: s.name for s in sources.values()
             for name in (*s.alarms, *s.backgrounds)}
    pool = Sources({n: x for s in sources.values() for n, x in s.alarms.items()},
                   {n: x for s in sources.values() for n, x in s.backgrounds.items()})
    mixer = _Tracking(DatasetConfig(out="", rate=spec.sample_rate), pool,
                      np.random.default_rng([cfg.seed, 1]))
    rows, labels, tags = [], [], []
    for _ in range(cfg.clips_per_class):
        for label in LABELS:
            mixer.used = set()
            x = (mixer.alarm_clip()[0] if label == ALARM
                 else mixer.background_clip(mixer.cfg.clip_s)[0])
            _, features = clip_windows(x, spec)
            rows.append(features)
            labels += [LABELS.index(label)] * len(features)
            tags += [{owner[n] for n in mixer.used}] * len(features)
    return np.concatenate(rows), np.array(labels), tags


def _replay(clips: list[np.ndarray], minutes: float, rate: int,
            rng: np.random.Generator, levels_dbfs: tuple[float, float]) -> np.ndarray:
    """``minutes`` of a source's recordings, each at its own level in ``levels_dbfs`` (RMS: the
    dataset's range, from a near-silent room to loud), with a quiet pause of 0.5–4 s after
    each (a short clip looped back to back would make a tone continuous that never is: a
    ringback burst, a beep)."""
    out, n = [], 0
    while n < minutes * 60 * rate:
        clip = sounds.normalise(sounds.pick(rng, clips),
                                10 ** (rng.uniform(*levels_dbfs) / 20))
        pause = sounds.room_tone(rng.uniform(0.5, 4.0), rate, rng)
        out += [clip, pause]
        n += len(clip) + len(pause)
    return np.concatenate(out)[: round(minutes * 60 * rate)]


def _scorer(model):
    return lambda x: model.predict_proba(x).astype(np.float32)


def evaluate_source(cfg: EvalConfig, held_out: RealSource, model, threshold: float,
                    spec: FeatureSpec) -> dict:
    """One fold's figures for ``held_out``."""
    rate, rng = spec.sample_rate, np.random.default_rng(
        [cfg.seed, 2, zlib.crc32(held_out.name.encode())])
    policy = StreamPolicy(threshold=threshold)
    score = _scorer(model)
    # Backgrounds as they come: drawing tonal ones more often is a training choice.
    generated = Mixer(DatasetConfig(out="", rate=rate, tonal_share=0.0), Sources({}, {}), rng)
    backgrounds = list(held_out.backgrounds.values())
    levels = generated.cfg.background_level_dbfs
    kinds: dict[str, object] = {k: None for k in sounds.ALARM_KINDS}
    kinds.update({f"real:{n}": x for n, x in held_out.alarms.items()})
    events = []
    for kind, recording in kinds.items():
        for snr in cfg.snrs_db:
            for _ in range(cfg.streams):
                if backgrounds:
                    bg = _replay(backgrounds, cfg.stream_s / 60, rate, rng, levels)
                else:
                    bg = generated.background(cfg.stream_s)[0]
                if recording is None:
                    alarm = sounds.alarm_sound(kind, cfg.alarm_s, rate, rng)
                    if rng.random() < 0.5:
                        alarm = sounds.room(alarm, rate, rng)
                else:
                    alarm = np.resize(recording, round(cfg.alarm_s * rate))
                x = sounds.mix_at_snr(bg, alarm, round(cfg.alarm_at_s * rate), snr)
                x = generated.finish(x, rng.uniform(*generated.cfg.alarm_level_dbfs))
                _, feats = clip_windows(x, spec)
                dets = debounce(score(feats), spec, policy, LABELS, ALARM)
                onset, end = cfg.alarm_at_s * 1000, (cfg.alarm_at_s + cfg.alarm_s) * 1000
                hits = [d for d in dets if onset - spec.window_s * 1000 < d.window_end_ts
                        and d.onset_ts <= end]
                events.append({"kind": kind, "snr_db": snr, "detected": bool(hits),
                               "delay_s": (hits[0].window_end_ts - onset) / 1000 if hits
                               else None, "false": len(dets) - len(hits)})
    out = {"source": held_out.name, "threshold": round(threshold, 4), "events": events}
    if backgrounds:
        audio = _replay(backgrounds, cfg.background_minutes, rate, rng, levels)
        _, feats = clip_windows(audio, spec)
        alerts = debounce(score(feats), spec, policy, LABELS, ALARM)
        out["background_hours"] = len(audio) / rate / 3600
        out["background_false_alerts"] = len(alerts)
    return out


def leave_one_source_out(cfg: EvalConfig, progress=None) -> dict:
    """Every real source held out in turn; the figures by source, by kind and by SNR."""
    spec = FeatureSpec()
    sources = real_sources(cfg.real_audio, spec.sample_rate)
    x, y, tags = training_pool(cfg, sources, spec)
    alarm = LABELS.index(ALARM)
    folds = []
    for name, src in sources.items():
        keep = np.array([name not in t for t in tags])
        model = train_forest(x[keep], y[keep], cfg.params)
        threshold = oob_threshold(model, y[keep], alarm, cfg.target_fpr)
        folds.append(evaluate_source(cfg, src, model, threshold, spec))
        if progress:
            progress(folds[-1])
    return summarise(folds, cfg)


def _rate(events: list[dict]) -> float | None:
    return round(sum(e["detected"] for e in events) / len(events), 3) if events else None


def _f1(events: list[dict]) -> float | None:
    tp = sum(e["detected"] for e in events)
    fp = sum(e["false"] for e in events)
    if not events:
        return None
    recall = tp / len(events)
    precision = tp / (tp + fp) if tp + fp else 1.0
    return round(2 * precision * recall / (precision + recall), 3) if tp else 0.0


def poisson_interval(count: int, hours: float, level: float = 0.95) -> tuple[float, float]:
    """Exact (Garwood) interval of a rate per hour from `count` events in `hours`: a handful of
    false alerts pins the hourly rate only loosely, and the report says how loosely."""
    from scipy.stats import chi2

    tail = (1 - level) / 2
    low = chi2.ppf(tail, 2 * count) / 2 if count else 0.0
    high = chi2.ppf(1 - tail, 2 * count + 2) / 2
    return round(float(low) / hours, 2), round(float(high) / hours, 2)


def _delay(events: list[dict], percentile: float) -> float | None:
    """That percentile of the detected events' delays, s."""
    delays = [e["delay_s"] for e in events if e["delay_s"] is not None]
    return round(float(np.percentile(delays, percentile)), 2) if delays else None


def _loud(events: list[dict]) -> list[dict]:
    return [e for e in events if e["snr_db"] >= 0]


def summarise(folds: list[dict], cfg: EvalConfig) -> dict:
    loud = _loud([e for f in folds for e in f["events"]])
    hours = sum(f.get("background_hours", 0) for f in folds)
    false = sum(f.get("background_false_alerts", 0) for f in folds)
    kinds = sorted({e["kind"].split(":")[0] for f in folds for e in f["events"]})
    return {
        "event_f1_snr_ge_0": _f1(loud),
        "detection_rate_snr_ge_0": _rate(loud),
        "delay_s_p50": _delay(loud, 50),
        "delay_s_p90": _delay(loud, 90),
        "delay_s_p99": _delay(loud, 99),
        "false_alerts_per_hour": round(false / hours, 2) if hours else None,
        "false_alerts_per_hour_95ci": poisson_interval(false, hours) if hours else None,
        "false_alerts": false,
        "background_hours": round(hours, 3),
        "by_source": {f["source"]: {
            "event_f1_snr_ge_0": _f1(_loud(f["events"])),
            "detection_rate_snr_ge_0": _rate(_loud(f["events"])),
            "delay_s_p50": _delay(_loud(f["events"]), 50),
            "false_alerts_per_hour": round(f["background_false_alerts"] / f["background_hours"],
                                           2) if f.get("background_hours") else None,
            "threshold": f["threshold"]} for f in folds},
        "by_kind_snr_ge_0": {k: _rate([e for e in loud if e["kind"].split(":")[0] == k])
                             for k in kinds},
        "by_snr": {f"{s:+.0f}dB": _rate([e for f in folds for e in f["events"]
                                         if e["snr_db"] == s]) for s in cfg.snrs_db},
        "config": {"clips_per_class": cfg.clips_per_class, "streams": cfg.streams,
                   "seed": cfg.seed, "target_fpr": cfg.target_fpr},
    }


def report_markdown(summary: dict) -> str:
    lines = ["# Alarm detector, leave one source out", "",
             f"Event F1 at SNR ≥ 0 dB: **{summary['event_f1_snr_ge_0']}**; detection rate "
             f"{summary['detection_rate_snr_ge_0']}; delay p50 {summary['delay_s_p50']} s, p90 "
             f"{summary['delay_s_p90']} s, p99 {summary['delay_s_p99']} s; false alerts per "
             f"hour on real backgrounds "
             f"**{summary['false_alerts_per_hour']}** ({summary['false_alerts']} alerts in "
             f"{summary['background_hours']} h; 95 % interval "
             f"{summary['false_alerts_per_hour_95ci']}).", "",
             "| held-out source | event F1 ≥ 0 dB | detection ≥ 0 dB | delay p50 | "
             "false alerts/h | threshold |", "|---|---|---|---|---|---|"]
    for name, s in summary["by_source"].items():
        fa = "no backgrounds" if s["false_alerts_per_hour"] is None else s["false_alerts_per_hour"]
        lines.append(f"| {name} | {s['event_f1_snr_ge_0']} | {s['detection_rate_snr_ge_0']} | "
                     f"{s['delay_s_p50']} s | {fa} | {s['threshold']} |")
    lines += ["", "| alarm kind | detected at ≥ 0 dB |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in summary["by_kind_snr_ge_0"].items()]
    lines += ["", "| SNR | detected |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in summary["by_snr"].items()]
    return "\n".join(lines) + "\n"
