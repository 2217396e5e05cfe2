"""Creating the Flink environments every job shares: checkpointing, Python execution mode."""

from __future__ import annotations

import sys
from collections.abc import Callable

from pyflink.common import Configuration
from pyflink.datastream import (
    CheckpointingMode,
    ExternalizedCheckpointRetention,
    RuntimeExecutionMode,
    StreamExecutionEnvironment,
)
from pyflink.table import StreamTableEnvironment

from core.settings import FlinkJobSettings


def restart_strategy(cfg: FlinkJobSettings) -> dict[str, str]:
    """Flink's restart-strategy options for ``cfg`` (set explicitly: without them a job with
    checkpointing restarts forever at a fixed 1 s)."""
    if cfg.batch:
        return {"restart-strategy.type": "fixed-delay",
                "restart-strategy.fixed-delay.attempts": "3",
                "restart-strategy.fixed-delay.delay": "10 s"}
    return {
        "restart-strategy.type": "exponential-delay",
        "restart-strategy.exponential-delay.initial-backoff": "1 s",
        "restart-strategy.exponential-delay.max-backoff": f"{cfg.restart_max_delay_s} s",
        "restart-strategy.exponential-delay.backoff-multiplier": "2.0",
        "restart-strategy.exponential-delay.reset-backoff-threshold": "10 min",
        "restart-strategy.exponential-delay.jitter-factor": "0.1",
        "restart-strategy.exponential-delay.attempts-before-reset-backoff":
            str(cfg.restart_attempts),
    }


ROCKSDB_METRICS = ("num-running-compactions", "compaction-pending", "is-write-stopped",
                   "background-errors", "total-sst-files-size", "estimate-num-keys")


def stream_env(cfg: FlinkJobSettings) -> StreamExecutionEnvironment:
    conf = Configuration()
    conf.set_string("python.execution-mode", cfg.python_mode)
    conf.set_string("python.fn-execution.bundle.size", str(cfg.bundle_size))
    conf.set_string("python.fn-execution.bundle.time", str(cfg.bundle_time_ms))
    # Keyed state objects stay deserialised in the Python worker between events of a bundle;
    # the default (1,000 keys) thrashes with thousands of users per subtask.
    conf.set_string("python.state.cache-size", "50000")
    conf.set_string("python.executable", sys.executable)
    conf.set_string("python.client.executable", sys.executable)
    if cfg.batch:
        # The adaptive batch scheduler would size each operator by its input bytes: a few
        # small records (file names, blocks of days) naming heavy work got parallelism 1.
        conf.set_string("execution.batch.adaptive.auto-parallelism.enabled", "false")
    for key, value in restart_strategy(cfg).items():
        conf.set_string(key, value)
    if not cfg.batch:
        conf.set_string("state.backend.type", cfg.state_backend)
        if cfg.state_backend == "rocksdb":
            conf.set_string("execution.checkpointing.incremental", "true")
            # A read of a key never written (every new entity's first lookup) otherwise
            # searches each level's files.
            conf.set_string("state.backend.rocksdb.use-bloom-filter", "true")
            # Keys are written in no order, so level compaction rewrote the whole first level
            # with each merge of new files into it; universal merges recent files among
            # themselves and rewrites all once the newer files add up to twice the oldest.
            conf.set_string("state.backend.rocksdb.compaction.style", "UNIVERSAL")
            # What operators watch of RocksDB (docs/monitoring.md); each is a property read
            # when the metric is, with the column family (the state's name) as a label.
            for prop in ROCKSDB_METRICS:
                conf.set_string(f"state.backend.rocksdb.metrics.{prop}", "true")
            conf.set_string("state.backend.rocksdb.metrics.column-family-as-variable", "true")
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(cfg.parallelism)
    env.set_buffer_timeout(cfg.buffer_timeout_ms)
    if cfg.batch:
        env.set_runtime_mode(RuntimeExecutionMode.BATCH)
        return env
    env.set_runtime_mode(RuntimeExecutionMode.STREAMING)
    env.enable_checkpointing(cfg.checkpoint_interval_ms, CheckpointingMode.EXACTLY_ONCE)
    checkpoints = env.get_checkpoint_config()
    checkpoints.set_externalized_checkpoint_retention(
        ExternalizedCheckpointRetention.RETAIN_ON_CANCELLATION
    )
    checkpoints.set_min_pause_between_checkpoints(min(1000, cfg.checkpoint_interval_ms // 2))
    if cfg.unaligned_checkpoints:
        checkpoints.enable_unaligned_checkpoints()
    return env


def run_job(name: str, cfg: FlinkJobSettings,
            build: Callable[[StreamExecutionEnvironment, StreamTableEnvironment], None]) -> None:
    """Create the environments, let ``build`` wire the pipeline, execute it as ``name``."""
    env = stream_env(cfg)
    build(env, table_env(env))
    env.execute(name)


def table_env(env: StreamExecutionEnvironment) -> StreamTableEnvironment:
    t_env = StreamTableEnvironment.create(env)
    t_env.get_config().set("table.local-time-zone", "UTC")
    return t_env
