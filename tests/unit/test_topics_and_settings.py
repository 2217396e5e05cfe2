import jsonschema
import pytest

from core.settings import FlinkSettings, KafkaSettings, RedisSettings, lake_root
from core.topics import TOPICS, topic
from onair.sim.sample_events import behavior_events, show_events


def test_topic_names_unique_and_every_schema_has_id_and_time():
    assert len({t.name for t in TOPICS.values()}) == len(TOPICS)
    for t in TOPICS.values():
        assert t.partitions >= 1
        names = t.schema.field_names()
        assert t.schema.id_field in names and t.schema.time_field in names
        assert t.key_field in names


def test_unknown_topic_names_the_known_ones():
    with pytest.raises(KeyError, match="behavior-events"):
        topic("nope")


@pytest.mark.parametrize("name", ["behavior-events", "show-events"])
def test_json_schema_export_accepts_samples_and_rejects_missing_kind_field(name):
    schema = TOPICS[name].schema.json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    events = behavior_events(50) if name == "behavior-events" else show_events(50)
    for e in events:
        jsonschema.validate(e, schema)
    like = {"event_id": "e", "event_type": "like", "ts": 1_764_000_000_000, "user_id": "u"}
    if name == "behavior-events":
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(like, schema)


def test_kafka_settings_from_env_pass_security_options_and_mask_secrets():
    env = {"KAFKA_BOOTSTRAP_SERVERS": "b1:9093,b2:9093", "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
           "KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "u",
           "KAFKA_SASL_PASSWORD": "hunter2", "ONAIR_TOPIC_PREFIX": "dev."}
    s = KafkaSettings.from_env(env)
    props = s.java_properties()
    assert props["bootstrap.servers"] == "b1:9093,b2:9093"
    assert props["security.protocol"] == "SASL_SSL"
    kw = s.python_client_kwargs()
    assert kw["bootstrap_servers"] == ["b1:9093", "b2:9093"]
    assert kw["sasl_plain_password"] == "hunter2"
    assert "hunter2" not in repr(s)
    assert s.topic("behavior-events") == "dev.behavior-events"


def test_defaults_point_at_the_embedded_stack():
    assert KafkaSettings.from_env({}).bootstrap_servers == "127.0.0.1:9092"
    assert RedisSettings.from_env({}).url == "redis://127.0.0.1:6379/0"
    assert FlinkSettings.from_env({}).address == "127.0.0.1:8081"
    assert lake_root({"ONAIR_HOME": "/tmp/x"}) == "file:///tmp/x/lake"
    assert "hunter2" not in repr(RedisSettings.from_env({"REDIS_PASSWORD": "hunter2"}))


def test_committed_json_schema_files_match_the_topics_module():
    import json
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "schemas"
    for t in TOPICS.values():
        committed = json.loads((folder / f"{t.name}.schema.json").read_text())
        assert committed == t.schema.json_schema(), f"regenerate: onair topics schemas ({t.name})"
