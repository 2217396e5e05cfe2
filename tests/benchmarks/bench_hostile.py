"""Benchmark: the worst per-record cost of each operator's Python work over the hostile cases.

Every case of ``onair.sim.sample_hostile`` (records chosen to break a job, at the maximum sizes
the schemas accept) goes through the logic each job runs on it, in one process, without
Flink or Kafka: validation; compute_features' split, bucket apply, saves and the pickled
hand-over; lake_ingest's row; rank_shows' ranking (a real Redis: the embedded server binary
on a private port, a thousand-show catalog); correct_transcripts' vocabulary and WER pairing;
detect_alarms' decoding and detector (a 5-s chunk at 48 kHz, windows scored by a constant
model: the ONNX call is not what a hostile record changes). Each case runs ``--repeat`` times;
its time is the median, an operator's figure the worst case. Target: 50 ms.

Prints one JSON line. Run: ``./dev bench hostile``.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import pickle
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from core.settings import RedisSettings
from core.topics import MAX_CANDIDATES, TOPICS
from models.alarms.mel import FeatureSpec
from models.alarms.pcm import decode_chunk, resample
from models.alarms.stream import Chunk, StreamDetector, StreamPolicy, decide_many, push_many
from models.features.buckets import Bucket, route_event, split_by_bucket
from models.lake_rows import flatten
from models.ranking.catalog import Catalog
from models.transcripts.rolling_wer import score_segment
from models.transcripts.vocabulary import load_vocabulary
from models.transcripts.vocabulary_match import VocabularyMatcher
from models.validation import InvalidRecord, parse
from onair.sim.sample_hostile import T0_MS, HostileCase, hostile_cases
from operators.features import EntityBucketsFunction
from operators.ranking import Ranker

ROOT = Path(__file__).resolve().parents[2]


def timed(repeat: int, fn, *args) -> float:
    """Median milliseconds of ``fn(*args)`` over ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn(*args)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def features_work(message: dict) -> None:
    first, creators = route_event(message)
    for batch in (first, creators):
        grouped = split_by_bucket(batch, 64, "b")
        pickle.dumps(list(grouped.items()))   # the hand-over between the two operators
        for items in grouped.values():
            bucket = Bucket()
            bucket.apply(items)
            changed, saves = bucket.take_changed()
            pickle.dumps(saves)
            writer = EntityBucketsFunction(RedisSettings(), buckets=64)
            [writer._write(key, st) for key, st in changed]


def audio_case() -> dict:
    """The largest chunk accepted: 5 s at 48 kHz of a loud tone."""
    rate = 48_000
    t = np.arange(5 * rate) / rate
    pcm = (np.sin(2 * np.pi * 3_100 * t) * 20_000).astype("<i2").tobytes()
    return {"chunk_id": "big", "stream_id": "s", "seq": 0, "ts": T0_MS, "sample_rate": rate,
            "encoding": "pcm_s16le", "pcm": base64.b64encode(pcm).decode()}


class PrivateRedis:
    """A Redis-protocol server of the embedded stack's binary on a free local port."""

    def __enter__(self) -> RedisSettings:
        from onair.stack import Stack

        binary = Stack(Path(tempfile.gettempdir()))._redis_binary()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.dir = tempfile.mkdtemp(prefix="bench-hostile-redis-")
        self.proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no", "--dir", self.dir],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        settings = RedisSettings(url=f"redis://127.0.0.1:{port}/0", key_prefix="bench")
        from connectors.redis_client import redis_client

        deadline = time.monotonic() + 20
        while True:
            try:
                redis_client(dataclasses.replace(settings, retries=0)).ping()
                return settings
            except Exception:
                if time.monotonic() > deadline:
                    self.__exit__()
                    raise
                time.sleep(0.1)

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def ranker(settings: RedisSettings) -> Ranker:
    from connectors.ranking_reads import RankingReader

    catalog = Catalog()
    for i in range(MAX_CANDIDATES):
        catalog.apply({"event_id": f"c{i}", "event_type": "live", "ts": T0_MS - 1000,
                       "show_id": f"hs-{i}", "creator_id": f"c{i % 50}", "topic": "tech"})
    return Ranker(catalog, RankingReader(settings), "exp", 6 * 3_600_000, 10)


def run(repeat: int) -> dict:
    vocab = VocabularyMatcher(load_vocabulary(str(ROOT / "tests/data/hinglish/vocab.tsv")))
    spec = FeatureSpec()
    labels = ["alarm", "background"]
    worst: dict[str, tuple[float, str]] = {}

    def note(operator: str, case: HostileCase | str, ms: float) -> None:
        name = case if isinstance(case, str) else f"{case.topic}: {case.name}"
        if ms > worst.get(operator, (-1.0, ""))[0]:
            worst[operator] = (ms, name)

    big = audio_case()
    cases = [*hostile_cases(),
             HostileCase("largest audio chunk", "audio-chunks", "s", json.dumps(big).encode())]
    with PrivateRedis() as settings:
        rank = ranker(settings)
        for case in cases:
            schema = TOPICS[case.topic].schema
            note("validate", case, timed(repeat, _parse_or_none, case.value, schema))
            message = _parse_or_none(case.value, schema)
            if message is None:
                continue
            if case.topic in ("behavior-events", "show-events"):
                note("compute_features", case, timed(repeat, features_work, message))
                note("lake_ingest", case, timed(repeat, flatten, message, schema))
            elif case.topic == "rec-requests":
                note("rank_shows", case, timed(repeat, rank_cold, rank, message))
            elif case.topic == "transcripts":
                note("vocabulary", case, timed(repeat, vocab.apply, message["text"]))
                text, _ = vocab.apply(message["text"])
                hyp = message | {"text": text, "original_text": message["text"]}
                # The reference differs in every word: the alignment's worst case.
                ref = message | {"text": " ".join("x" * len(w) for w in message["text"].split())}
                note("wer", case, timed(repeat, score_segment, ref, hyp))
            elif case.topic == "audio-chunks" and _decodes(message):
                note("detect_alarms", case, timed(repeat, detect, message, spec, labels))
    return {op: {"worst_ms": round(ms, 2), "case": name} for op, (ms, name) in worst.items()}


def rank_cold(rank: Ranker, request: dict) -> None:
    """One ranking with the reader's caches empty: every feature read from Redis."""
    rank.reader._memo, rank.reader._pit = None, {}
    rank.reader._batch, rank.reader._run = {}, None
    rank.reader._users.clear()
    message = rank.rank(request, None, None)
    assert not message.get("degraded"), "the private Redis did not answer"


def detect(message: dict, spec: FeatureSpec, labels: list[str]) -> None:
    samples = resample(decode_chunk(message), message["sample_rate"], spec.sample_rate)
    detector = StreamDetector(spec, StreamPolicy())
    results = push_many([(detector, Chunk(0, float(message["ts"]), samples))])
    decide_many(results, lambda x: np.full((len(x), 2), 0.5, np.float32), labels, "alarm")


def _decodes(message: dict) -> bool:
    """Whether the chunk passes the audio half of validation (``decode_chunk``)."""
    try:
        decode_chunk(message)
        return True
    except InvalidRecord:
        return False


def _parse_or_none(value: bytes, schema) -> dict | None:
    try:
        return parse(value, schema)
    except InvalidRecord:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    operators = run(args.repeat)
    worst = max(v["worst_ms"] for v in operators.values())
    print(json.dumps({"bench": "hostile", "repeat": args.repeat, "target_ms": 50,
                      "worst_ms": worst, "met": worst <= 50, "operators": operators}))


if __name__ == "__main__":
    main()
