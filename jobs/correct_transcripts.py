"""correct_transcripts: custom vocabulary on transcript segments, rolling WER per stream.

transcripts -> validate -> vocabulary -> transcripts-corrected
                                 \\-> pair with transcript-references by segment id
                                       -> rolling WER per stream -> transcript-wer (+ metrics)
Malformed segments and references go to dead-letters. The vocabulary file is re-read when it
changes; it must be readable at the same path on every TaskManager.

    flink run -py jobs/correct_transcripts.py -pyfs operators,models,connectors -- --vocab F
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from pyflink.common import Types
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment

from connectors.flink_env import FlinkJobSettings, run_job
from connectors.flink_io import Input, add_dead_letter_sink, add_kafka_sink, validated_inputs
from connectors.job_config import add_flink_flags, env_default, flink_settings
from connectors.settings import KafkaSettings
from connectors.topics import (
    TRANSCRIPT_REFERENCES,
    TRANSCRIPT_WER_TOPIC,
    TRANSCRIPTS,
    TRANSCRIPTS_CORRECTED,
)
from operators.transcript_functions import (
    CORRECTED_TAG,
    CorrectTranscriptFunction,
    PairSegmentsFunction,
    RollingWerFunction,
)
from operators.validate_function import DEAD_LETTER_TAG, KAFKA_ROW_TYPE
from operators.vocabulary import VocabularyError, load_vocabulary

JOB = "correct_transcripts"


@dataclass(frozen=True)
class CorrectTranscriptsConfig:
    kafka: KafkaSettings
    flink: FlinkJobSettings
    vocab: str
    group_id: str = "onair-correct-transcripts"
    wer_window: int = 100
    reload_check_s: float = 5.0

    @classmethod
    def from_args(cls, argv: list[str] | None = None) -> CorrectTranscriptsConfig:
        parser = argparse.ArgumentParser(prog=JOB, description=__doc__.splitlines()[0])
        add_flink_flags(parser, JOB, python_mode="process")
        parser.add_argument("--vocab", default=env_default("TRANSCRIPTS_VOCAB", ""),
                            help="vocabulary TSV (Phrase IPA SoundsLike DisplayAs); "
                                 "env TRANSCRIPTS_VOCAB")
        parser.add_argument("--group-id", default=env_default("TRANSCRIPTS_GROUP_ID",
                                                              cls.group_id),
                            help="Kafka consumer group (env TRANSCRIPTS_GROUP_ID)")
        parser.add_argument("--wer-window", type=int,
                            default=int(env_default("TRANSCRIPTS_WER_WINDOW", "100")),
                            help="segments in the rolling WER (env TRANSCRIPTS_WER_WINDOW)")
        parser.add_argument("--reload-check-s", type=float, default=5.0,
                            help="how often to look for a changed vocabulary file, seconds")
        args = parser.parse_args(argv)
        if not args.vocab:
            parser.error("--vocab FILE is required (or set TRANSCRIPTS_VOCAB)")
        vocab = str(Path(args.vocab).resolve())
        try:
            load_vocabulary(vocab)  # fail at submission, not on the TaskManager
        except (OSError, VocabularyError) as e:
            parser.error(f"vocabulary {vocab}: {e}")
        return cls(KafkaSettings.from_env(), flink_settings(args), vocab, args.group_id,
                   args.wer_window, args.reload_check_s)


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
    cfg = CorrectTranscriptsConfig.from_args(argv)
    run_job(JOB, cfg.flink, lambda env, t_env: build_pipeline(env, t_env, cfg))


if __name__ == "__main__":
    main(sys.argv[1:])
