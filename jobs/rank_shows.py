"""rank_shows: rank live and upcoming shows for each listener opening the app.

rec-requests (raw) ──────────────────────────────┐ one Python operator: validate (bad ->
show-events -> validate -> broadcast catalog of ─┘ dead-letters) -> candidates -> features
live / upcoming shows                               from Redis (streaming + batch, one round
trip) -> A/B arm by hash of user and experiment -> ONNX (ml) or declared topics then popularity
(heuristic) -> top-k -> rec-rankings

The model follows the registry alias (``--alias production``): a promoted version is used
within ``--reload-s`` seconds, without a restart. A request in the ml arm that cannot be scored
(no model yet, no published batch run) gets the heuristic's order with ``model_version`` null,
counted in the metric ``ranking_fallbacks``; its ``variant`` stays ``ml`` (the arm it was
assigned: the A/B analysis is by assignment). Rankings are written at least once, at once.

    onair submit rank_shows [--model show_ranker] [--experiment ranker-v1]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from pyflink.datastream import StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment

from connectors.flink_env import FlinkJobSettings, run_job
from connectors.flink_io import (
    Input,
    add_dead_letter_sink,
    add_kafka_sink,
    raw_input,
    set_buffer_timeout,
    validated_inputs,
)
from connectors.job_config import add_flink_flags, env_default, flink_settings
from connectors.settings import KafkaSettings, RedisSettings, registry_root
from connectors.topics import REC_RANKINGS, REC_REQUESTS, SHOW_EVENTS
from operators.ranking_function import CATALOG_STATE, RankShowsFunction
from operators.validate_function import DEAD_LETTER_TAG, KAFKA_ROW_TYPE

JOB = "rank_shows"


@dataclass(frozen=True)
class RankShowsConfig:
    kafka: KafkaSettings
    redis: RedisSettings
    flink: FlinkJobSettings
    registry: str
    model: str
    alias: str
    experiment: str
    horizon_ms: int
    k: int
    reload_s: float
    request_buffer_timeout_ms: int
    fetch_max_wait_ms: int
    user_cache_size: int = 100_000
    group_id: str = "onair-rank-shows"

    @classmethod
    def from_args(cls, argv: list[str] | None = None) -> RankShowsConfig:
        parser = argparse.ArgumentParser(prog=JOB, description=__doc__.splitlines()[0])
        # Latency is the point. Thread mode runs the ranking on the task's own thread: no Beam
        # bundle to open and close per request, which in process mode cost more CPU than the
        # ranking itself (README, Performance: p99 36 against 68 ms at 50 requests/s, same
        # hour). A request waits in the broker at most --fetch-max-wait-ms and is sent on at
        # once (--request-buffer-timeout-ms); the other exchanges keep Flink's 100 ms buffer
        # timeout. The bundle flags only matter with --python-mode process. Unaligned
        # checkpoints: with aligned ones, the requests input stalled at every checkpoint
        # until the catalog input's barrier arrived (p99 52.6 against 22.0 ms at 200
        # requests/s, README, Performance).
        add_flink_flags(parser, JOB, python_mode="thread", bundle_size=100, bundle_time_ms=5,
                        unaligned_checkpoints=True)
        parser.add_argument("--model", default=env_default("RANKER_MODEL", "show_ranker"),
                            help="registry model name (env RANKER_MODEL)")
        parser.add_argument("--alias", default=env_default("RANKER_ALIAS", "production"),
                            help="alias followed while running (env RANKER_ALIAS)")
        parser.add_argument("--experiment", default=env_default("RANKER_EXPERIMENT",
                                                                 "ranker-v1"),
                            help="A/B experiment name: part of the arm hash "
                                 "(env RANKER_EXPERIMENT)")
        parser.add_argument("--horizon-min", type=int, default=120,
                            help="upcoming shows starting within this many minutes are "
                                 "candidates (120)")
        parser.add_argument("--k", type=int, default=10, help="items per ranking unless the "
                                                               "request says (10)")
        parser.add_argument("--reload-s", type=float, default=5.0,
                            help="how often the alias is checked for a new version (5)")
        parser.add_argument("--request-buffer-timeout-ms", type=int, default=0,
                            help="network buffer timeout of the requests' exchange; 0 sends "
                                 "each request at once (cheap at hundreds per second)")
        parser.add_argument("--fetch-max-wait-ms", type=int, default=10,
                            help="longest wait of the requests consumer's fetch: with Tansu, "
                                 "the longest time a request waits in the broker (10)")
        parser.add_argument("--user-cache-size", type=int, default=cls.user_cache_size,
                            help="users' batch features kept per subtask for the published "
                                 "run, least recently used out; 0 reads every request's "
                                 "user from Redis (100000)")
        parser.add_argument("--group-id", default=env_default("RANK_SHOWS_GROUP_ID",
                                                              cls.group_id),
                            help="Kafka consumer group (env RANK_SHOWS_GROUP_ID)")
        a = parser.parse_args(argv)
        return cls(KafkaSettings.from_env(), RedisSettings.from_env(), flink_settings(a),
                   str(registry_root()), a.model,
                   a.alias, a.experiment, a.horizon_min * 60_000, a.k, a.reload_s,
                   a.request_buffer_timeout_ms, a.fetch_max_wait_ms, a.user_cache_size,
                   a.group_id)


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
    rankings = (requests.connect(catalog)
                .process(RankShowsFunction(JOB, REC_REQUESTS.schema, cfg.redis, cfg.registry,
                                           cfg.model, cfg.alias, cfg.experiment,
                                           cfg.horizon_ms, cfg.k, cfg.reload_s,
                                           cfg.user_cache_size),
                         output_type=KAFKA_ROW_TYPE)
                .name("rank").uid(f"{JOB}-rank"))
    statements = t_env.create_statement_set()
    add_kafka_sink(t_env, statements, cfg.kafka, REC_RANKINGS, rankings, job=JOB,
                   exactly_once=False, low_latency=True)
    add_dead_letter_sink(t_env, statements, cfg.kafka,
                         dead.union(rankings.get_side_output(DEAD_LETTER_TAG)), job=JOB)
    statements.attach_as_datastream()


def main(argv: list[str] | None = None) -> None:
    cfg = RankShowsConfig.from_args(argv)
    run_job(JOB, cfg.flink, lambda env, t_env: build_pipeline(env, t_env, cfg))


if __name__ == "__main__":
    main(sys.argv[1:])
