"""detect_alarms: hear alarms in live audio streams, score windows with ONNX in-stream.

audio-chunks -> key by stream id (in the JVM) -> validate + decode (bad chunks ->
dead-letters) -> batches of chunks (at most --batch-chunks, --batch-wait-ms) -> reorder /
duplicate drop / gap policy -> resample -> sliding log-mel windows -> ONNX -> k-of-n debounce +
cooldown -> alarm-alerts

Alerts are written at least once, not in checkpoint transactions: an alert must be readable
within seconds, not at the next checkpoint. ``alert_id`` is stable across replays (stream id and
onset), so a consumer that keeps the ids it has seen gets each alert once.

    flink run -py jobs/detect_alarms.py -pyfs core,models,connectors,operators \\
        -- [--model alarm_detector] [--model-version production]
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from pyflink.datastream import StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment

from connectors.flink_env import run_job
from connectors.kafka_admin import LOW_LATENCY_FETCH_WAIT_MS
from core.config import connection, group, option, parse
from core.settings import FlinkJobSettings, KafkaSettings
from core.topics import ALARM_ALERTS, AUDIO_CHUNKS
from models.alarms.stream import PolicyOptions, StreamPolicy
from models.alarms.training import feature_spec_of, policy_of
from models.registry import ModelVersion, RegistryError, RegistryRef
from operators.alarms import DetectAlarmsFunction
from operators.kafka_io import add_dead_letter_sink, add_kafka_sink, keyed_raw_input
from operators.validate import DEAD_LETTER_TAG, KAFKA_ROW_TYPE

JOB = "detect_alarms"


@dataclass(frozen=True)
class DetectAlarmsConfig:
    kafka: KafkaSettings = connection(KafkaSettings)
    # Thread mode hands each chunk to Python at once (process mode waits for a bundle). The
    # bundle options only matter with --python-mode process.
    flink: FlinkJobSettings = group(FlinkJobSettings, python_mode="thread", bundle_size=200,
                                    bundle_time_ms=50)
    model: str = option("alarm_detector", "registry model name", legacy_env=("ALARM_MODEL",))
    model_version: str = option("production", "version or alias, resolved once at submission",
                                legacy_env=("ALARM_MODEL_VERSION",))
    group_id: str = option("onair-detect-alarms", "Kafka consumer group",
                           legacy_env=("ALARMS_GROUP_ID",))
    # Chunks are scored in batches (one FFT, one window pass, one ONNX call): a batch waits
    # at most batch_wait_ms, which the alert latency pays.
    batch_chunks: int = option(64, "most chunks per batch", minimum=1, maximum=10_000,
                               legacy_env=("ALARMS_BATCH_CHUNKS",))
    batch_wait_ms: int = option(40, "longest a chunk waits for its batch, ms", minimum=0,
                                legacy_env=("ALARMS_BATCH_WAIT_MS",))
    policy: PolicyOptions = group(PolicyOptions)


@dataclass(frozen=True)
class Deployment:
    """What the job resolves at submission: the model version every subtask scores with
    (pinned, so alerts name it even if the alias moves) and the policy it brings."""

    registry: RegistryRef
    model: ModelVersion
    policy: StreamPolicy

    @classmethod
    def resolve(cls, cfg: DetectAlarmsConfig) -> Deployment:
        ref = RegistryRef.here()
        registry = ref.open()   # the key the subtasks will check with, checked here first
        model = registry.resolve(cfg.model, cfg.model_version)
        registry.verify(model)
        feature_spec_of(model)   # refuses a model trained on other features, here, not per batch
        return cls(ref, model, cfg.policy.policy(policy_of(model)))


def build_pipeline(env: StreamExecutionEnvironment, t_env: StreamTableEnvironment,
                   cfg: DetectAlarmsConfig, deployment: Deployment) -> None:
    chunks = keyed_raw_input(t_env, cfg.kafka, AUDIO_CHUNKS, AUDIO_CHUNKS.key_field,
                             group_id=cfg.group_id, bounded=cfg.flink.bounded,
                             fetch_max_wait_ms=LOW_LATENCY_FETCH_WAIT_MS)
    alerts = (chunks
              .process(DetectAlarmsFunction(JOB, AUDIO_CHUNKS.schema, deployment.registry,
                                            deployment.model.name, deployment.model.version,
                                            deployment.policy,
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
    cfg = parse(DetectAlarmsConfig, JOB, argv, __doc__.splitlines()[0])
    try:
        deployment = Deployment.resolve(cfg)
    except RegistryError as e:
        sys.exit(f"{JOB}: {e}\n(train one with jobs/train_alarm_detector.py --promote)")
    except ValueError as e:
        sys.exit(f"{JOB}: {e}")
    model = deployment.model
    print(f"{JOB}: scoring with {model.ref} (sha256 {model.onnx_sha256[:12]})", file=sys.stderr)
    run_job(JOB, cfg.flink, lambda env, t_env: build_pipeline(env, t_env, cfg, deployment))


if __name__ == "__main__":
    main(sys.argv[1:])
