"""detect_alarms: hear alarms in live audio streams, score windows with ONNX in-stream.

audio-chunks -> key by stream id (in the JVM) -> validate + decode (bad chunks ->
dead-letters) -> batches of chunks (at most --batch-chunks, --batch-wait-ms) -> reorder /
duplicate drop / gap policy -> resample -> sliding log-mel windows -> ONNX -> k-of-n debounce +
cooldown -> alarm-alerts

Alerts are written at least once, not in checkpoint transactions: an alert must be readable
within seconds, not at the next checkpoint. ``alert_id`` is stable across replays (stream id and
onset), so a consumer that keeps the ids it has seen gets each alert once.

    flink run -py jobs/detect_alarms.py -pyfs operators,models,connectors \\
        -- [--model alarm_detector] [--model-version production]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from pyflink.datastream import StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment

from connectors.flink_env import FlinkJobSettings, run_job
from connectors.flink_io import add_dead_letter_sink, add_kafka_sink, keyed_raw_input
from connectors.job_config import (
    add_alarm_policy_flags,
    add_flink_flags,
    alarm_policy,
    env_default,
    flink_settings,
)
from connectors.kafka_admin import LOW_LATENCY_FETCH_WAIT_MS
from connectors.settings import KafkaSettings, registry_root
from connectors.topics import ALARM_ALERTS, AUDIO_CHUNKS
from models.alarm_training import policy_of
from models.registry import ModelVersion, Registry, RegistryError
from operators.alarm_functions import DetectAlarmsFunction
from operators.audio_stream import StreamPolicy
from operators.validate_function import DEAD_LETTER_TAG, KAFKA_ROW_TYPE

JOB = "detect_alarms"


@dataclass(frozen=True)
class DetectAlarmsConfig:
    kafka: KafkaSettings
    flink: FlinkJobSettings
    registry: str
    model: ModelVersion
    policy: StreamPolicy
    group_id: str = "onair-detect-alarms"
    batch_chunks: int = 64
    batch_wait_ms: int = 40

    @classmethod
    def from_args(cls, argv: list[str] | None = None) -> DetectAlarmsConfig:
        parser = argparse.ArgumentParser(prog=JOB, description=__doc__.splitlines()[0])
        # Thread mode hands each chunk to Python at once (process mode waits for a 50 ms
        # bundle): in-job p50 85 against 379 ms when the job had three Python operators
        # (README, Performance). The bundle flags only matter with --python-mode process.
        add_flink_flags(parser, JOB, python_mode="thread", bundle_size=200,
                        bundle_time_ms=50)
        parser.add_argument("--model", default=env_default("ALARM_MODEL", "alarm_detector"),
                            help="registry model name (env ALARM_MODEL)")
        parser.add_argument("--model-version", default=env_default("ALARM_MODEL_VERSION",
                                                                   "production"),
                            help="version or alias, resolved once at submission "
                                 "(env ALARM_MODEL_VERSION)")
        parser.add_argument("--group-id", default=env_default("ALARMS_GROUP_ID",
                                                              cls.group_id),
                            help="Kafka consumer group (env ALARMS_GROUP_ID)")
        # Chunks are scored in batches (one FFT, one window pass, one ONNX call): a batch
        # waits at most --batch-wait-ms, which the alert latency pays (README, Performance).
        parser.add_argument("--batch-chunks", type=int,
                            default=int(env_default("ALARMS_BATCH_CHUNKS", str(cls.batch_chunks))),
                            help="most chunks per batch (env ALARMS_BATCH_CHUNKS, default "
                                 f"{cls.batch_chunks})")
        parser.add_argument("--batch-wait-ms", type=int,
                            default=int(env_default("ALARMS_BATCH_WAIT_MS",
                                                    str(cls.batch_wait_ms))),
                            help="longest a chunk waits for its batch (env "
                                 f"ALARMS_BATCH_WAIT_MS, default {cls.batch_wait_ms})")
        add_alarm_policy_flags(parser)
        args = parser.parse_args(argv)
        if args.batch_chunks < 1 or args.batch_wait_ms < 0:
            parser.error("--batch-chunks must be at least 1 and --batch-wait-ms at least 0")
        registry = Registry()
        try:
            # Pinned at submission: every subtask scores with the same version, and the
            # alerts name it, even if the alias moves while the job runs.
            model = registry.resolve(args.model, args.model_version)
            registry.verify(model)
            policy = alarm_policy(args, policy_of(model))
        except (RegistryError, ValueError) as e:
            parser.error(f"{e}\n(train one with jobs/train_alarm_detector.py --promote)"
                         if isinstance(e, RegistryError) else str(e))
        return cls(KafkaSettings.from_env(), flink_settings(args), str(registry_root()), model,
                   policy, args.group_id, args.batch_chunks, args.batch_wait_ms)


def build_pipeline(env: StreamExecutionEnvironment, t_env: StreamTableEnvironment,
                   cfg: DetectAlarmsConfig) -> None:
    chunks = keyed_raw_input(t_env, cfg.kafka, AUDIO_CHUNKS, AUDIO_CHUNKS.key_field,
                             group_id=cfg.group_id, bounded=cfg.flink.bounded,
                             fetch_max_wait_ms=LOW_LATENCY_FETCH_WAIT_MS)
    alerts = (chunks
              .process(DetectAlarmsFunction(JOB, AUDIO_CHUNKS.schema, cfg.registry,
                                            cfg.model.name, cfg.model.version, cfg.policy,
                                            batch_chunks=cfg.batch_chunks,
                                            batch_wait_ms=cfg.batch_wait_ms),
                       output_type=KAFKA_ROW_TYPE)
              .name("detect").uid(f"{JOB}-detect"))
    dead = alerts.get_side_output(DEAD_LETTER_TAG)
    statements = t_env.create_statement_set()
    add_kafka_sink(t_env, statements, cfg.kafka, ALARM_ALERTS, alerts, job=JOB,
                   exactly_once=False, low_latency=True)
    add_dead_letter_sink(t_env, statements, cfg.kafka, dead, job=JOB)
    statements.attach_as_datastream()


def main(argv: list[str] | None = None) -> None:
    cfg = DetectAlarmsConfig.from_args(argv)
    print(f"{JOB}: scoring with {cfg.model.ref} (sha256 {cfg.model.onnx_sha256[:12]})",
          file=sys.stderr)
    run_job(JOB, cfg.flink, lambda env, t_env: build_pipeline(env, t_env, cfg))


if __name__ == "__main__":
    main(sys.argv[1:])
