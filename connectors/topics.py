"""Every Kafka topic onair uses: name, partitions, key and message schema. The one place.

Schemas are small declarative field lists (no PyFlink import, no Kafka import) so that
validation in ``operators.validation`` and the JSON Schema export share one definition.
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


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    required: bool = True
    enum: tuple[str, ...] | None = None
    description: str = ""


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
        props: dict[str, Any] = {}
        for f in self.fields:
            prop: dict[str, Any] = {"type": f.type}
            if f.enum:
                prop["enum"] = list(f.enum)
            if f.description:
                prop["description"] = f.description
            props[f.name] = prop
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
_TS = "Event time, UTC epoch milliseconds."

BEHAVIOR_EVENT = MessageSchema(
    name="behavior_event",
    id_field="event_id",
    time_field="ts",
    kind_field="event_type",
    fields=(
        Field("event_id", "string", description=_ID),
        Field("event_type", "string"),
        Field("ts", "integer", description=_TS),
        Field("user_id", "string"),
        Field("show_id", "string", required=False),
        Field("creator_id", "string", required=False),
        Field("topic", "string", required=False, description="Topic of the show, if known."),
        Field("duration_ms", "integer", required=False,
              description="listen_stop only: how long the listener listened (client-reported)."),
        Field("props", "object", required=False, description="Free-form extra attributes."),
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
        Field("event_id", "string", description=_ID),
        Field("event_type", "string"),
        Field("ts", "integer", description=_TS),
        Field("show_id", "string"),
        Field("creator_id", "string"),
        Field("topic", "string", required=False),
        Field("title", "string", required=False),
        Field("scheduled_start", "integer", required=False, description="UTC epoch ms."),
        Field("props", "object", required=False),
    ),
    kinds={"scheduled": ("scheduled_start",), "live": (), "ended": (), "updated": ()},
)

RANKING_REQUEST = MessageSchema(
    name="ranking_request",
    id_field="request_id",
    time_field="ts",
    fields=(
        Field("request_id", "string", description=_ID),
        Field("user_id", "string"),
        Field("ts", "integer", description=_TS),
        Field("k", "integer", required=False, description="How many shows to return (10)."),
        Field("candidates", "array", required=False, description="Restrict to these show ids."),
    ),
)

RANKING = MessageSchema(
    name="ranking",
    id_field="request_id",
    time_field="ts",
    fields=(
        Field("request_id", "string", description="Id of the request this answers."),
        Field("user_id", "string"),
        Field("ts", "integer", description="Time of the request, UTC epoch ms."),
        Field("variant", "string", enum=("ml", "heuristic")),
        Field("model_version", "string", required=False),
        Field("items", "array", description="[{show_id, score, creator_id}] best first."),
        Field("latency_ms", "number"),
    ),
)

AUDIO_CHUNK = MessageSchema(
    name="audio_chunk",
    id_field="chunk_id",
    time_field="ts",
    max_bytes=1024 * 1024,
    fields=(
        Field("chunk_id", "string", description=_ID),
        Field("stream_id", "string"),
        Field("seq", "integer", description="Sequence number within the stream, from 0."),
        Field("ts", "integer", description="Time of the first sample, UTC epoch ms."),
        Field("sample_rate", "integer"),
        Field("encoding", "string", enum=("pcm_s16le",)),
        Field("channels", "integer", required=False, description="Only 1 (mono) is accepted."),
        Field("pcm", "string", description="Base64 of the little-endian 16-bit samples."),
    ),
)

ALARM_ALERT = MessageSchema(
    name="alarm_alert",
    id_field="alert_id",
    time_field="detected_ts",
    fields=(
        Field("alert_id", "string", description=_ID),
        Field("stream_id", "string"),
        Field("label", "string"),
        Field("onset_ts", "integer"),
        Field("detected_ts", "integer"),
        Field("confidence", "number"),
        Field("probabilities", "array"),
        Field("labels", "array"),
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
        Field("impression_id", "string", description=_ID),
        Field("request_id", "string", description="The app opening that showed it."),
        Field("ts", "integer", description="When it was shown, UTC epoch ms."),
        Field("user_id", "string"),
        Field("show_id", "string"),
        Field("creator_id", "string"),
        Field("topic", "string"),
        Field("position", "integer", description="Rank on screen, from 0."),
        Field("show_status", "string", enum=("live", "upcoming")),
        Field("liked", "boolean"),
        Field("followed", "boolean", description="Followed the show's creator."),
        Field("notified", "boolean", description="Turned on notifications for the show."),
        Field("listened_5m", "boolean", description="Listened five minutes or more."),
        Field("engaged", "boolean", description="Any of the four: the training label."),
    ),
)

USER_PROFILE = MessageSchema(
    name="user_profile",
    id_field="user_id",
    time_field="ts",
    fields=(
        Field("user_id", "string"),
        Field("ts", "integer", description="Sign-up time, UTC epoch ms."),
        Field("declared_topics", "array", description="Topics the listener said they like."),
        Field("country", "string", required=False),
    ),
)

CREATOR_PROFILE = MessageSchema(
    name="creator_profile",
    id_field="creator_id",
    time_field="ts",
    fields=(
        Field("creator_id", "string"),
        Field("ts", "integer", description="Sign-up time, UTC epoch ms."),
        Field("name", "string"),
        Field("main_topic", "string"),
    ),
)

TRANSCRIPT_SEGMENT = MessageSchema(
    name="transcript_segment",
    id_field="segment_id",
    time_field="ts",
    fields=(
        Field("segment_id", "string", description=_ID),
        Field("stream_id", "string", description="Stream or call id."),
        Field("speaker", "string", required=False),
        Field("text", "string"),
        Field("ts", "integer", description=_TS),
    ),
)

CORRECTED_TRANSCRIPT = MessageSchema(
    name="corrected_transcript",
    id_field="segment_id",
    time_field="ts",
    fields=(
        Field("segment_id", "string"),
        Field("stream_id", "string"),
        Field("speaker", "string", required=False),
        Field("text", "string", description="Corrected text."),
        Field("original_text", "string"),
        Field("replacements", "array"),
        Field("ts", "integer", description=_TS),
    ),
)

TRANSCRIPT_WER = MessageSchema(
    name="transcript_wer",
    id_field="update_id",
    time_field="ts",
    fields=(
        Field("update_id", "string", description="stream_id:segments"),
        Field("stream_id", "string"),
        Field("ts", "integer", description="Event time of the newest scored segment."),
        Field("segment_id", "string", description="The segment that triggered this update."),
        Field("segments", "integer", description="Segments in the window."),
        Field("ref_words", "integer"),
        Field("errors", "integer", description="Errors of the corrected text in the window."),
        Field("wer", "number", description="errors / ref_words over the window."),
        Field("wer_original", "number", description="The same before the vocabulary."),
        Field("segments_total", "integer", description="Segments scored since the start."),
        Field("wer_total", "number", description="WER over every segment since the start."),
    ),
)

DEAD_LETTER = MessageSchema(
    name="dead_letter",
    id_field="dead_letter_id",
    time_field="ts",
    fields=(
        Field("dead_letter_id", "string", description="source_topic:partition:offset"),
        Field("source_topic", "string"),
        Field("partition", "integer"),
        Field("offset", "integer"),
        Field("error", "string", description="Why the record was rejected."),
        Field("raw", "string", description="The raw bytes, truncated, decoded as UTF-8 with "
                                           "replacement (raw_encoding=utf8) or base64."),
        Field("raw_encoding", "string", enum=("utf8", "base64")),
        Field("raw_size", "integer", description="Size of the original value in bytes."),
        Field("job", "string"),
        Field("ts", "integer", description="When the record was rejected, UTC epoch ms."),
    ),
)

BEHAVIOR_EVENTS = Topic("behavior-events", 4, "user_id", BEHAVIOR_EVENT,
                        "Listener actions: likes, follows, listens, notification opt-ins.")
SHOW_EVENTS = Topic("show-events", 2, "show_id", SHOW_EVENT,
                    "Show lifecycle: scheduled, live, ended, updated.")
# Eight partitions for the latency-bound pair: Tansu 0.6 lists every batch a partition holds
# on each fetch that finds data, so a partition's fetches slow down as it fills; spread over 8,
# rankings at 200/s did not degrade within 20 s, on 2 they did (README, Known limits).
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
