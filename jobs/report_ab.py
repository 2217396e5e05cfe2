"""report_ab: the A/B report of the ranker against the heuristic.

Bounded, BATCH: ``rec-rankings`` and ``behavior-events`` read up to their current end ->
validated -> keyed by user -> at the end of each user's input, each ranking gets the
engagement that followed it (``models.ranking.ab_report.attribute``: likes, follows, notification
opt-ins, listens and listening time on the ranked shows within an hour, each event to the
user's latest ranking) -> the driver compares the arms: mean per request with 95 % intervals
and the relative lift of ml over heuristic, and an always-valid sequential test per objective
(``winner``, ``loser`` or ``undecided``: the experiment may stop at any check). Prints the
table and one JSON line (``--json``: only the line).

    onair submit --attached report_ab [--json]
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

from pyflink.common import Types
from pyflink.datastream import DataStream
from pyflink.table import StreamTableEnvironment

from connectors.flink_env import stream_env, table_env
from core.config import connection, group, option, parse
from core.settings import BatchJobSettings, KafkaSettings
from core.topics import BEHAVIOR_EVENTS, REC_RANKINGS
from models.ranking.ab_report import Outcome, compare, format_report
from operators.ab_report import AttributeByUser
from operators.kafka_io import Input, validated_inputs

JOB = "report_ab"


@dataclass(frozen=True)
class ReportAbConfig:
    kafka: KafkaSettings = connection(KafkaSettings)
    group_id: str = option("onair-report-ab", "Kafka consumer group")
    json_only: bool = option(False, "print only the JSON report (per objective: the arms' "
                             "means, the lift with its 95 % interval, the sequential "
                             "test's decision)", flag="--json")
    flink: BatchJobSettings = group(BatchJobSettings, bundle_size=1000)


def build_pipeline(t_env: StreamTableEnvironment, cfg: ReportAbConfig) -> DataStream:
    """Rankings and behaviour events up to the topics' current end -> one JSON outcome per
    ranking."""
    valid, _dead = validated_inputs(
        t_env, cfg.kafka, [Input.as_dicts(REC_RANKINGS), Input.as_dicts(BEHAVIOR_EVENTS)],
        job=JOB, group_id=cfg.group_id, bounded=True)
    tagged = valid[REC_RANKINGS.name].map(lambda m: ("ranking", m)).union(
        valid[BEHAVIOR_EVENTS.name].map(lambda m: ("event", m)))
    return (tagged.key_by(lambda t: t[1]["user_id"], key_type=Types.STRING())
            .process(AttributeByUser(), output_type=Types.STRING()))


def run(cfg: ReportAbConfig) -> dict:
    outcomes = build_pipeline(table_env(stream_env(cfg.flink.runtime())), cfg)
    collected = []
    with outcomes.execute_and_collect(JOB) as rows:
        for row in rows:
            d = json.loads(row)
            collected.append(Outcome(d["request_id"], d["variant"], d["likes"], d["follows"],
                                     d["notifies"], d["listens"], d["listen_minutes"],
                                     d.get("ts", 0)))
    report = compare(collected)
    if not cfg.json_only:
        print(format_report(report))
    print(json.dumps(report))
    return report


def main(argv: list[str] | None = None) -> None:
    run(parse(ReportAbConfig, JOB, argv, __doc__.splitlines()[0]))


if __name__ == "__main__":
    main(sys.argv[1:])
