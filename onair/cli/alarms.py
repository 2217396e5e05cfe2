"""``onair alarms dataset``, ``onair produce-audio``, ``onair detect``, ``onair models``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from core.config import group, option
from core.settings import audio_dir
from models.alarms.stream import PolicyOptions
from onair.cli.common import CliError, kafka_settings


def cmd_alarms(args: argparse.Namespace) -> int:
    if args.real_audio and not Path(args.real_audio).is_dir():
        raise CliError(f"--real-audio {args.real_audio} is not a folder")
    if args.action == "evaluate":
        return cmd_evaluate(args)
    if not args.out:
        raise CliError("`onair alarms dataset --out DIR`")
    return cmd_dataset(args)


def _given(**flags) -> dict:
    """The flags the user set: unset ones keep the config dataclass's defaults."""
    return {k: v for k, v in flags.items() if v is not None}


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Leave one source out: a model per real source, scored on what only that source gives."""
    from models.alarms.evaluate import EvalConfig, leave_one_source_out, report_markdown

    cfg = EvalConfig(real_audio=args.real_audio, **_given(
        clips_per_class=args.train_per_class, target_fpr=args.target_fpr,
        streams=args.streams_per_snr, background_minutes=args.background_minutes,
        seed=args.seed))

    def progress(fold: dict) -> None:
        print(f"held out {fold['source']}: threshold {fold['threshold']}", file=sys.stderr)

    summary = leave_one_source_out(cfg, progress)
    report = report_markdown(summary)
    if args.out:
        Path(args.out).write_text(report, encoding="utf-8")
        print(f"report: {args.out}", file=sys.stderr)
    print(json.dumps(summary) if args.json else report)
    return 0


def cmd_dataset(args: argparse.Namespace) -> int:
    from models.alarms.dataset import DatasetConfig, build_dataset

    cfg = DatasetConfig(out=args.out, real_audio=args.real_audio,
                        **_given(train_per_class=args.train_per_class,
                                 holdout_per_class=args.holdout_per_class,
                                 holdout_streams=args.streams_per_snr,
                                 background_minutes=args.background_minutes, seed=args.seed))
    manifest = build_dataset(cfg)
    print(f"wrote {args.out}: {len(manifest['train'])} train and {len(manifest['holdout'])} "
          f"holdout clips, {len(cfg.snrs_db) * cfg.holdout_streams} event streams, "
          f"{cfg.background_minutes:g} min of background; real recordings in training: "
          f"{len(manifest['real_train'])}, held out: {len(manifest['real_holdout'])}")
    return 0


def _read_audio(path: str, rate: int | None = None):
    from models.alarms.pcm import SUPPORTED_RATES, read_wav

    if not Path(path).is_file():
        raise CliError(f"no such audio file: {path}")
    import soundfile

    try:
        native = soundfile.info(path).samplerate
    except RuntimeError as e:
        raise CliError(f"{path} is not a readable audio file ({e}); use WAV or FLAC") from None
    rate = rate or (native if native in SUPPORTED_RATES else 16_000)
    return read_wav(path, rate), rate


def cmd_produce_audio(args: argparse.Namespace) -> int:
    from connectors.kafka_admin import producer
    from models.alarms.pcm import chunk_messages

    samples, rate = _read_audio(args.file, args.rate)
    kafka = kafka_settings()
    topic = kafka.topic("audio-chunks")
    p = producer(kafka)
    t0 = args.start_ts if args.start_ts is not None else int(time.time() * 1000)
    started = time.monotonic()
    sent = 0
    for msg in chunk_messages(samples, rate, args.stream, t0, args.chunk_ms, args.seq0):
        if args.realtime:
            # Pace by the audio clock: chunk n leaves when its audio would have been captured.
            delay = (msg["ts"] - t0) / 1000.0 + args.chunk_ms / 1000.0 - (
                time.monotonic() - started)
            if delay > 0:
                time.sleep(delay)
        p.send(topic, json.dumps(msg).encode(), key=args.stream.encode())
        sent += 1
    p.flush()
    p.close()
    print(f"produced {sent} chunks ({len(samples) / rate:.1f} s at {rate} Hz) of stream "
          f"{args.stream} to {topic}", file=sys.stderr)
    return 0


@dataclass(frozen=True)
class DetectOptions:
    """``onair detect``'s options: the model and the policy, as detect_alarms takes them."""

    model: str = option("alarm_detector", "registry model name", legacy_env=("ALARM_MODEL",))
    model_version: str = option("production", "version or alias")
    policy: PolicyOptions = group(PolicyOptions)


def cmd_detect(args: argparse.Namespace) -> int:
    from core.config import resolve

    try:
        options = resolve(DetectOptions, "detect", args).config
    except ValueError as e:
        raise CliError(str(e)) from None
    return detect_file(args.file, options.model, options.model_version, plot=args.plot,
                       as_json=args.json, options=options.policy)


def detect_file(file: str, model: str, version: str = "production", *, plot: str | None = None,
                as_json: bool = False, options=None) -> int:
    """Print the alarms the registered model hears in an audio file (and draw them)."""
    from models.alarms.stream import PolicyOptions
    from models.alarms.training import (
        alarm_label_of,
        detect_in_samples,
        feature_spec_of,
        policy_of,
    )
    from models.onnx_export import OnnxScorer
    from models.registry import Registry, RegistryError

    try:
        session, mv = Registry().load_session(model, version)
    except RegistryError as e:
        raise CliError(f"{e}. Train one: `onair submit train_alarm_detector --attached -- "
                       "--dataset DIR --promote`") from None
    try:
        spec = feature_spec_of(mv)
    except RegistryError as e:
        raise CliError(str(e)) from None
    alarm_label = alarm_label_of(mv)
    samples, _ = _read_audio(file, spec.sample_rate)
    try:
        policy = (options or PolicyOptions()).policy(policy_of(mv))
    except ValueError as e:
        raise CliError(str(e)) from None
    detections, probs = detect_in_samples(samples, spec, policy, OnnxScorer(session),
                                          mv.labels, alarm_label)
    duration = len(samples) / spec.sample_rate
    if as_json:
        print(json.dumps({"file": file, "model": mv.ref, "duration_s": duration,
                          "detections": [{"onset_s": d.onset_ts / 1000,
                                          "detected_s": d.window_end_ts / 1000,
                                          "confidence": d.confidence,
                                          "predicted_label": d.predicted_label}
                                         for d in detections]}))
    else:
        print(f"{file}: {duration:.1f} s, {len(probs)} windows of {spec.window_s:g} s "
              f"every {spec.hop_s:g} s, model {mv.ref}")
        for d in detections:
            print(f"  {mv.extra['alarm_label']} from {d.onset_ts / 1000:.1f} s, confirmed at "
                  f"{d.window_end_ts / 1000:.1f} s (confidence {d.confidence:.2f})")
        if not detections:
            print("  no alarm heard")
    if plot:
        from models.alarms.plot import detection_plot

        Path(plot).write_bytes(detection_plot(samples, spec, probs, detections, mv.labels,
                                              alarm_label, policy.threshold,
                                              title=Path(file).name))
        print(f"plot: {plot}", file=sys.stderr)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from models.registry import Registry, RegistryError

    registry = Registry()
    try:
        if args.action == "list":
            names = [args.name] if args.name else registry.names()
            if not names:
                print(f"no models in {registry.root}")
            for name in names:
                aliases = registry.aliases(name)
                for mv in registry.versions(name):
                    tags = ",".join(a for a, v in aliases.items() if v == mv.version)
                    print(f"{mv.ref:<24} {mv.created_at}  {mv.onnx_sha256[:12]}  "
                          f"{tags or '-':<12} {_headline(mv.metrics)}")
        elif args.action == "show":
            if not args.name:
                raise CliError("`onair models show NAME [VERSION]`")
            mv = registry.resolve(args.name, args.version or "latest")
            print(json.dumps({**asdict(mv), "path": str(registry.version_dir(mv))}, indent=1))
        elif args.action == "verify":
            return _verify_models(registry, args.name, args.version)
        else:
            if not (args.name and args.version):
                raise CliError("`onair models promote NAME VERSION`")
            mv = registry.promote(args.name, args.version, args.alias)
            print(f"{args.alias} -> {mv.ref}")
    except RegistryError as e:
        raise CliError(str(e)) from None
    return 0


def _verify_models(registry, name: str | None, version: str | None) -> int:
    """Signature and model bytes of each version (of NAME, or version V): 1 if any fails."""
    from models.registry import RegistryError

    versions = ([registry.resolve(name, version)] if version else
                registry.versions(name) if name else
                [mv for n in registry.names() for mv in registry.versions(n)])
    failed = 0
    for mv in versions:
        try:
            registry.verify(mv)
            print(f"{mv.ref:<24} ok (signature by {registry.keys.key_id()}, sha256)")
        except RegistryError as e:
            failed += 1
            print(f"{mv.ref:<24} FAILED: {e}")
    print(f"{len(versions) - failed} of {len(versions)} verified")
    return 1 if failed else 0


def _headline(metrics: dict) -> str:
    parts = []
    if "event_f1_snr_ge_0" in metrics:
        parts.append(f"event F1 (>=0 dB) {metrics['event_f1_snr_ge_0']}")
    bg = metrics.get("background") or {}
    if bg.get("false_alerts_per_hour") is not None:
        parts.append(f"false alerts/h {bg['false_alerts_per_hour']}")
    return "; ".join(parts)


def add_parsers(sub) -> None:
    from core.config import add_arguments

    p = sub.add_parser("alarms", help="alarm detector data: `alarms dataset --out DIR`, "
                                      "`alarms evaluate` (leave one source out)")
    p.add_argument("action", choices=("dataset", "evaluate"))
    p.add_argument("--out", help="dataset folder to write (dataset); report file (evaluate)")
    p.add_argument("--real-audio", default=str(audio_dir()),
                   help="folder of real recordings (*/alarm, */background; env "
                        "ONAIR_AUDIO_DIR, default the repository's data/audio)")
    # Unset flags keep DatasetConfig's and EvalConfig's defaults (docs/alarms.md), so they are
    # written once, and parsing does not import the audio code.
    p.add_argument("--train-per-class", type=int,
                   help="training clips per class (evaluate: the pool each fold trains on)")
    p.add_argument("--holdout-per-class", type=int)
    p.add_argument("--streams-per-snr", type=int,
                   help="event streams per SNR (evaluate: per alarm kind, SNR and source)")
    p.add_argument("--background-minutes", type=float,
                   help="alarm-free audio (evaluate: of each source's recordings)")
    p.add_argument("--seed", type=int)
    p.add_argument("--target-fpr", type=float,
                   help="evaluate: the out-of-bag window false-positive rate each fold's "
                        "threshold is set for (train_alarm_detector's default)")
    p.add_argument("--json", action="store_true", help="evaluate: print the summary as JSON")
    p.set_defaults(func=cmd_alarms)

    p = sub.add_parser("produce-audio", help="stream a WAV file into audio-chunks")
    p.add_argument("file")
    p.add_argument("--stream", required=True, help="stream id (the Kafka key)")
    p.add_argument("--realtime", action="store_true", help="pace chunks at the audio's speed")
    p.add_argument("--chunk-ms", type=int, default=100)
    p.add_argument("--rate", type=int, default=None,
                   help="resample to this rate (default: the file's, if supported)")
    p.add_argument("--start-ts", type=int, default=None, help="ts of the first chunk (now)")
    p.add_argument("--seq0", type=int, default=0, help="first sequence number")
    p.set_defaults(func=cmd_produce_audio)

    p = sub.add_parser("detect", help="find alarms in an audio file with the registered model")
    p.add_argument("file")
    p.add_argument("--plot", metavar="PNG", help="draw the spectrogram, windows and detections")
    p.add_argument("--json", action="store_true")
    add_arguments(p, DetectOptions, "detect")
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("models", help="the model registry: list | show NAME [V] | "
                                      "promote NAME V | verify [NAME [V]]")
    p.add_argument("action", choices=("list", "show", "promote", "verify"))
    p.add_argument("name", nargs="?")
    p.add_argument("version", nargs="?")
    p.add_argument("--alias", default="production")
    p.set_defaults(func=cmd_models)
