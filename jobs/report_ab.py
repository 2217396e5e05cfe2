"""report_ab: the A/B report of the ranker against the heuristic.

Bounded, BATCH: ``rec-rankings`` and ``behavior-events`` read up to their current end ->
validated -> keyed by user -> at the end of each user's input, each ranking gets the
engagement that followed it (``operators.ab_report.attribute``: likes, follows, notification
opt-ins, listens and listening time on the ranked shows within an hour, each event to the
user's latest ranking) -> the driver compares the arms: mean per request with 95 % intervals
and the relative lift of ml over heuristic. Prints the table and one JSON line.

    onair submit --attached report_ab
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

from pyflink.common import Types
from pyflink.datastream import KeyedProcessFunction

from connectors.flink_env import FlinkJobSettings, stream_env, table_env
from connectors.flink_io import Input, validated_inputs
from connectors.job_config import env_default
from connectors.settings import KafkaSettings
from connectors.topics import BEHAVIOR_EVENTS, REC_RANKINGS

JOB = "report_ab"
END_OF_KEY = 9_223_372_036_854_775_807


@dataclass(frozen=True)
class ReportAbConfig:
    kafka: KafkaSettings
    flink: FlinkJobSettings
    group_id: str = "onair-report-ab"

    @classmethod
    def from_args(cls, argv: list[str] | None = None) -> ReportAbConfig:
        p = argparse.ArgumentParser(prog=JOB, description=__doc__.splitlines()[0])
        p.add_argument("--parallelism", type=int,
                       default=int(env_default("REPORT_AB_PARALLELISM", "2")))
        a = p.parse_args(argv)
        return cls(KafkaSettings.from_env(),
                   FlinkJobSettings(parallelism=a.parallelism, python_mode="process",
                                    bounded=True, batch=True))


class AttributeByUser(KeyedProcessFunction):
    def open(self, runtime_context):
        # BATCH mode: one user's records arrive together, so instance memory suffices.
        self.pending: dict[str, tuple[list, list]] = {}

    def process_element(self, value, ctx):
        kind, message = value
        rankings, events = self.pending.setdefault(ctx.get_current_key(), ([], []))
        (rankings if kind == "ranking" else events).append(message)
        ctx.timer_service().register_event_time_timer(END_OF_KEY)

    def on_timer(self, timestamp, ctx):
        from operators.ab_report import attribute

        rankings, events = self.pending.pop(ctx.get_current_key(), ([], []))
        for outcome in attribute(rankings, events):
            yield json.dumps(outcome.as_dict())


def run(cfg: ReportAbConfig) -> dict:
    from operators.ab_report import Outcome, compare, format_report

    env = stream_env(cfg.flink)
    t_env = table_env(env)
    valid, _dead = validated_inputs(
        t_env, cfg.kafka, [Input.as_dicts(REC_RANKINGS), Input.as_dicts(BEHAVIOR_EVENTS)],
        job=JOB, group_id=cfg.group_id, bounded=True)
    tagged = valid[REC_RANKINGS.name].map(lambda m: ("ranking", m)).union(
        valid[BEHAVIOR_EVENTS.name].map(lambda m: ("event", m)))
    outcomes = (tagged.key_by(lambda t: t[1]["user_id"], key_type=Types.STRING())
                .process(AttributeByUser(), output_type=Types.STRING()))
    collected = []
    with outcomes.execute_and_collect(JOB) as rows:
        for row in rows:
            d = json.loads(row)
            collected.append(Outcome(d["request_id"], d["variant"], d["likes"], d["follows"],
                                     d["notifies"], d["listens"], d["listen_minutes"]))
    report = compare(collected)
    print(format_report(report))
    print(json.dumps(report))
    return report


def main(argv: list[str] | None = None) -> None:
    run(ReportAbConfig.from_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
