"""correct_transcripts: custom vocabulary on transcript segments, rolling WER per stream.

transcripts -> validate -> vocabulary -> transcripts-corrected
                                 \\-> pair with transcript-references by segment id
                                       -> rolling WER per stream -> transcript-wer (+ metrics)
Malformed segments and references go to dead-letters. The vocabulary file is re-read when it
changes; it must be readable at the same path on every TaskManager.

    flink run -py jobs/correct_transcripts.py -pyfs core,models,connectors,operators -- --vocab F
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from pyflink.common import Types
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment

from connectors.flink_env import run_job
from core.config import connection, group, option, parse
from core.settings import FlinkJobSettings, KafkaSettings
from core.topics import (
    TRANSCRIPT_REFERENCES,
    TRANSCRIPT_WER_TOPIC,
    TRANSCRIPTS,
    TRANSCRIPTS_CORRECTED,
)
from models.transcripts.vocabulary import VocabularyError, load_vocabulary
from operators.kafka_io import Input, add_dead_letter_sink, add_kafka_sink, validated_inputs
from operators.transcripts import (
    CORRECTED_TAG,
    CorrectTranscriptFunction,
    PairSegmentsFunction,
    RollingWerFunction,
)
from operators.validate import DEAD_LETTER_TAG, KAFKA_ROW_TYPE

JOB = "correct_transcripts"


@dataclass(frozen=True)
class CorrectTranscriptsConfig:
    kafka: KafkaSettings = connection(KafkaSettings)
    flink: FlinkJobSettings = group(FlinkJobSettings, python_mode="process")
    vocab: str | None = option(None, "vocabulary TSV (Phrase IPA SoundsLike DisplayAs)",
                               required=True, legacy_env=("TRANSCRIPTS_VOCAB",))
    group_id: str = option("onair-correct-transcripts", "Kafka consumer group",
                           legacy_env=("TRANSCRIPTS_GROUP_ID",))
    wer_window: int = option(100, "segments in the rolling WER", minimum=1, maximum=100_000,
                             legacy_env=("TRANSCRIPTS_WER_WINDOW",))
    reload_check_s: float = option(5.0, "how often to look for a changed vocabulary file, s",
                                   minimum=0.1)

    def __post_init__(self) -> None:
        if self.vocab:
            object.__setattr__(self, "vocab", str(Path(self.vocab).resolve()))


def build_pipeline(env: StreamExecutionEnvironment, t_env: StreamTableEnvironment,
                   cfg: CorrectTranscriptsConfig) -> None:
    valid, dead = validated_inputs(
        t_env, cfg.kafka, [Input.of(TRANSCRIPTS), Input.of(TRANSCRIPT_REFERENCES)], job=JOB,
        group_id=cfg.group_id, bounded=cfg.flink.bounded,
    )
    corrected = (valid[TRANSCRIPTS.name]
                 .process(CorrectTranscriptFunction(cfg.vocab, cfg.reload_check_s),
                          output_type=KAFKA_ROW_TYPE)
                 .name("vocabulary").uid(f"{JOB}-vocabulary"))
    scores = (corrected.get_side_output(CORRECTED_TAG)
              .connect(valid[TRANSCRIPT_REFERENCES.name])
              .key_by(lambda hyp: hyp["segment_id"], lambda ref: ref.segment_id,
                      key_type=Types.STRING())
              .process(PairSegmentsFunction(), output_type=Types.PICKLED_BYTE_ARRAY())
              .name("pair-references").uid(f"{JOB}-pair-references"))
    wer = (scores.key_by(lambda s: s.stream_id, key_type=Types.STRING())
           .process(RollingWerFunction(cfg.wer_window), output_type=KAFKA_ROW_TYPE)
           .name("rolling-wer").uid(f"{JOB}-rolling-wer"))

    # Records whose logic raised in an operator (its per-record barrier) join validation's.
    dead = dead.union(*(stage.get_side_output(DEAD_LETTER_TAG) for stage in (corrected, scores,
                                                                              wer)))
    statements = t_env.create_statement_set()
    add_kafka_sink(t_env, statements, cfg.kafka, TRANSCRIPTS_CORRECTED, corrected, job=JOB)
    add_kafka_sink(t_env, statements, cfg.kafka, TRANSCRIPT_WER_TOPIC, wer, job=JOB)
    add_dead_letter_sink(t_env, statements, cfg.kafka, dead, job=JOB)
    statements.attach_as_datastream()


def main(argv: list[str] | None = None) -> None:
    cfg = parse(CorrectTranscriptsConfig, JOB, argv, __doc__.splitlines()[0])
    try:
        load_vocabulary(cfg.vocab)  # fail at submission, not on the TaskManager
    except (OSError, VocabularyError) as e:
        sys.exit(f"{JOB}: vocabulary {cfg.vocab}: {e}")
    run_job(JOB, cfg.flink, lambda env, t_env: build_pipeline(env, t_env, cfg))


if __name__ == "__main__":
    main(sys.argv[1:])
