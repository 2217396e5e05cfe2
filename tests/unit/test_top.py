"""`onair top`'s figures from Flink's metric names (no job known by name), and the latency
window the jobs publish."""

from __future__ import annotations

import pytest

from models.latency import LatencyWindow
from onair.top import FIELDS, classify, combine, partition_lag


def test_metrics_are_recognised_by_name_alone():
    assert classify("Source__src_behavior_events[1].numRecordsInPerSecond") == "records_in_per_s"
    assert classify("Calc[2].numRecordsInPerSecond") is None
    assert classify("sink_dead_letters[14]__Writer.numRecordsOutPerSecond") == \
        "dead_letters_per_s"
    assert classify("sink_rec_rankings[7]__Writer.numRecordsOutPerSecond") == \
        "records_out_per_s"
    assert classify("Source__src_rec_requests[1].pendingRecords") == "lag"
    assert classify("show-user-features.onair.latency_p99_ms") == "latency_p99_ms"
    assert classify("rank.onair.model_version") == "model_version"
    assert classify("rank.onair.ranking_requests") is None


def test_a_row_sums_rates_and_takes_the_worst_latency():
    job = {"name": "rank_shows", "jid": "abc", "state": "RUNNING", "duration": 65_000}
    values = [("records_in_per_s", 40.0, 25.0), ("records_in_per_s", 10.0, 10.0),
              ("lag", 7.0, 5.0), ("latency_p99_ms", 30.0, 18.0),
              ("latency_p99_ms", 12.0, 12.0), ("model_version", 6.0, 3.0),
              ("redis_writes", 1e6, 1e6)]
    row = combine(job, values, restarts=2, checkpoint_ms=41, redis_writes_rate=5.0)
    assert list(row) == list(FIELDS)
    assert row["records_in_per_s"] == 50.0 and row["lag"] == 7.0
    assert row["latency_p99_ms"] == 18.0 and row["model_version"] == 3
    assert row["records_out_per_s"] == 5.0      # the feature store's writes
    assert row["restarts"] == 2 and row["uptime_s"] == 65 and row["dead_letters_per_s"] is None


def test_latency_window_keeps_the_last_minute_of_observations():
    w = LatencyWindow(size=100, horizon_s=60)
    assert w.quantiles(0.0, 0.5) is None
    for v in range(1000):              # the ring keeps the last 100
        w.add(float(v), now_s=0.0)
    p50, p99 = w.quantiles(0.0, 0.5, 0.99)
    assert p50 == pytest.approx(949.5) and p99 == pytest.approx(998.01)
    w.add(5.0, now_s=100.0)            # a minute later only the newest counts
    assert w.quantiles(100.0, 0.5, 0.99) == [5.0, 5.0]
    assert w.quantiles(200.0, 0.5) is None


def test_lag_per_partition_is_the_end_offset_past_the_last_record_read():
    ids = [f"Source__src_x[1].KafkaSourceReader.topic.t.x.partition.{p}.currentOffset"
           for p in (0, 1)]
    assert [classify(i) for i in ids] == [("t.x", 0), ("t.x", 1)]
    values = [("lag", 3.0, 3.0)]
    lag = partition_lag({classify(ids[0]): 99.0, classify(ids[1]): -1.0},
                        {"t.x": {0: 100, 1: 40}})
    assert lag == {"t.x:0": 0, "t.x:1": 40}   # read to the end; nothing read of 40
    row = combine({"name": "j", "jid": "i", "state": "RUNNING"}, values, 0, None, None, lag)
    assert row["lag"] == 40 and row["lag_by_partition"] == lag
    # The broker away: the sources' pendingRecords stand in.
    assert combine({"name": "j", "jid": "i", "state": "RUNNING"}, values, 0, None, None,
                   {})["lag"] == 3.0
