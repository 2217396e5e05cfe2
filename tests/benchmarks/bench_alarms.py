"""Benchmark: how many 16 kHz streams one core keeps up with, and alarm-onset-to-alert latency.

In one run, on the embedded stack, with the ``production`` alarm model (trained first on the
default number of training clips if the registry has none):

1. ``x_realtime_per_core``: ``--streams`` streams of ``--seconds`` s are produced to Kafka, then
   ``detect_alarms --bounded --parallelism 1`` reads them all; audio seconds divided by the CPU
   seconds the TaskManagers and their Python workers spent (all of Flink's work: Kafka source,
   JSON/base64 validation, shuffle, state, features, ONNX, sink) while the job received 20 %
   to 90 % of the chunks: what a running job sustains (``sustained_rate``).
   ``x_realtime_per_core_whole_job`` counts the whole job, start-up (2-11 CPU s of JIT
   compilation per job) and end included; ``x_realtime_wall`` is the audio over the job's wall
   time at parallelism 1, start-up included.
2. ``operator_x_realtime``: the detection operator's logic alone (decode, reassembly, log-mel
   frames, window features, ONNX, debounce) in this process on one thread (one BLAS thread,
   as in the job), streams interleaved, ``--batch-chunks`` chunks per batch as the job does;
   ``operator_unbatched_x_realtime``: the same chunk by chunk.
3. ``baseline_x_realtime``: the per-window baseline, a plain loop that recomputes a full
   ``librosa.feature.melspectrogram`` for every 2 s window (hop 0.5 s), then scores it.
4. ``latency_*``: ``--latency-streams`` streams sent in real time (100 ms chunks stamped with the
   wall clock), each with a smoke alarm starting at a known time; latency = when the alert is
   read from ``alarm-alerts`` minus the true alarm onset. ``detection_delay`` (audio the model
   needs) and ``in_job`` (alert time minus the end of its confirming window) split it. An alert
   confirmed by a window that ended before the onset is counted in ``alerts_before_onset``
   (false), not as a detection. ``offline_*``: ``--offline-streams`` more such streams
   through the same model and debounce in this process, for the confirmation delay's tail.

Prints one JSON line. Run: ``./dev bench alarms``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
from kafka import TopicPartition
from threadpoolctl import threadpool_limits

from connectors import flink_rest
from connectors.kafka_admin import (
    LOW_LATENCY_FETCH_WAIT_MS,
    consumer,
    create_topics,
    producer,
)
from core.settings import KafkaSettings
from jobs.detect_alarms import DetectAlarmsConfig
from models.alarms import sounds
from models.alarms.mel import FeatureSpec, window_features
from models.alarms.pcm import chunk_messages, decode_chunk
from models.alarms.stream import (
    Chunk,
    StreamDetector,
    StreamPolicy,
    decide_many,
    push_many,
)
from models.alarms.training import (
    alarm_label_of,
    detect_in_samples,
    feature_spec_of,
    policy_of,
)
from models.onnx_export import OnnxScorer
from models.registry import Registry
from onair.stack import Stack
from onair.submit import submit

RATE = 16_000
MODEL = "alarm_detector"


def fresh_topics() -> KafkaSettings:
    """New topics (a prefix of their own) for what this process and the jobs it submits use."""
    os.environ["ONAIR_TOPIC_PREFIX"] = f"bench{uuid.uuid4().hex[:6]}."
    kafka = KafkaSettings.from_env()
    create_topics(kafka)
    return kafka


def ensure_model(tmp: Path):
    registry = Registry()
    if (mv := registry.find(MODEL)) is not None:
        return mv
    from core.settings import audio_dir
    from models.alarms.dataset import DatasetConfig, build_dataset

    # The production recipe's training clips: a smaller model's slower detections would be
    # measured as latency. Only the evaluation parts are cut short.
    build_dataset(DatasetConfig(out=str(tmp), real_audio=str(audio_dir()),
                                holdout_per_class=60, holdout_streams=5,
                                background_minutes=5))
    submit("train_alarm_detector", ["--dataset", str(tmp), "--promote"], detached=False)
    return registry.resolve(MODEL, "production")


def stream_audio(rng: np.random.Generator, seconds: float, alarm_at: float | None):
    kind = rng.integers(3)
    bg = (sounds.speech_like if kind == 0 else sounds.music if kind == 1 else
          sounds.hum)(seconds, RATE, rng)
    if alarm_at is None:
        return bg
    return sounds.mix_at_snr(bg, sounds.t3_alarm(8.0, RATE, rng), round(alarm_at * RATE), 10.0)


def offline_delays(mv, scorer: OnnxScorer, spec: FeatureSpec, streams: int,
                   seconds: float) -> dict:
    """The latency part's kind of stream, ``streams`` of them, through the same model and
    debounce offline: the audio the model needs to confirm an alarm (the tail a run of 20
    streams samples only thinly)."""
    rng = np.random.default_rng(5)
    policy = StreamPolicy(**{k: v for k, v in policy_of(mv).items()
                             if k in ("threshold", "k", "n")})
    delays, early = [], 0
    for _ in range(streams):
        at = float(rng.uniform(4.0, seconds - 10.0))
        dets, _ = detect_in_samples(stream_audio(rng, seconds, at), spec, policy, scorer,
                                    mv.labels, alarm_label_of(mv))
        after = [d.window_end_ts / 1000 - at for d in dets if d.window_end_ts > at * 1000]
        early += len(dets) - len(after)
        delays.append(after[0] if after else float("inf"))
    found = [d for d in delays if d != float("inf")]
    p99 = float(np.percentile(delays, 99))   # inf when more than 1 % were missed
    return {"offline_streams": streams, "offline_missed": len(delays) - len(found),
            "offline_alerts_before_onset": early,
            "offline_delay_p50_ms": round(float(np.percentile(found, 50)) * 1000),
            "offline_delay_p99_ms": round(p99 * 1000) if np.isfinite(p99) else None,
            "offline_delay_over_2800ms": sum(d > 2.8 for d in delays)}


def tm_cpu_seconds() -> dict[int, float]:
    """CPU seconds (user + system) of the TaskManager JVM and every process below it."""
    tick = os.sysconf("SC_CLK_TCK")
    procs = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        procs[int(d.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick,
                              b"TaskManagerRunner" in cmd)
    roots = {pid for pid, (_, _, tm) in procs.items() if tm}
    tree, grew = set(roots), True
    while grew:
        new = {pid for pid, (ppid, _, _) in procs.items() if ppid in tree} - tree
        tree |= new
        grew = bool(new)
    # Negative pids mark the JVM: the caller splits JVM and Python-worker CPU by sign.
    return {(-pid if pid in roots else pid): procs[pid][1] for pid in tree}


def throughput(kafka: KafkaSettings, n_streams: int, seconds: float, chunk_ms: int,
               job_args: list[str]) -> dict:
    rng = np.random.default_rng(1)
    p = producer(kafka)
    topic = kafka.topic("audio-chunks")
    t0 = int(time.time() * 1000) - 3_600_000
    audio = [stream_audio(rng, seconds, 5.0 if i % 10 == 0 else None) for i in range(n_streams)]
    for i, x in enumerate(audio):
        for msg in chunk_messages(x, RATE, f"tp{i}", t0, chunk_ms):
            p.send(topic, json.dumps(msg).encode(), key=msg["stream_id"].encode())
    p.flush()
    p.close()
    before = tm_cpu_seconds()
    job = submit("detect_alarms", ["--bounded", "--parallelism", "1",
                                   "--group-id", f"bench-{uuid.uuid4().hex[:6]}", *job_args])
    flink_rest.wait_for_state(job, {"RUNNING", "FINISHED"}, 120)
    started = time.monotonic()
    seen = dict(before)
    progress = []   # (chunks the detection vertex has received, TM CPU seconds so far)
    while flink_rest.job_state(job) not in {"FINISHED", "FAILED", "CANCELED"}:
        # Workers exit with the job: keep the last reading of every process seen.
        seen.update(tm_cpu_seconds())
        received = flink_rest.records_in(job, "detect")
        if received is not None:
            progress.append((received, sum(v - before.get(pid, 0.0) for pid, v in seen.items())))
        time.sleep(0.5)
    wall = time.monotonic() - started
    spent = {pid: v - before.get(pid, 0.0) for pid, v in seen.items()}
    cpu = sum(spent.values())
    jvm = sum(v for pid, v in spent.items() if pid < 0)
    audio_s = n_streams * seconds
    chunks = n_streams * len(range(0, round(seconds * RATE), RATE * chunk_ms // 1000))
    return {"audio_s": audio_s, "job_wall_s": round(wall, 1), "job_cpu_s": round(cpu, 1),
            "jvm_cpu_s": round(jvm, 1), "python_cpu_s": round(cpu - jvm, 1),
            **sustained_rate(progress, chunks, chunk_ms / 1000),
            "x_realtime_per_core_whole_job": round(audio_s / cpu, 1),
            "x_realtime_wall": round(audio_s / wall, 1), "state": flink_rest.job_state(job)}


def sustained_rate(progress: list[tuple[int, float]], chunks: int, chunk_s: float,
                   lo: float = 0.2, hi: float = 0.9) -> dict:
    """Audio seconds per TaskManager CPU second while the job received chunks ``lo`` ..
    ``hi`` of its input: the rate a running job sustains, without the per-job start-up (the
    JVM compiling the job's classes, Python operators opening) and the end of input. The
    chunk counts come from the REST API, up to ``metrics.fetcher.update-interval`` (1 s)
    old at either end of the window."""
    inside = [(n, c) for n, c in progress if lo * chunks <= n <= hi * chunks]
    if len(inside) < 2 or inside[-1][0] == inside[0][0]:
        return {"x_realtime_per_core": None, "sustained_window_chunks": 0}
    (n0, c0), (n1, c1) = inside[0], inside[-1]
    return {"x_realtime_per_core": round((n1 - n0) * chunk_s / (c1 - c0), 1),
            "sustained_window_chunks": n1 - n0, "sustained_window_cpu_s": round(c1 - c0, 1)}


def operator_rate(scorer: OnnxScorer, spec: FeatureSpec, labels: list[str], batch: int,
                  n_streams: int = 20, seconds: float = 30.0, chunk_ms: int = 200) -> float:
    """The operator's logic alone on ``n_streams`` streams arriving interleaved, chunks going
    through ``push_many`` ``batch`` at a time (1: the per-chunk path) as the job does."""
    rng = np.random.default_rng(2)
    messages = [list(chunk_messages(stream_audio(rng, seconds, 5.0), RATE, f"o{i}", 0, chunk_ms))
                for i in range(n_streams)]
    arrivals = [msgs[j] for j in range(len(messages[0])) for msgs in messages]
    detectors = {f"o{i}": StreamDetector(spec, StreamPolicy()) for i in range(n_streams)}
    start = time.process_time()
    for lo in range(0, len(arrivals), batch):
        results = push_many([(detectors[m["stream_id"]], Chunk(m["seq"], m["ts"], decode_chunk(m)))
                             for m in arrivals[lo:lo + batch]])
        decide_many(results, scorer, labels, "alarm")
    return n_streams * seconds / (time.process_time() - start)


def baseline_rate(scorer: OnnxScorer, spec: FeatureSpec, seconds: float = 60.0) -> float:
    import librosa

    x = stream_audio(np.random.default_rng(3), seconds, 5.0)
    centres = librosa.mel_frequencies(spec.n_mels + 2, fmin=0, fmax=RATE / 2)[1:-1]
    keep = (centres >= spec.fmin_hz) & (centres <= spec.fmax_hz)
    librosa.feature.melspectrogram(y=x[:RATE], sr=RATE)   # warm numba up outside the clock
    start = time.process_time()
    for s in range(0, len(x) - spec.window_samples + 1, spec.hop_samples):
        window = x[s:s + spec.window_samples]
        mel = librosa.feature.melspectrogram(y=window, sr=RATE, n_fft=spec.n_fft,
                                             hop_length=spec.frame_hop, n_mels=spec.n_mels,
                                             center=False)
        frames = librosa.power_to_db(mel[keep], ref=1.0, amin=1e-10).T
        scorer(window_features(frames)[None, :])
    return seconds / (time.process_time() - start)


def latency(kafka: KafkaSettings, n_streams: int, seconds: float, job_args: list[str],
            before_cancel=None, chunk_ms: int = 100, producers: int = 1) -> dict:
    """``before_cancel``: called while the job still runs, after the last chunk; its value is
    returned as ``before_cancel`` (bench_state_scale reads the TaskManagers' memory).
    ``producers``: processes the streams are sent from (``kafka_load.send_streams``)."""
    import multiprocessing

    from kafka_load import send_streams

    rng = np.random.default_rng(4)
    onsets = {f"lat{i}": float(rng.uniform(4.0, seconds - 10.0)) for i in range(n_streams)}
    # The senders make their audio while the job starts; the clock starts when all are ready.
    ctx = multiprocessing.get_context("spawn")
    senders = []
    for k in range(producers):
        ready, (start_recv, start_send), (late_recv, late_send) = \
            ctx.Event(), ctx.Pipe(duplex=False), ctx.Pipe(duplex=False)
        part = dict(list(onsets.items())[k::producers])
        proc = ctx.Process(target=send_streams, daemon=True,
                           args=(part, seconds, chunk_ms, 4 + k, ready, start_recv, late_send))
        proc.start()
        senders.append((proc, ready, start_send, late_recv))
    job = submit("detect_alarms", ["--group-id", f"bench-lat-{uuid.uuid4().hex[:6]}", *job_args])
    flink_rest.wait_for_state(job, {"RUNNING"}, 120)
    time.sleep(8)   # Python workers up and the source assigned before the clock starts
    for _, ready, _, _ in senders:
        if not ready.wait(600):
            raise RuntimeError("a sender did not make its audio in 10 minutes")
    received: dict[str, list[tuple[float, dict]]] = {}
    stop = threading.Event()

    def consume() -> None:
        # The topic is new in this run (its own prefix): read it from offset 0.
        # A subscriber's fetch wait is its own choice; Tansu would hold each alert for the
        # whole wait (kafka-python's default: 500 ms), which is not the job's latency.
        c = consumer(kafka, group_id=None, auto_offset_reset="earliest",
                     fetch_max_wait_ms=LOW_LATENCY_FETCH_WAIT_MS)
        c.assign([TopicPartition(kafka.topic("alarm-alerts"), 0)])
        while not stop.is_set():
            for records in c.poll(timeout_ms=50).values():
                now = time.time() * 1000
                for r in records:
                    alert = json.loads(r.value)
                    if alert["stream_id"] in onsets:   # not the throughput run's alerts
                        received.setdefault(alert["stream_id"], []).append((now, alert))
        c.close()

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    time.sleep(2)
    t0 = int(time.time() * 1000) + 200
    for _, _, start_send, _ in senders:
        start_send.send(t0)
    # How long after its due time each chunk was acknowledged.
    late = [x for _, _, _, late_recv in senders for x in late_recv.recv()]
    acked = [x for x in late if x != float("inf")]
    for proc, *_ in senders:
        proc.join(30)
    time.sleep(5)
    stop.set()
    reader.join()
    probe = before_cancel() if before_cancel else None
    flink_rest.cancel(job)
    # An alert confirmed by a window that ended before the alarm began heard something else:
    # it is a false alert, not a fast detection. The detection is the first alert after.
    onset_ms = {sid: t0 + at * 1000 for sid, at in onsets.items()}
    early = sum(a["window_end_ts"] <= onset_ms[sid]
                for sid, alerts in received.items() for _, a in alerts)
    first = {sid: hits[0] for sid, alerts in received.items()
             if (hits := [(now, a) for now, a in alerts if a["window_end_ts"] > onset_ms[sid]])}
    lat = [now - onset_ms[sid] for sid, (now, _) in first.items()]
    delay = [a["window_end_ts"] - onset_ms[sid] for sid, (_, a) in first.items()]
    in_job = [a["detected_ts"] - a["window_end_ts"] for _, a in first.values()]

    def pct(v, q):
        return round(float(np.percentile(v, q))) if v else None

    raw = {sid: [{"onset_ms": round(onset_ms[sid]), "window_end_ts": a["window_end_ts"],
                  "detected_ts": a["detected_ts"], "received_ms": round(now)}
                 for now, a in alerts]
           for sid, alerts in received.items()}
    return {"raw": raw, "latency_streams": n_streams, "detected": len(first),
            "alerts_before_onset": early,
            "latency_p50_ms": pct(lat, 50), "latency_p99_ms": pct(lat, 99),
            "detection_delay_p50_ms": pct(delay, 50), "detection_delay_p99_ms": pct(delay, 99),
            "in_job_p50_ms": pct(in_job, 50), "in_job_p99_ms": pct(in_job, 99),
            # A producer behind its clock delays chunks it stamped on time: this shows up in
            # in_job without being the job's.
            "produced_late_p50_ms": pct(acked, 50), "produced_late_p99_ms": pct(acked, 99),
            "chunks_not_acked": len(late) - len(acked),
            "before_cancel": probe}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--chunk-ms", type=int, default=200)
    parser.add_argument("--batch-chunks", type=int, default=DetectAlarmsConfig().batch_chunks,
                        help="batch of the operator-alone figure (the job's own default)")
    parser.add_argument("--latency-streams", type=int, default=20)
    parser.add_argument("--latency-seconds", type=float, default=24.0)
    parser.add_argument("--offline-streams", type=int, default=300,
                        help="streams of the latency part's kind scored offline for the "
                             "confirmation delay's tail")
    parser.add_argument("--job-args", default="",
                        help="more detect_alarms flags, e.g. \"--python-mode process\"")
    parser.add_argument("--dump", help="write each latency stream's onset, confirming window "
                                       "end, emission and arrival (epoch ms) to this JSON file")
    parser.add_argument("--only", choices=("throughput", "latency"),
                        help="run one part (the JSON then lacks the other's keys)")
    args = parser.parse_args()
    job_args = shlex.split(args.job_args)
    Stack.default().up(lambda _m: None)
    kafka = fresh_topics()
    mv = ensure_model(Path(os.environ.get("TMPDIR", "/tmp")) / f"alarm-bench-{os.getpid()}")
    session, _ = Registry().load_session(MODEL, mv.version)
    scorer, spec = OnnxScorer(session), feature_spec_of(mv)
    out: dict = {"bench": "alarms", "model": mv.ref}
    if args.only != "latency":
        with threadpool_limits(limits=1, user_api="blas"):
            op = operator_rate(scorer, spec, mv.labels, args.batch_chunks)
            unbatched = operator_rate(scorer, spec, mv.labels, 1)
        base = baseline_rate(scorer, spec)
        out.update(throughput(kafka, args.streams, args.seconds, args.chunk_ms, job_args),
                   operator_x_realtime=round(op, 1), baseline_x_realtime=round(base, 1),
                   operator_unbatched_x_realtime=round(unbatched, 1),
                   ratio_operator_vs_baseline=round(op / base, 1))
        print(f"throughput: {out}", file=sys.stderr)
    if args.only != "throughput":
        # Topics of its own: a job reading the throughput part's audio first would be
        # measured as alert latency.
        kafka = fresh_topics()
        lat = latency(kafka, args.latency_streams, args.latency_seconds, job_args)
        lat.update(offline_delays(mv, scorer, spec, args.offline_streams, args.latency_seconds))
        raw = lat.pop("raw")
        lat.pop("before_cancel")
        if args.dump:
            Path(args.dump).write_text(json.dumps(raw, indent=1))
        out.update(lat)
    print(json.dumps({
        **out,
        "window_s": spec.window_s, "hop_s": spec.hop_s, "chunk_ms": args.chunk_ms,
        "job_args": args.job_args,
        "cpus": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
