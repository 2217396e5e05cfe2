"""Shared command-line plumbing for job configs: flags that fall back to environment variables."""

from __future__ import annotations

import argparse
import os

from connectors.flink_env import FlinkJobSettings


def env_default(name: str, default: str) -> str:
    return os.environ.get(name, default)


def add_flink_flags(parser: argparse.ArgumentParser, job: str, *,
                    python_mode: str = "thread", bundle_size: int = 1000,
                    bundle_time_ms: int = 1000, buffer_timeout_ms: int = 100,
                    unaligned_checkpoints: bool = False) -> None:
    """Flags every streaming job takes; each names its environment variable in its help.
    ``python_mode`` is the job's measured-best default (README, Performance)."""
    up = job.upper()
    parser.add_argument("--parallelism", type=int,
                        default=int(env_default(f"{up}_PARALLELISM", "1")),
                        help=f"operator parallelism (env {up}_PARALLELISM, default 1)")
    parser.add_argument("--checkpoint-interval-ms", type=int,
                        default=int(env_default("ONAIR_CHECKPOINT_INTERVAL_MS", "10000")),
                        help="checkpoint interval, ms "
                             "(env ONAIR_CHECKPOINT_INTERVAL_MS, default 10000)")
    parser.add_argument("--unaligned-checkpoints", action=argparse.BooleanOptionalAction,
                        default=env_default("ONAIR_UNALIGNED_CHECKPOINTS",
                                            str(unaligned_checkpoints)).lower()
                        in ("1", "true", "yes"),
                        help="checkpoint barriers overtake in-flight records, so no input "
                             "waits for another's barrier (env ONAIR_UNALIGNED_CHECKPOINTS, "
                             f"default {'on' if unaligned_checkpoints else 'off'} for {job})")
    parser.add_argument("--python-mode", choices=("thread", "process"),
                        default=env_default("ONAIR_PYTHON_MODE", python_mode),
                        help="PyFlink Python execution mode "
                             f"(env ONAIR_PYTHON_MODE, default {python_mode})")
    parser.add_argument("--bundle-size", type=int,
                        default=int(env_default("ONAIR_BUNDLE_SIZE", str(bundle_size))),
                        help="records per Python bundle; keyed state is written back to the "
                             f"JVM once per key per bundle (env ONAIR_BUNDLE_SIZE, "
                             f"default {bundle_size})")
    parser.add_argument("--bundle-time-ms", type=int,
                        default=int(env_default("ONAIR_BUNDLE_TIME_MS", str(bundle_time_ms))),
                        help="a Python bundle also ends after this many ms: the floor of the "
                             f"job's latency (env ONAIR_BUNDLE_TIME_MS, default {bundle_time_ms})")
    parser.add_argument("--buffer-timeout-ms", type=int,
                        default=int(env_default("ONAIR_BUFFER_TIMEOUT_MS",
                                                str(buffer_timeout_ms))),
                        help="longest wait of a network buffer between operators "
                             f"(env ONAIR_BUFFER_TIMEOUT_MS, default {buffer_timeout_ms})")
    parser.add_argument("--restart-attempts", type=int,
                        default=int(env_default("ONAIR_RESTART_ATTEMPTS", "30")),
                        help="restarts after faults before the job fails, counted until it "
                             "runs 10 min without one (env ONAIR_RESTART_ATTEMPTS, default 30)")
    parser.add_argument("--restart-max-delay-s", type=int,
                        default=int(env_default("ONAIR_RESTART_MAX_DELAY_S", "60")),
                        help="longest wait before a restart; waits double from 1 s "
                             "(env ONAIR_RESTART_MAX_DELAY_S, default 60)")
    parser.add_argument("--bounded", action="store_true",
                        help="read the input topics up to their current end, then finish")


def flink_settings(args: argparse.Namespace) -> FlinkJobSettings:
    return FlinkJobSettings(
        parallelism=args.parallelism, checkpoint_interval_ms=args.checkpoint_interval_ms,
        python_mode=args.python_mode, bounded=args.bounded, bundle_size=args.bundle_size,
        bundle_time_ms=args.bundle_time_ms, buffer_timeout_ms=args.buffer_timeout_ms,
        unaligned_checkpoints=args.unaligned_checkpoints,
        restart_attempts=args.restart_attempts, restart_max_delay_s=args.restart_max_delay_s,
    )


def add_alarm_policy_flags(parser: argparse.ArgumentParser) -> None:
    """Debounce and stream-reassembly flags shared by detect_alarms and the training report."""
    from operators.audio_stream import StreamPolicy

    d = StreamPolicy()
    parser.add_argument("--threshold", type=float, default=None,
                        help="alarm probability that makes a window positive (default: the "
                             "model's own, chosen at training from out-of-bag predictions)")
    # k and n are tuned with the model's hop (a window every 0.25 s needs a wider span than
    # one every 0.5 s): the model carries them, the flags override.
    parser.add_argument("--k", type=int, default=None,
                        help="positive windows among the last --n that raise an alert "
                             f"(default: the model's, else {d.k})")
    parser.add_argument("--n", type=int, default=None,
                        help=f"debounce span, windows (default: the model's, else {d.n})")
    parser.add_argument("--cooldown-ms", type=int, default=d.cooldown_ms,
                        help="alarm-free audio that re-arms a stream after an alert "
                             f"({d.cooldown_ms})")
    parser.add_argument("--reorder-depth", type=int, default=d.reorder_depth,
                        help=f"chunks held waiting for a missing one ({d.reorder_depth})")
    parser.add_argument("--max-gap-ms", type=int, default=d.max_gap_ms,
                        help=f"gaps up to this are zero-filled, longer reset ({d.max_gap_ms})")
    parser.add_argument("--idle-timeout-s", type=int, default=d.idle_timeout_s,
                        help=f"a stream idle this long is forgotten ({d.idle_timeout_s})")


def alarm_policy(args: argparse.Namespace, model_policy: dict | None = None):
    """The policy from the flags; threshold, k and n fall back to the model's (``policy`` of
    its registry entry, chosen at training), then to the defaults."""
    from operators.audio_stream import StreamPolicy

    m = model_policy or {}
    threshold = args.threshold or m.get("threshold") or StreamPolicy.threshold
    return StreamPolicy(reorder_depth=args.reorder_depth, max_gap_ms=args.max_gap_ms,
                        threshold=threshold, k=args.k or m.get("k") or StreamPolicy.k,
                        n=args.n or m.get("n") or StreamPolicy.n,
                        cooldown_ms=args.cooldown_ms, idle_timeout_s=args.idle_timeout_s)
