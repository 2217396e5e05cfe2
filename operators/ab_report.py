"""report_ab's Flink function: each listener's rankings and behaviour, attributed."""

from __future__ import annotations

import json

from pyflink.datastream import KeyedProcessFunction

END_OF_KEY = 9_223_372_036_854_775_807


class AttributeByUser(KeyedProcessFunction):
    """("ranking" | "event", message) keyed by user -> one JSON ``Outcome`` per ranking."""

    def open(self, runtime_context):
        # BATCH mode: one user's records arrive together, so instance memory suffices.
        self.pending: dict[str, tuple[list, list]] = {}

    def process_element(self, value, ctx):
        kind, message = value
        rankings, events = self.pending.setdefault(ctx.get_current_key(), ([], []))
        (rankings if kind == "ranking" else events).append(message)
        ctx.timer_service().register_event_time_timer(END_OF_KEY)

    def on_timer(self, timestamp, ctx):
        from models.ranking.ab_report import attribute

        rankings, events = self.pending.pop(ctx.get_current_key(), ([], []))
        for outcome in attribute(rankings, events):
            yield json.dumps(outcome.as_dict())
