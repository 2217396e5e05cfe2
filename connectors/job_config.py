"""Shared command-line plumbing for job configs: flags that fall back to environment variables."""

from __future__ import annotations

import argparse
import os

from connectors.flink_env import FlinkJobSettings


def env_default(name: str, default: str) -> str:
    return os.environ.get(name, default)


def add_flink_flags(parser: argparse.ArgumentParser, job: str, *,
                    python_mode: str = "thread", bundle_size: int = 1000) -> None:
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
    parser.add_argument("--python-mode", choices=("thread", "process"),
                        default=env_default("ONAIR_PYTHON_MODE", python_mode),
                        help="PyFlink Python execution mode "
                             f"(env ONAIR_PYTHON_MODE, default {python_mode})")
    parser.add_argument("--bundle-size", type=int,
                        default=int(env_default("ONAIR_BUNDLE_SIZE", str(bundle_size))),
                        help="records per Python bundle; keyed state is written back to the "
                             f"JVM once per key per bundle (env ONAIR_BUNDLE_SIZE, "
                             f"default {bundle_size})")
    parser.add_argument("--bounded", action="store_true",
                        help="read the input topics up to their current end, then finish")


def flink_settings(args: argparse.Namespace) -> FlinkJobSettings:
    return FlinkJobSettings(
        parallelism=args.parallelism, checkpoint_interval_ms=args.checkpoint_interval_ms,
        python_mode=args.python_mode, bounded=args.bounded, bundle_size=args.bundle_size,
    )
