"""Records chosen to break a job: the hostile cases every job must survive.

Each case is one Kafka record of a topic. ``rejected`` names (a part of) the dead-letter
reason validation gives it; a case with ``rejected`` None is valid after validation strips
what its schema does not declare, and must be applied like any other record (its cost at the
maximum accepted size is what ``bench_hostile`` measures). The unit tests, the hostile-records
integration tests and ``bench_hostile`` share these cases.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from core.topics import ID_MAX_CHARS, MAX_CANDIDATES, MAX_TEXT_CHARS

T0_MS = 1_764_000_000_000
# One id of every character class an id may hold: letters of several scripts, digits,
# punctuation (the entity-key separator ':' and the path separator '/' among them), spaces,
# symbols and an emoji outside the BMP. State keys, Redis keys and JSON must all carry it.
ODD_ID = "Ab9 :/_-.é中文ש😀%+*#@!~'\"\\"
TOO_DEEP = 500


@dataclass(frozen=True)
class HostileCase:
    name: str
    topic: str
    key: str
    value: bytes
    rejected: str | None = None


def _json(message: object) -> bytes:
    return json.dumps(message, ensure_ascii=False).encode("utf-8")


def _nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def behavior_cases(t0_ms: int = T0_MS) -> list[HostileCase]:
    def event(i: int, **kw) -> dict:
        return {"event_id": f"hb-{i}", "event_type": "like", "ts": t0_ms + i, "user_id": "hu1",
                "show_id": "hs1"} | kw

    cases = [
        ("follow with an extra 'kind'", event(1, event_type="follow", creator_id="hc1",
                                               kind="live", show_id=None), None),
        ("listen_stop with an extra list", event(2, event_type="listen_stop", live=[1]), None),
        ("odd but valid ids", event(3, user_id=ODD_ID, show_id=ODD_ID), None),
        ("longest id", event(4, user_id="u" * ID_MAX_CHARS), None),
        ("duration above int64", event(5, event_type="listen_stop", duration_ms=2**64 - 1),
         "above its maximum"),
        ("negative duration", event(6, event_type="listen_stop", duration_ms=-1),
         "below its minimum"),
        ("props 500 levels deep", event(7, props=_nested(TOO_DEEP)), "nested"),
        ("unit separator in an id", event(8, user_id="u\x1fx"), "control character"),
        ("newline in an id", event(9, show_id="s\n1"), "control character"),
        ("id too long", event(10, user_id="u" * (ID_MAX_CHARS + 1)), "characters"),
        ("id of the wrong type", event(11, user_id=["x"]), "must be string"),
        ("ts above int64", event(12, ts=2**63), "epoch milliseconds"),
        ("boolean as an integer", event(13, ts=True), "got boolean"),
        ("event_type as an object", event(14, event_type={"a": 1}), "must be string"),
    ]
    return [HostileCase(name, "behavior-events", str(m.get("user_id")),
                        _json({k: v for k, v in m.items() if v is not None}), why)
            for name, m, why in cases]


def show_cases(t0_ms: int = T0_MS) -> list[HostileCase]:
    def event(i: int, **kw) -> dict:
        return {"event_id": f"hsh-{i}", "event_type": "live", "ts": t0_ms + i,
                "show_id": "hs2", "creator_id": "hc2", "topic": "tech"} | kw

    cases = [
        ("show event with a user_id list", event(1, user_id=["x"]), None),
        ("title at its limit", event(2, event_type="updated", title="t" * 512), None),
        ("scheduled_start of 2^63", event(3, event_type="scheduled", scheduled_start=2**63),
         "epoch milliseconds"),
        ("title too long", event(4, title="t" * 513), "characters"),
        ("props 500 levels deep", event(5, props=_nested(TOO_DEEP)), "nested"),
        ("unit separator in a show id", event(6, show_id="s\x1f2"), "control character"),
    ]
    return [HostileCase(name, "show-events", str(m["show_id"]), _json(m), why)
            for name, m, why in cases]


def request_cases(t0_ms: int = T0_MS) -> list[HostileCase]:
    def request(i: int, **kw) -> dict:
        return {"request_id": f"hr-{i}", "user_id": "hu1", "ts": t0_ms + i} | kw

    cases = [
        ("candidates holding a number", request(1, candidates=["s1", 2]), "must be string"),
        ("candidates holding a list", request(2, candidates=["s1", ["s2"]]), "must be string"),
        ("candidates holding null", request(3, candidates=["s1", None]), "got null"),
        ("duplicate candidates", request(4, candidates=["s1", "s1"]), "duplicates"),
        ("too many candidates",
         request(5, candidates=[f"s{i}" for i in range(MAX_CANDIDATES + 1)]), "items"),
        ("k of 0", request(6, k=0), "below its minimum"),
        ("negative k", request(7, k=-5), "below its minimum"),
        ("k above uint64", request(8, k=2**64), "must be integer"),
        ("request with an extra field", request(9, variant=["ml"]), None),
        ("most candidates", request(10, candidates=[f"hs-{i}" for i in range(MAX_CANDIDATES)]),
         None),
    ]
    return [HostileCase(name, "rec-requests", "hu1", _json(m), why) for name, m, why in cases]


def transcript_cases(t0_ms: int = T0_MS) -> list[HostileCase]:
    def segment(i: int, text: str, **kw) -> dict:
        return {"segment_id": f"ht-{i}", "stream_id": "hst1", "ts": t0_ms + i, "text": text} | kw

    cases = [
        ("one word of the longest text", segment(1, "a" * MAX_TEXT_CHARS), None),
        ("Chinese without spaces", segment(2, "中文语音识别" * (MAX_TEXT_CHARS // 6)), None),
        ("one-letter words", segment(3, "a " * (MAX_TEXT_CHARS // 2)), None),
        ("text too long", segment(4, "a" * (MAX_TEXT_CHARS + 1)), "characters"),
        ("text of the wrong type", segment(5, ["a"]), "must be string"),
        ("speaker with a control character", segment(6, "hi", speaker="a\x00"),
         "control character"),
    ]
    return [HostileCase(name, "transcripts", "hst1", _json(m), why) for name, m, why in cases]


def audio_cases(t0_ms: int = T0_MS) -> list[HostileCase]:
    def chunk(i: int, **kw) -> dict:
        return {"chunk_id": f"ha-{i}", "stream_id": "hau1", "seq": i, "ts": t0_ms + i * 100,
                "sample_rate": 16000, "encoding": "pcm_s16le", "pcm": "AAAAAA=="} | kw

    cases = [
        ("seq above int64", chunk(1, seq=2**63), "above its maximum"),
        ("negative seq", chunk(2, seq=-1), "below its minimum"),
        ("sample rate of 1 Hz", chunk(3, sample_rate=1), "below its minimum"),
        ("stereo", chunk(4, channels=2), "above its maximum"),
        ("pcm that is not base64", chunk(5, pcm="!!!"), "base64"),
    ]
    return [HostileCase(name, "audio-chunks", "hau1", _json(m), why) for name, m, why in cases]


def hostile_cases() -> list[HostileCase]:
    return [*behavior_cases(), *show_cases(), *request_cases(), *transcript_cases(),
            *audio_cases()]
