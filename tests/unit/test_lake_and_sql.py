import json

from connectors.kafka_sql import KafkaSinkSpec, KafkaSourceSpec
from connectors.lake import RawZoneSinkSpec, data_files, read_raw
from core.settings import KafkaSettings
from core.topics import BEHAVIOR_EVENT, SHOW_EVENT
from models.lake_rows import flatten, lake_columns, partition_of


def test_partition_is_utc_date_and_hour():
    assert partition_of(1_764_000_000_000) == ("2025-11-24", "16")
    assert partition_of(1_764_028_799_999) == ("2025-11-24", "23")


def test_flatten_follows_lake_columns_and_keeps_nested_as_json():
    event = {"event_id": "s1", "event_type": "scheduled", "ts": 1_764_000_000_000,
             "show_id": "s", "creator_id": "c", "scheduled_start": 1_764_100_000_000,
             "props": {"b": 1, "a": [1, 2]}, "unknown": "dropped"}
    cols = lake_columns(SHOW_EVENT)
    row = dict(zip([c for c, _ in cols], flatten(event, SHOW_EVENT), strict=True))
    assert row["props"] == '{"a":[1,2],"b":1}'
    assert row["title"] is None
    assert (row["dt"], row["hour"]) == ("2025-11-24", "16")
    assert "unknown" not in row


def test_source_ddl_bounded_offsets_and_security_options():
    kafka = KafkaSettings("k:9092", {"security.protocol": "SSL"})
    ddl = KafkaSourceSpec("src", "behavior-events", "g", stop_offsets={1: 7, 0: 5}).ddl(kafka)
    assert "'scan.bounded.specific-offsets' = 'partition:0,offset:5;partition:1,offset:7'" in ddl
    assert "'properties.security.protocol' = 'SSL'" in ddl
    assert "'properties.isolation.level' = 'read_committed'" in ddl
    assert "scan.bounded" not in KafkaSourceSpec("s", "t", "g").ddl(kafka)


def test_sink_ddl_is_transactional():
    ddl = KafkaSinkSpec("dlq", "dead-letters", "onair-x").ddl(KafkaSettings())
    assert "'sink.delivery-guarantee' = 'exactly-once'" in ddl
    assert "'sink.transactional-id-prefix' = 'onair-x'" in ddl


def test_raw_zone_ddl_rolls_within_interval():
    ddl = RawZoneSinkSpec("behavior_events", BEHAVIOR_EVENT, "file:///lake", 60).ddl()
    assert "'path' = 'file:///lake/raw/behavior_events'" in ddl
    assert "'sink.rolling-policy.rollover-interval' = '60s'" in ddl
    assert "PARTITIONED BY (`dt`, `hour`)" in ddl


def test_read_raw_skips_in_progress_files_and_markers(tmp_path):
    part = tmp_path / "raw" / "t" / "dt=2025-11-24" / "hour=16"
    part.mkdir(parents=True)
    (part / "part-1").write_text(json.dumps({"event_id": "a"}) + "\n")
    (part / ".part-2.inprogress").write_text(json.dumps({"event_id": "b"}) + "\n")
    (part / "_SUCCESS").write_text("")
    assert len(data_files(tmp_path / "raw")) == 1
    rows = list(read_raw(tmp_path.as_uri(), "t"))
    assert rows == [{"event_id": "a", "dt": "2025-11-24", "hour": "16"}]
