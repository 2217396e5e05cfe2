"""Alarm detection on the Flink cluster: train_alarm_detector registers an ONNX model, and
detect_alarms hears alarms in concurrent streams through Kafka — one alert per alarm, none on
alarm-free streams, bad chunks in dead letters while the job keeps running."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from conftest import cancel_at_checkpoint, wait_for_count

from connectors import flink_rest
from connectors.kafka_admin import create_topics, producer, read_all
from core.settings import KafkaSettings, audio_dir
from models.alarms import sounds
from models.alarms.dataset import DatasetConfig, build_dataset
from models.alarms.mel import FeatureSpec
from models.alarms.pcm import chunk_messages, encode_pcm, pcm16_round_trip
from models.alarms.stream import StreamPolicy
from models.alarms.training import detect_in_samples, feature_spec_of, policy_of
from models.onnx_export import OnnxScorer
from models.registry import Registry, sha256_file
from onair.submit import submit

MODEL = "alarm_it"
RATE = 16_000


@pytest.fixture(scope="module")
def alarm_model(services, tmp_path_factory):
    dataset = tmp_path_factory.mktemp("alarm-dataset")
    build_dataset(DatasetConfig(out=str(dataset), real_audio=str(audio_dir()),
                                train_per_class=600, holdout_per_class=40, holdout_streams=3,
                                background_minutes=2, tonal_share=0.0))
    # A small training set: a looser out-of-bag threshold (1 % of alarm-free windows above it)
    # keeps its recall up, and backgrounds drawn evenly (600 clips with tonal ones drawn more
    # often hold too little speech: that model alerts on speech). The stream tests below are
    # about the job, not the model's quality (`onair alarms evaluate` measures that).
    submit("train_alarm_detector", ["--dataset", str(dataset), "--name", MODEL, "--promote",
                                    "--target-fpr", "0.01"], detached=False)
    return Registry().resolve(MODEL, "production"), dataset


@pytest.mark.integration
def test_training_registers_an_onnx_model_with_lineage_and_report(alarm_model):
    mv, dataset = alarm_model
    registry = Registry()
    vdir = registry.version_dir(mv)
    assert mv.labels == ["alarm", "no_alarm"]
    assert sha256_file(vdir / "model.onnx") == mv.onnx_sha256
    assert (vdir / "report.md").read_text().startswith(f"# {MODEL} training report")
    assert (vdir / "curves.png").read_bytes()[:4] == b"\x89PNG"
    m = mv.metrics
    assert m["onnx_max_abs_diff"] <= 1e-5
    assert 0.5 <= mv.extra["policy"]["threshold"] <= 0.95
    assert m["threshold"] == pytest.approx(mv.extra["policy"]["threshold"], abs=1e-4)
    assert m["train_windows"] == 1200
    assert set(m["window"]) >= {"precision", "recall", "f1"}
    assert set(m["events"]) == {"-5dB", "+0dB", "+5dB", "+10dB", "+20dB"}
    assert m["background"]["hours"] == pytest.approx(2 / 60, abs=0.002)
    wavs = list(dataset.rglob("*.wav"))
    assert mv.data_fingerprint["files"] == len(wavs)
    assert mv.extra["feature_spec"] == FeatureSpec().as_dict()
    assert mv.code_version != ""


def _streams(rng: np.random.Generator) -> dict[str, tuple[np.ndarray, float | None]]:
    """Stream id -> (audio, true alarm onset in s or None)."""
    speech = sounds.speech_like(20.0, RATE, rng)
    room = sounds.noise(20.0, RATE, rng, "pink") + 0.5 * sounds.hum(20.0, RATE, rng)
    return {
        "a1": (sounds.mix_at_snr(speech, sounds.t3_alarm(8.0, RATE, rng), 6 * RATE, 15.0), 6.0),
        "a2": (sounds.mix_at_snr(room, sounds.t3_alarm(8.0, RATE, rng), 10 * RATE, 15.0), 10.0),
        "q1": (sounds.speech_like(20.0, RATE, rng), None),
        "q2": (room, None),
    }


def _offline_detections(mv, streams: dict) -> dict:
    """What the offline path hears in each stream with the same model: the streaming job must
    hear exactly that."""
    session, _ = Registry().load_session(MODEL, mv.version)
    scorer, spec = OnnxScorer(session), feature_spec_of(mv)
    # The job's policy: the model's threshold, k and n (chosen at training), else defaults.
    m = {k: v for k, v in policy_of(mv).items() if k in ("threshold", "k", "n")}
    policy = StreamPolicy(**m)
    # The audio as the job hears it: through the chunks' 16-bit PCM.
    offline = {sid: detect_in_samples(pcm16_round_trip(x), spec, policy, scorer, mv.labels,
                                      "alarm")[0]
               for sid, (x, _) in streams.items()}
    assert {sid: len(d) for sid, d in offline.items()} == {"a1": 1, "a2": 1, "q1": 0, "q2": 0}
    return offline


def _produce_interleaved(kafka: KafkaSettings, chunks: dict[str, list[dict]],
                         lo: int = 0, hi: int | None = None) -> None:
    """Chunks ``lo``..``hi`` of every stream, the streams interleaved as live ones are."""
    p = producer(kafka)
    topic = kafka.topic("audio-chunks")
    for i in range(lo, hi if hi is not None else max(len(c) for c in chunks.values())):
        for sid, c in chunks.items():
            if i < len(c):
                p.send(topic, json.dumps(c[i]).encode(), key=sid.encode())
    p.flush()
    p.close()


BAD_CHUNKS = {
    "sample_rate": {"sample_rate": 12_345},
    "base64": {"pcm": "%%%"},
    "even number": {"pcm": encode_pcm(np.zeros(3))[:-4] + "AAE="},
    "at most": {"pcm": encode_pcm(np.zeros(RATE * 6))},
    "'channels' is 2, above its maximum 1": {"channels": 2},
    # The job keys by the Kafka key: a chunk keyed by anything but its stream_id is refused.
    "keyed by stream_id": {"stream_id": "elsewhere"},
}


@pytest.mark.integration
def test_detect_alarms_one_alert_per_alarm_none_on_quiet_streams(alarm_model, topic_prefix):
    mv, _ = alarm_model
    kafka = KafkaSettings.from_env()
    create_topics(kafka)
    streams = _streams(np.random.default_rng(11))
    offline = _offline_detections(mv, streams)

    job_id = submit("detect_alarms", ["--model", MODEL, "--checkpoint-interval-ms", "2000"])
    try:
        assert flink_rest.wait_for_state(job_id, {"RUNNING"}, 120) == "RUNNING"
        t0 = {sid: 1_800_000_000_000 + i * 7 for i, sid in enumerate(streams)}
        chunks = {sid: list(chunk_messages(x, RATE, sid, t0[sid], 100))
                  for sid, (x, _) in streams.items()}
        a1 = chunks["a1"]
        a1[30], a1[31] = a1[31], a1[30]   # out of order
        a1.insert(50, a1[49])             # duplicate
        p = producer(kafka)
        topic = kafka.topic("audio-chunks")
        for i, over in enumerate(BAD_CHUNKS.values()):
            bad = {**chunks["q1"][0], "stream_id": "bad", "chunk_id": f"bad:{i}", **over}
            p.send(topic, json.dumps(bad).encode(), key=b"bad")
        p.send(topic, b"\x00not json", key=b"bad")
        p.flush()
        p.close()
        _produce_interleaved(kafka, chunks)

        alerts = wait_for_count(lambda: [json.loads(r.value) for r in
                                         read_all(kafka, kafka.topic("alarm-alerts"), 1000)], 2)
        letters = wait_for_count(lambda: [json.loads(r.value) for r in
                                          read_all(kafka, kafka.topic("dead-letters"), 1000)],
                                 len(BAD_CHUNKS) + 1)
        # q1 and q2 were interleaved with a1 and a2: all of them are scored by now.
        assert sorted(a["stream_id"] for a in alerts) == ["a1", "a2"]
        for alert in alerts:
            sid = alert["stream_id"]
            expected = offline[sid][0]
            assert alert["onset_ts"] == round(t0[sid] + expected.onset_ts)
            assert alert["window_end_ts"] == round(t0[sid] + expected.window_end_ts)
            true_onset = t0[sid] + streams[sid][1] * 1000
            assert alert["window_end_ts"] - true_onset <= 3_000
            assert alert["model_version"] == mv.ref
            assert alert["labels"] == ["alarm", "no_alarm"] and alert["label"] == "alarm"
            assert alert["alert_id"] == f"{sid}:{alert['onset_ts']}"
        assert len(letters) == len(BAD_CHUNKS) + 1
        errors = " | ".join(letter["error"] for letter in letters)
        for reason in BAD_CHUNKS:
            assert reason in errors
        assert "not UTF-8" in errors or "bad JSON" in errors
        assert flink_rest.job_state(job_id) == "RUNNING"
    finally:
        flink_rest.cancel(job_id)


@pytest.mark.integration
def test_detect_alarms_resumed_from_a_checkpoint_mid_alarm_hears_every_alarm(alarm_model,
                                                                             topic_prefix):
    # The job is cancelled 7.5 s into the streams, 1.5 s into a1's alarm, and resumed from its
    # last checkpoint: each stream is rebuilt from its snapshot and the chunks recorded since
    # (some of them still queued for a batch when the checkpoint was taken), so the alerts
    # equal the offline ones; an alert may come twice, with the same id.
    mv, _ = alarm_model
    kafka = KafkaSettings.from_env()
    create_topics(kafka)
    streams = _streams(np.random.default_rng(11))
    offline = _offline_detections(mv, streams)
    t0 = {sid: 1_800_000_000_000 + i * 7 for i, sid in enumerate(streams)}
    chunks = {sid: list(chunk_messages(x, RATE, sid, t0[sid], 100))
              for sid, (x, _) in streams.items()}
    args = ["--model", MODEL, "--checkpoint-interval-ms", "1000"]

    first = submit("detect_alarms", args)
    try:
        assert flink_rest.wait_for_state(first, {"RUNNING"}, 120) == "RUNNING"
        _produce_interleaved(kafka, chunks, 0, 75)
    except BaseException:
        flink_rest.cancel(first)
        raise
    checkpoint = cancel_at_checkpoint(first, int(time.time() * 1000), 60)

    second = submit("detect_alarms", args, from_savepoint=checkpoint)
    try:
        assert flink_rest.wait_for_state(second, {"RUNNING"}, 120) == "RUNNING"
        _produce_interleaved(kafka, chunks, 75)
        alerts = wait_for_count(lambda: {a["alert_id"]: a for a in (
            json.loads(r.value) for r in read_all(kafka, kafka.topic("alarm-alerts"), 1000))},
            2)
        assert sorted(a["stream_id"] for a in alerts.values()) == ["a1", "a2"]
        for alert in alerts.values():
            expected = offline[alert["stream_id"]][0]
            assert alert["onset_ts"] == round(t0[alert["stream_id"]] + expected.onset_ts)
            assert alert["window_end_ts"] == round(t0[alert["stream_id"]]
                                                   + expected.window_end_ts)
    finally:
        flink_rest.cancel(second)
