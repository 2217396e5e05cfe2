"""rank_shows: rank live and upcoming shows for each listener opening the app.

rec-requests (raw) ──────────────────────────────┐ one Python operator: validate (bad ->
show-events -> validate -> broadcast catalog of ─┘ dead-letters) -> candidates (retrieved
live / upcoming shows                               when over --max-candidates) -> features
from Redis (streaming + batch, one round trip; two for a listener new to the subtask) -> A/B
arm by hash of user and experiment -> ONNX (ml) or declared topics then popularity
(heuristic) -> top-k -> rec-rankings

The model follows the registry alias (``--alias production``): a promoted version is used
within ``--reload-s`` seconds, without a restart. A request in the ml arm that cannot be scored
(no model yet, no published batch run) gets the heuristic's order with ``model_version`` null,
counted in the metric ``ranking_fallbacks``; its ``variant`` stays ``ml`` (the arm it was
assigned: the A/B analysis is by assignment). Rankings are written at least once, at once.

    onair submit rank_shows [--model show_ranker] [--experiment ranker-v1]
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from pyflink.datastream import StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment

from connectors.flink_env import run_job
from core.config import connection, group, option, parse
from core.settings import FlinkJobSettings, KafkaSettings, RedisSettings
from core.topics import REC_RANKINGS, REC_REQUESTS, SHOW_EVENTS
from models.registry import RegistryRef
from operators.kafka_io import (
    Input,
    add_dead_letter_sink,
    add_kafka_sink,
    raw_input,
    set_buffer_timeout,
    validated_inputs,
)
from operators.ranking import CATALOG_STATE, RankShowsFunction
from operators.validate import DEAD_LETTER_TAG, KAFKA_ROW_TYPE

JOB = "rank_shows"


@dataclass(frozen=True)
class RankShowsConfig:
    kafka: KafkaSettings = connection(KafkaSettings)
    redis: RedisSettings = connection(RedisSettings)
    # Latency is the point. Thread mode ranks on the task's own thread: no Beam bundle per
    # request. Unaligned checkpoints: with aligned ones the requests input stalled at every
    # checkpoint until the catalog input's barrier arrived (docs/performance.md).
    flink: FlinkJobSettings = group(FlinkJobSettings, python_mode="thread", bundle_size=100,
                                    bundle_time_ms=5, unaligned_checkpoints=True)
    model: str = option("show_ranker", "registry model name", legacy_env=("RANKER_MODEL",))
    alias: str = option("production", "alias followed while running",
                        legacy_env=("RANKER_ALIAS",))
    experiment: str = option("ranker-v1", "A/B experiment name: part of the arm hash",
                             legacy_env=("RANKER_EXPERIMENT",))
    horizon_min: int = option(120, "upcoming shows starting within this many minutes are "
                              "candidates", minimum=1)
    k: int = option(10, "items per ranking unless the request says", minimum=1, maximum=100)
    reload_s: float = option(5.0, "how often the alias is checked for a new version, s",
                             minimum=0.1)
    request_buffer_timeout_ms: int = option(0, "network buffer timeout of the requests' "
                                            "exchange; 0 sends each request at once", minimum=0)
    fetch_max_wait_ms: int = option(10, "longest wait of the requests consumer's fetch: with "
                                    "Tansu, the longest a request waits in the broker",
                                    minimum=0)
    user_cache_size: int = option(100_000, "users' batch features kept per subtask for the "
                                  "published run, least recently used out; 0 reads every "
                                  "request's user from Redis", minimum=0)
    max_candidates: int = option(1000, "a catalog with more live and upcoming shows has a "
                                 "retrieval stage pick this many per request (the listener's "
                                 "creators and topics, then the most listened); fewer are all "
                                 "scored", minimum=10, maximum=100_000)
    group_id: str = option("onair-rank-shows", "Kafka consumer group",
                           legacy_env=("RANK_SHOWS_GROUP_ID",))


def build_pipeline(env: StreamExecutionEnvironment, t_env: StreamTableEnvironment,
                   cfg: RankShowsConfig) -> None:
    requests = raw_input(t_env, cfg.kafka, REC_REQUESTS, group_id=cfg.group_id,
                         bounded=cfg.flink.bounded, fetch_max_wait_ms=cfg.fetch_max_wait_ms)
    # The one network exchange a request crosses (a two-input operator heads its own chain):
    # sent at once, not when a buffer fills or the job-wide buffer timeout passes.
    set_buffer_timeout(requests, cfg.request_buffer_timeout_ms)
    valid, dead = validated_inputs(t_env, cfg.kafka, [Input.as_dicts(SHOW_EVENTS)], job=JOB,
                                   group_id=cfg.group_id, bounded=cfg.flink.bounded)
    catalog = valid[SHOW_EVENTS.name].broadcast(CATALOG_STATE)
    registry = RegistryRef.here()   # read where the job is submitted, shipped with it
    rankings = (requests.connect(catalog)
                .process(RankShowsFunction(JOB, REC_REQUESTS.schema, cfg.redis, registry,
                                           cfg.model, cfg.alias, cfg.experiment,
                                           cfg.horizon_min * 60_000, cfg.k, cfg.reload_s,
                                           cfg.user_cache_size, cfg.max_candidates),
                         output_type=KAFKA_ROW_TYPE)
                .name("rank").uid(f"{JOB}-rank"))
    statements = t_env.create_statement_set()
    add_kafka_sink(t_env, statements, cfg.kafka, REC_RANKINGS, rankings, job=JOB,
                   exactly_once=False, low_latency=True)
    add_dead_letter_sink(t_env, statements, cfg.kafka,
                         dead.union(rankings.get_side_output(DEAD_LETTER_TAG)), job=JOB)
    statements.attach_as_datastream()


def main(argv: list[str] | None = None) -> None:
    cfg = parse(RankShowsConfig, JOB, argv, __doc__.splitlines()[0])
    run_job(JOB, cfg.flink, lambda env, t_env: build_pipeline(env, t_env, cfg))


if __name__ == "__main__":
    main(sys.argv[1:])
