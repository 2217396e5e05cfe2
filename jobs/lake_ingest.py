"""lake_ingest: behaviour and show events from Kafka into the lake's raw zone.

Kafka (raw bytes + metadata) -> validate (bad records to ``dead-letters``) -> flatten ->
Flink filesystem sink, JSON lines partitioned by event date and hour, exactly once (files are
committed on checkpoints; the dead-letter producer is transactional).

    flink run -py jobs/lake_ingest.py -pyfs core,models,connectors,operators [-- --help]
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass

from pyflink.datastream import StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment

from connectors.flink_env import run_job
from connectors.lake import RAW_TABLES, RawZoneSinkSpec
from core.config import connection, group, option, parse
from core.settings import FlinkJobSettings, KafkaSettings, lake_root
from core.topics import BEHAVIOR_EVENTS, SHOW_EVENTS, Topic
from models.lake_rows import flatten, lake_columns
from operators.kafka_io import Input, add_dead_letter_sink, validated_inputs

JOB = "lake_ingest"
INPUTS: tuple[Topic, ...] = (BEHAVIOR_EVENTS, SHOW_EVENTS)


@dataclass(frozen=True)
class LakeIngestConfig:
    kafka: KafkaSettings = connection(KafkaSettings)
    # Process mode measured faster here than thread mode: Beam's bundles amortise the
    # per-record hand-over of wide rows.
    flink: FlinkJobSettings = group(FlinkJobSettings, python_mode="process")
    lake: str | None = option(None, "lake root URI (default $ONAIR_LAKE, else the state "
                              "directory's lake/)")
    group_id: str = option("onair-lake-ingest", "Kafka consumer group",
                           legacy_env=("LAKE_INGEST_GROUP_ID",))
    rollover_s: int = option(60, "roll raw-zone files at least this often, s", minimum=1,
                             legacy_env=("LAKE_INGEST_ROLLOVER_S",))

    def __post_init__(self) -> None:
        object.__setattr__(self, "lake", self.lake or lake_root())


def build_pipeline(env: StreamExecutionEnvironment, t_env: StreamTableEnvironment,
                   cfg: LakeIngestConfig) -> None:
    inputs = [Input(t, lake_columns(t.schema), functools.partial(flatten, schema=t.schema))
              for t in INPUTS]
    valid, dead = validated_inputs(t_env, cfg.kafka, inputs, job=JOB, group_id=cfg.group_id,
                                   bounded=cfg.flink.bounded)
    statements = t_env.create_statement_set()
    for topic in INPUTS:
        sink = RawZoneSinkSpec(RAW_TABLES[topic.name], topic.schema, cfg.lake, cfg.rollover_s)
        t_env.execute_sql(sink.ddl())
        statements.add_insert(f"lake_{sink.table}", t_env.from_data_stream(valid[topic.name]))
    add_dead_letter_sink(t_env, statements, cfg.kafka, dead, job=JOB)
    statements.attach_as_datastream()


def main(argv: list[str] | None = None) -> None:
    cfg = parse(LakeIngestConfig, JOB, argv, __doc__.splitlines()[0])
    run_job(JOB, cfg.flink, lambda env, t_env: build_pipeline(env, t_env, cfg))


if __name__ == "__main__":
    main(sys.argv[1:])
