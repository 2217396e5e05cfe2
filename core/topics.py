"""Every Kafka topic onair uses: name, partitions, key and message schema. The one place.

Schemas are small declarative field lists (no PyFlink import, no Kafka import) so that
validation in ``models.validation`` and the JSON Schema export share one definition.
All timestamps are UTC epoch milliseconds. Every event carries an id and an event-time field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# JSON type names used in schemas -> Python types accepted for them (bool is not an int here).
JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}

_TS_DOC = "Event time, UTC epoch milliseconds."

# Every integer is an int64 (the lake's BIGINT, Flink's LONG) unless its field says narrower.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Event times outside [2000-01-01, 2100-01-01) are certainly unit mistakes (seconds, micros).
MIN_TS_MS, MAX_TS_MS = 946_684_800_000, 4_102_444_800_000 - 1
ID_MAX_CHARS = 128
# Ids become Redis keys, Flink state keys (with U+001F as an inner separator) and log lines:
# no C0/C1 control characters, no DEL, no line or paragraph separators.
ID_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029]+$"
# Strings that are not ids or text (types, titles, encodings) stay short.
NAME_MAX_CHARS = 512


@dataclass(frozen=True)
class Field:
    """One field of a message and everything a value of it may be.

    ``id``: a string identifier (1..``ID_MAX_CHARS`` characters matching ``ID_PATTERN``).
    ``minimum``/``maximum``: inclusive bounds of an integer or number (integers default to
    int64). ``max_length``: characters of a string. ``items``: the JSON type of an array's
    items (``item_id``: each an id), ``max_items``, ``unique``. ``max_depth``: nesting of an
    object (1 = an object of scalars).
    """

    name: str
    type: str
    required: bool = True
    enum: tuple[str, ...] | None = None
    description: str = ""
    id: bool = False
    minimum: int | float | None = None
    maximum: int | float | None = None
    max_length: int | None = None
    items: str | None = None
    item_id: bool = False
    max_items: int | None = None
    unique: bool = False
    max_depth: int | None = None

    def bounds(self) -> tuple[int | float | None, int | float | None]:
        """(minimum, maximum) as enforced: integers never leave int64."""
        if self.type != "integer":
            return self.minimum, self.maximum
        lo = INT64_MIN if self.minimum is None else max(INT64_MIN, self.minimum)
        hi = INT64_MAX if self.maximum is None else min(INT64_MAX, self.maximum)
        return lo, hi

    def string_limit(self) -> int | None:
        if self.type != "string" or self.enum:
            return None
        if self.id:
            return ID_MAX_CHARS
        return self.max_length or NAME_MAX_CHARS

    def json_schema(self) -> dict[str, Any]:
        prop: dict[str, Any] = {"type": self.type}
        if self.enum:
            prop["enum"] = list(self.enum)
        if self.description:
            prop["description"] = self.description
        lo, hi = self.bounds()
        if lo is not None:
            prop["minimum"] = lo
        if hi is not None:
            prop["maximum"] = hi
        limit = self.string_limit()
        if limit is not None:
            prop["maxLength"] = limit
        if self.id:
            prop["minLength"] = 1
            prop["pattern"] = ID_PATTERN
        if self.items:
            item: dict[str, Any] = {"type": self.items}
            if self.item_id:
                item |= {"minLength": 1, "maxLength": ID_MAX_CHARS, "pattern": ID_PATTERN}
            prop["items"] = item
        if self.max_items is not None:
            prop["maxItems"] = self.max_items
        if self.unique:
            prop["uniqueItems"] = True
        if self.max_depth is not None:
            # JSON Schema cannot say "depth"; validation enforces it, the description says it.
            prop["description"] = (f"{self.description} " if self.description else "") + (
                f"Nested at most {self.max_depth} levels deep.")
        return prop


def Id(name: str, required: bool = True, description: str = "") -> Field:
    """An id field: a short string without control characters (``ID_PATTERN``)."""
    return Field(name, "string", required, description=description, id=True)


def Time(name: str, required: bool = True, description: str = _TS_DOC) -> Field:
    """An event-time field: UTC epoch milliseconds within 2000..2100."""
    return Field(name, "integer", required, description=description, minimum=MIN_TS_MS,
                 maximum=MAX_TS_MS)


@dataclass(frozen=True)
class MessageSchema:
    """A JSON object schema. ``kind_field`` names the discriminator (``event_type``) whose value
    must be one of ``kinds``; ``kinds`` maps each value to the extra fields it requires."""

    name: str
    id_field: str
    time_field: str
    fields: tuple[Field, ...]
    kind_field: str | None = None
    kinds: dict[str, tuple[str, ...]] = field(default_factory=dict)
    max_bytes: int = 64 * 1024

    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def json_schema(self) -> dict[str, Any]:
        """The same schema as a JSON Schema (draft 2020-12) document."""
        props: dict[str, Any] = {f.name: f.json_schema() for f in self.fields}
        if self.kind_field:
            props[self.kind_field]["enum"] = sorted(self.kinds)
        doc: dict[str, Any] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": self.name,
            "type": "object",
            "properties": props,
            "required": [f.name for f in self.fields if f.required],
        }
        if self.kind_field:
            doc["allOf"] = [
                {
                    "if": {"properties": {self.kind_field: {"const": kind}}},
                    "then": {"required": list(extra)},
                }
                for kind, extra in sorted(self.kinds.items())
                if extra
            ]
        return doc


@dataclass(frozen=True)
class Topic:
    name: str
    partitions: int
    key_field: str
    schema: MessageSchema
    description: str = ""


_ID = "Unique id of the message, used for de-duplication."
_TS = _TS_DOC
# Free-form attributes: any JSON, but shallow (a deep object is a stack overflow waiting for
# the next recursive step: pickling between operators, JSON encoding, the lake).
PROPS_DEPTH = 4
DAY_MS = 86_400_000
# A candidate list is what one feed shows; the ranker scores each with a Redis read.
MAX_CANDIDATES = 1000
MAX_K = 100
MAX_TEXT_CHARS = 8192

BEHAVIOR_EVENT = MessageSchema(
    name="behavior_event",
    id_field="event_id",
    time_field="ts",
    kind_field="event_type",
    fields=(
        Id("event_id", description=_ID),
        Field("event_type", "string"),
        Time("ts"),
        Id("user_id"),
        Id("show_id", required=False),
        Id("creator_id", required=False),
        Id("topic", required=False, description="Topic of the show, if known."),
        Field("duration_ms", "integer", required=False, minimum=0, maximum=7 * DAY_MS,
              description="listen_stop only: how long the listener listened (client-reported)."),
        Field("props", "object", required=False, max_depth=PROPS_DEPTH,
              description="Free-form extra attributes."),
    ),
    kinds={
        "like": ("show_id",),
        "unlike": ("show_id",),
        "listen_start": ("show_id",),
        "listen_stop": ("show_id",),
        "notify_on": ("show_id",),
        "notify_off": ("show_id",),
        "follow": ("creator_id",),
        "unfollow": ("creator_id",),
    },
)

SHOW_EVENT = MessageSchema(
    name="show_event",
    id_field="event_id",
    time_field="ts",
    kind_field="event_type",
    fields=(
        Id("event_id", description=_ID),
        Field("event_type", "string"),
        Time("ts"),
        Id("show_id"),
        Id("creator_id"),
        Id("topic", required=False),
        Field("title", "string", required=False),
        Time("scheduled_start", required=False, description="UTC epoch ms."),
        Field("props", "object", required=False, max_depth=PROPS_DEPTH),
    ),
    kinds={"scheduled": ("scheduled_start",), "live": (), "ended": (), "updated": ()},
)

RANKING_REQUEST = MessageSchema(
    name="ranking_request",
    id_field="request_id",
    time_field="ts",
    fields=(
        Id("request_id", description=_ID),
        Id("user_id"),
        Time("ts"),
        Field("k", "integer", required=False, minimum=1, maximum=MAX_K,
              description="How many shows to return (10)."),
        Field("candidates", "array", required=False, items="string", item_id=True,
              max_items=MAX_CANDIDATES, unique=True, description="Restrict to these show ids."),
    ),
)

RANKING = MessageSchema(
    name="ranking",
    id_field="request_id",
    time_field="ts",
    fields=(
        Id("request_id", description="Id of the request this answers."),
        Id("user_id"),
        Time("ts", description="Time of the request, UTC epoch ms."),
        Field("variant", "string", enum=("ml", "heuristic")),
        Field("model_version", "string", required=False),
        Field("items", "array", items="object", max_items=MAX_K,
              description="[{show_id, score, creator_id}] best first."),
        Field("latency_ms", "number"),
        Field("degraded", "boolean", required=False,
              description="Ranked without the online store (Redis unreachable): catalog only."),
    ),
)

AUDIO_CHUNK = MessageSchema(
    name="audio_chunk",
    id_field="chunk_id",
    time_field="ts",
    max_bytes=1024 * 1024,
    fields=(
        Id("chunk_id", description=_ID),
        Id("stream_id"),
        Field("seq", "integer", minimum=0, maximum=2**53,
              description="Sequence number within the stream, from 0. A restart from 0 or a "
                          "jump far ahead starts the stream anew."),
        Time("ts", description="Time of the first sample, UTC epoch ms."),
        Field("sample_rate", "integer", minimum=8_000, maximum=48_000),
        Field("encoding", "string", enum=("pcm_s16le",)),
        Field("channels", "integer", required=False, minimum=1, maximum=1,
              description="Only 1 (mono) is accepted."),
        Field("pcm", "string", max_length=1024 * 1024,
              description="Base64 of the little-endian 16-bit samples."),
    ),
)

ALARM_ALERT = MessageSchema(
    name="alarm_alert",
    id_field="alert_id",
    time_field="detected_ts",
    fields=(
        Id("alert_id", description=_ID),
        Id("stream_id"),
        Field("label", "string"),
        Time("onset_ts"),
        Time("detected_ts"),
        Field("confidence", "number", minimum=0, maximum=1),
        Field("probabilities", "array", items="number"),
        Field("labels", "array", items="string"),
        Field("predicted_label", "string"),
        Field("model_version", "string"),
    ),
)

# Lake-only tables (no topic): written by the world simulator, read by the batch jobs.
IMPRESSION = MessageSchema(
    name="impression",
    id_field="impression_id",
    time_field="ts",
    fields=(
        Id("impression_id", description=_ID),
        Id("request_id", description="The app opening that showed it."),
        Time("ts", description="When it was shown, UTC epoch ms."),
        Id("user_id"),
        Id("show_id"),
        Id("creator_id"),
        Id("topic"),
        Field("position", "integer", minimum=0, description="Rank on screen, from 0."),
        Field("show_status", "string", enum=("live", "upcoming")),
        Field("liked", "boolean"),
        Field("followed", "boolean", description="Followed the show's creator."),
        Field("notified", "boolean", description="Turned on notifications for the show."),
        Field("listened_5m", "boolean", description="Listened five minutes or more."),
        Field("engaged", "boolean", description="Any of the four."),
        Field("listened", "boolean", required=False,
              description="Started listening to the show in that session."),
        Field("listen_minutes", "number", required=False, minimum=0, maximum=1440,
              description="Minutes listened to the show in that session."),
        Field("attributed_minutes", "number", required=False, minimum=0, maximum=10080,
              description="listen_minutes plus the listening the impression brought later: "
                          "its show when a notification it turned on fired, the creator's "
                          "next show when it brought a follow."),
        Field("propensity", "number", required=False, minimum=1e-9, maximum=1,
              description="The logging policy's probability of showing this show at this "
                          "position, given the feed's shows (for off-policy evaluation)."),
    ),
)

USER_PROFILE = MessageSchema(
    name="user_profile",
    id_field="user_id",
    time_field="ts",
    fields=(
        Id("user_id"),
        Time("ts", description="Sign-up time, UTC epoch ms."),
        Field("declared_topics", "array", items="string", item_id=True,
              description="Topics the listener said they like."),
        Field("country", "string", required=False),
    ),
)

CREATOR_PROFILE = MessageSchema(
    name="creator_profile",
    id_field="creator_id",
    time_field="ts",
    fields=(
        Id("creator_id"),
        Time("ts", description="Sign-up time, UTC epoch ms."),
        Field("name", "string"),
        Id("main_topic"),
    ),
)

TRANSCRIPT_SEGMENT = MessageSchema(
    name="transcript_segment",
    id_field="segment_id",
    time_field="ts",
    fields=(
        Id("segment_id", description=_ID),
        Id("stream_id", description="Stream or call id."),
        Id("speaker", required=False),
        Field("text", "string", max_length=MAX_TEXT_CHARS),
        Time("ts"),
    ),
)

CORRECTED_TRANSCRIPT = MessageSchema(
    name="corrected_transcript",
    id_field="segment_id",
    time_field="ts",
    fields=(
        Id("segment_id"),
        Id("stream_id"),
        Id("speaker", required=False),
        Field("text", "string", max_length=4 * MAX_TEXT_CHARS, description="Corrected text."),
        Field("original_text", "string", max_length=MAX_TEXT_CHARS),
        Field("replacements", "array", items="object"),
        Time("ts"),
    ),
)

TRANSCRIPT_WER = MessageSchema(
    name="transcript_wer",
    id_field="update_id",
    time_field="ts",
    fields=(
        Field("update_id", "string", description="stream_id:segments"),
        Id("stream_id"),
        Time("ts", description="Event time of the newest scored segment."),
        Id("segment_id", description="The segment that triggered this update."),
        Field("segments", "integer", minimum=0, description="Segments in the window."),
        Field("ref_words", "integer", minimum=0),
        Field("errors", "integer", minimum=0,
              description="Errors of the corrected text in the window."),
        Field("wer", "number", minimum=0, description="errors / ref_words over the window."),
        Field("wer_original", "number", minimum=0, description="The same before the vocabulary."),
        Field("segments_total", "integer", minimum=0,
              description="Segments scored since the start."),
        Field("wer_total", "number", minimum=0,
              description="WER over every segment since the start."),
    ),
)

DEAD_LETTER = MessageSchema(
    name="dead_letter",
    id_field="dead_letter_id",
    time_field="ts",
    fields=(
        Field("dead_letter_id", "string",
              description="source_topic:partition:offset, or source_topic:operator:message id "
                          "for a record that failed after validation"),
        Field("source_topic", "string"),
        Field("partition", "integer"),
        Field("offset", "integer"),
        Field("error", "string", max_length=4096, description="Why the record was rejected."),
        Field("raw", "string", max_length=4096,
              description="The raw bytes, truncated, decoded as UTF-8 with "
                          "replacement (raw_encoding=utf8) or base64."),
        Field("raw_encoding", "string", enum=("utf8", "base64")),
        Field("raw_size", "integer", minimum=0, description="Size of the original value in bytes."),
        Field("job", "string"),
        Field("operator", "string", required=False,
              description="The operator that rejected it (validation, or the one whose logic "
                          "raised)."),
        Time("ts", description="When the record was rejected, UTC epoch ms."),
    ),
)

BEHAVIOR_EVENTS = Topic("behavior-events", 4, "user_id", BEHAVIOR_EVENT,
                        "Listener actions: likes, follows, listens, notification opt-ins.")
SHOW_EVENTS = Topic("show-events", 2, "show_id", SHOW_EVENT,
                    "Show lifecycle: scheduled, live, ended, updated.")
# Eight partitions for the latency-bound pair: Tansu 0.6 lists every batch a partition holds
# on each fetch that finds data, so a partition's fetches slow down as it fills; spread over 8,
# rankings at 200/s did not degrade within 20 s, on 2 they did (docs/design-notes.md).
REC_REQUESTS = Topic("rec-requests", 8, "user_id", RANKING_REQUEST,
                     "A listener opened the app: rank shows for them.")
REC_RANKINGS = Topic("rec-rankings", 8, "user_id", RANKING, "Ranked shows per request.")
AUDIO_CHUNKS = Topic("audio-chunks", 2, "stream_id", AUDIO_CHUNK, "PCM audio of live streams.")
ALARM_ALERTS = Topic("alarm-alerts", 1, "stream_id", ALARM_ALERT, "An alarm was heard.")
TRANSCRIPTS = Topic("transcripts", 2, "stream_id", TRANSCRIPT_SEGMENT,
                    "Transcript segments from the speech recogniser.")
TRANSCRIPT_REFERENCES = Topic("transcript-references", 2, "stream_id", TRANSCRIPT_SEGMENT,
                              "Reference (human) transcripts of segments, for WER.")
TRANSCRIPTS_CORRECTED = Topic("transcripts-corrected", 2, "stream_id", CORRECTED_TRANSCRIPT,
                              "Segments after the custom vocabulary.")
TRANSCRIPT_WER_TOPIC = Topic("transcript-wer", 1, "stream_id", TRANSCRIPT_WER,
                             "Rolling word error rate per stream.")
DEAD_LETTERS = Topic("dead-letters", 1, "source_topic", DEAD_LETTER,
                     "Every record a job rejected, with the reason.")

TOPICS: dict[str, Topic] = {
    t.name: t
    for t in (
        BEHAVIOR_EVENTS, SHOW_EVENTS, REC_REQUESTS, REC_RANKINGS, AUDIO_CHUNKS, ALARM_ALERTS,
        TRANSCRIPTS, TRANSCRIPT_REFERENCES, TRANSCRIPTS_CORRECTED, TRANSCRIPT_WER_TOPIC,
        DEAD_LETTERS,
    )
}


def topic(name: str) -> Topic:
    try:
        return TOPICS[name]
    except KeyError:
        raise KeyError(f"unknown topic {name!r}; known topics: {', '.join(TOPICS)}") from None
