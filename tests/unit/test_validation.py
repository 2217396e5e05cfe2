import base64
import json

import pytest

from core.topics import AUDIO_CHUNK, BEHAVIOR_EVENT, PROPS_DEPTH, RANKING, SHOW_EVENT, TOPICS
from models.alarms.pcm import decode_chunk
from models.validation import RAW_PREVIEW_BYTES, InvalidRecord, dead_letter, parse
from onair.sim.sample_events import behavior_events, malformed_values, show_events
from onair.sim.sample_hostile import ODD_ID, hostile_cases

GOOD = {"event_id": "e1", "event_type": "like", "ts": 1_764_000_000_000, "user_id": "u1",
        "show_id": "s1"}


def raw(message) -> bytes:
    return json.dumps(message).encode()


def test_valid_event_is_returned_unchanged():
    assert parse(raw(GOOD), BEHAVIOR_EVENT) == GOOD


@pytest.mark.parametrize("event", list(behavior_events(200)) + list(show_events(50)))
def test_sample_events_are_valid(event):
    schema = BEHAVIOR_EVENT if event["event_id"].startswith("b-") else SHOW_EVENT
    assert parse(raw(event), schema) == event


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "empty value"),
        (b"{not json", "bad JSON"),
        (b"\xff\xfe\x00", "not UTF-8"),
        (raw([GOOD]), "must be a JSON object, got list"),
        (raw({k: v for k, v in GOOD.items() if k != "user_id"}),
         "missing required field 'user_id'"),
        (raw(GOOD | {"ts": "yesterday"}), "field 'ts' must be integer, got str"),
        (raw(GOOD | {"ts": 1.5e12}), "field 'ts' must be integer, got float"),
        (raw(GOOD | {"ts": True}), "field 'ts' must be integer, got boolean"),
        (raw(GOOD | {"ts": 1_700_000_000}), "not epoch milliseconds"),
        (raw(GOOD | {"user_id": 42}), "field 'user_id' must be string, got int"),
        (raw(GOOD | {"event_type": "teleport"}), "unknown event_type 'teleport'"),
        (raw({k: v for k, v in GOOD.items() if k != "show_id"}), "'like' requires field 'show_id'"),
        (raw(GOOD | {"event_type": "follow"}), "'follow' requires field 'creator_id'"),
        (raw(GOOD | {"event_id": ""}), "field 'event_id' is empty"),
        (raw(GOOD | {"pad": "x" * 70_000}), "larger than the 65536 allowed"),
    ],
)
def test_malformed_records_are_rejected_with_reason(value, reason):
    with pytest.raises(InvalidRecord, match=None) as err:
        parse(value, BEHAVIOR_EVENT)
    assert reason in str(err.value)


def test_every_sample_malformed_value_is_rejected():
    for value in malformed_values(16):
        with pytest.raises(InvalidRecord):
            parse(value, BEHAVIOR_EVENT)


def test_enum_fields_are_enforced():
    chunk = {"chunk_id": "c", "stream_id": "s", "seq": 0, "ts": 1_764_000_000_000,
             "sample_rate": 16000, "encoding": "mp3", "pcm": ""}
    with pytest.raises(InvalidRecord, match="'encoding' is 'mp3'"):
        parse(raw(chunk), AUDIO_CHUNK)


def test_non_finite_numbers_are_rejected_as_bad_json():
    # NaN and 1e999 are not JSON numbers (RFC 8259); the decoder refuses them.
    for literal in (b"NaN", b"1e999", b"-Infinity"):
        with pytest.raises(InvalidRecord, match="bad JSON"):
            parse(b'{"request_id":"r","user_id":"u","ts":1764000000000,"variant":"ml",'
                  b'"items":[],"latency_ms":' + literal + b"}", RANKING)


def test_dead_letter_keeps_metadata_and_truncates():
    big = b'{"x": "' + "é".encode() * 2000 + b'"}'
    letter = dead_letter(raw=big, source_topic="behavior-events", partition=3, offset=42,
                         error="boom", job="j", now_ms=5)
    assert letter["dead_letter_id"] == "behavior-events:3:42"
    assert (letter["partition"], letter["offset"], letter["error"]) == (3, 42, "boom")
    assert letter["raw_size"] == len(big)
    assert letter["raw_encoding"] == "utf8"
    assert len(letter["raw"].encode()) <= RAW_PREVIEW_BYTES
    assert big.decode().startswith(letter["raw"])


def test_dead_letter_of_binary_is_base64():
    letter = dead_letter(raw=b"\xff\x00\x01", source_topic="t", partition=0, offset=0,
                         error="e", job="j")
    assert letter["raw_encoding"] == "base64"
    assert base64.b64decode(letter["raw"]) == b"\xff\x00\x01"


def test_validate_row_types_a_good_row_and_dead_letters_a_bad_one():
    from pyflink.common import Row

    from operators.validate import as_message, validate_row

    route = (BEHAVIOR_EVENT, as_message)
    ok, message = validate_row(Row(value=raw(GOOD), topic="t", partition=1, offset=7), route, "j")
    assert ok and message == GOOD

    ok, row = validate_row(Row(value=b"{not json", topic="t", partition=1, offset=8), route, "j")
    letter = json.loads(row[1])
    assert not ok and row[0] == b"t" and row[2]["error"]
    assert (letter["source_topic"], letter["partition"], letter["offset"], letter["job"]) == (
        "t", 1, 8, "j")

    ok, row = validate_row(Row(value=raw(GOOD), topic="other", partition=0, offset=0), None, "j")
    assert not ok and "no schema routed" in json.loads(row[1])["error"]


def test_validate_row_refuses_a_record_keyed_by_another_entity():
    from pyflink.common import Row

    from operators.validate import as_message, validate_row

    route = (BEHAVIOR_EVENT, as_message)
    good = Row(value=raw(GOOD), topic="t", partition=0, offset=3)
    assert validate_row(good, route, "j", ("user_id", GOOD["user_id"]))[0]
    ok, row = validate_row(good, route, "j", ("user_id", "someone-else"))
    error = json.loads(row[1])["error"]
    assert not ok and "Kafka key 'someone-else'" in error and "keyed by user_id" in error


def test_validate_function_sends_untagged_topics_to_the_main_output():
    from pyflink.common import Row, Types
    from pyflink.datastream import OutputTag

    from operators.validate import (
        DEAD_LETTER_TAG,
        ValidateFunction,
        as_message,
        validate_row,
    )

    tag = OutputTag("valid-u", Types.PICKLED_BYTE_ARRAY())
    fn = ValidateFunction("j", {"t": (BEHAVIOR_EVENT, None, as_message),
                                "u": (BEHAVIOR_EVENT, tag, as_message)})
    fn.validate = lambda value, route: validate_row(value, route, "j")   # no metrics here

    def out(topic, value=None):
        row = Row(value=value or raw(GOOD), topic=topic, partition=0, offset=1)
        return list(fn.process_element(row, None))

    assert out("t") == [GOOD]
    assert out("u") == [(tag, GOOD)]
    [(where, _letter)] = out("t", b"{not json")
    assert where is DEAD_LETTER_TAG


@pytest.mark.parametrize("case", hostile_cases(), ids=lambda c: f"{c.topic}:{c.name}")
def test_hostile_cases_are_rejected_with_their_reason_or_stripped_to_the_schema(case):
    schema = TOPICS[case.topic].schema
    if case.rejected is not None:
        with pytest.raises(InvalidRecord) as err:
            message = parse(case.value, schema)
            if case.topic == "audio-chunks":
                decode_chunk(message)
        assert case.rejected in str(err.value)
        return
    message = parse(case.value, schema)
    assert set(message) <= set(schema.field_names())
    for f in schema.fields:
        if f.name in message:
            assert message[f.name] == json.loads(case.value)[f.name]


def test_validation_keeps_only_declared_fields_and_drops_nulls():
    message = parse(raw(GOOD | {"kind": "live", "creator_id": None, "props": {"a": [1]}}),
                    BEHAVIOR_EVENT)
    assert message == GOOD | {"props": {"a": [1]}}


def test_props_depth_limit_is_exact():
    nested: dict = {}
    for _ in range(PROPS_DEPTH - 1):
        nested = {"a": nested}
    assert parse(raw(GOOD | {"props": nested}), BEHAVIOR_EVENT)["props"] == nested
    with pytest.raises(InvalidRecord, match="nested"):
        parse(raw(GOOD | {"props": {"a": nested}}), BEHAVIOR_EVENT)


def test_json_nested_past_the_decoder_limit_is_a_reason_not_a_crash():
    with pytest.raises(InvalidRecord, match="bad JSON"):
        parse(b'{"props":' + b"[" * 20_000 + b"]" * 20_000 + b"}", BEHAVIOR_EVENT)


def test_every_integer_is_bounded_by_int64():
    for t in TOPICS.values():
        for f in t.schema.fields:
            if f.type == "integer":
                lo, hi = f.bounds()
                assert -(2**63) <= lo <= hi <= 2**63 - 1, (t.name, f.name)


def test_the_odd_id_is_a_valid_id_and_the_json_schema_agrees():
    import jsonschema

    event = GOOD | {"user_id": ODD_ID, "show_id": ODD_ID}
    assert parse(raw(event), BEHAVIOR_EVENT) == event
    jsonschema.validate(event, BEHAVIOR_EVENT.json_schema())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(GOOD | {"user_id": "u\x1f"}, BEHAVIOR_EVENT.json_schema())


def test_a_record_whose_logic_raised_is_a_dead_letter_naming_the_operator():
    from models.validation import logic_failure

    letter = logic_failure(GOOD, KeyError("show_id"), source_topic="behavior-events",
                           message_id="e1", job="compute_features", operator="entities",
                           now_ms=1_764_000_000_000)
    assert letter["dead_letter_id"] == "behavior-events:entities:e1"
    assert letter["operator"] == "entities" and letter["error"].startswith("KeyError in entities")
    assert json.loads(letter["raw"]) == GOOD and (letter["partition"], letter["offset"]) == (-1, -1)
    jsonschema_validate(letter)


def jsonschema_validate(letter):
    import jsonschema

    from core.topics import DEAD_LETTER

    jsonschema.validate(letter, DEAD_LETTER.json_schema())


def test_the_barrier_reraises_faults_and_letters_logic_errors():
    import redis

    from operators.validate import DEAD_LETTER_TAG, RecordBarrier

    class Group:
        def add_group(self, _):
            return self

        def counter(self, _):
            return type("C", (), {"n": 0, "inc": lambda self, k=1: None})()

    ctx = type("Ctx", (), {"get_metrics_group": lambda self: Group()})()
    barrier = RecordBarrier("j", "op", ctx)
    tag, row = barrier.letter(TypeError("boom"), GOOD, source_topic="t", message_id="e1")
    assert tag is DEAD_LETTER_TAG and b"TypeError in op: boom" in row[1]
    for fault in (redis.ConnectionError("down"), ConnectionResetError(), MemoryError()):
        with pytest.raises(type(fault)):
            barrier.letter(fault, GOOD, source_topic="t", message_id="e1")
