"""Load generators' Kafka side: librdkafka (confluent-kafka) clients, in processes of their own
so that the harness's own Python does not queue behind the producers' (the GIL)."""

from __future__ import annotations

import json
import time


def rdkafka_config(kafka) -> dict:
    """The load generator talks Kafka through librdkafka (confluent-kafka): kafka-python's
    poll loop alone took a third of a core of the two the job is measured on. The options
    librdkafka spells like the Java client pass through; the JVM-only ones do not."""
    jvm_only = ("sasl.jaas.config", "ssl.truststore.location", "ssl.truststore.password",
                "ssl.endpoint.identification.algorithm")
    return {"bootstrap.servers": kafka.bootstrap_servers,
            **{k: v for k, v in kafka.options.items() if k not in jvm_only}}


def send_streams(streams: dict[str, float], seconds: float, chunk_ms: int, seed: int,
                 ready, start, out) -> None:
    """Send real-time audio streams, one chunk of each every ``chunk_ms``, stamped with the
    wall clock: ``streams`` is stream id -> alarm onset (s). The audio is made and encoded
    before ``ready`` is set; the clock starts at the t0 (ms) ``start`` receives. Sends back
    how late each chunk was acknowledged (ms after it was due)."""
    import numpy as np
    from bench_alarms import RATE, stream_audio
    from confluent_kafka import Producer

    from core.settings import KafkaSettings
    from models.alarms.pcm import chunk_messages

    kafka = KafkaSettings.from_env()
    topic = kafka.topic("audio-chunks")
    rng = np.random.default_rng(seed)
    # Timestamps relative to t0 = 0; each message gets t0 added when it is sent.
    chunks = {sid: list(chunk_messages(stream_audio(rng, seconds, at), RATE, sid, 0, chunk_ms))
              for sid, at in streams.items()}
    p = Producer({**rdkafka_config(kafka), "linger.ms": 5, "acks": "all"})
    late: list[float] = []

    def acked(due: float):
        def report(err, _msg) -> None:
            late.append(float("inf") if err else time.time() * 1000 - due)
        return report

    ready.set()
    t0 = start.recv()
    for j in range(max(len(c) for c in chunks.values())):
        due = t0 + (j + 1) * chunk_ms   # chunk j is complete chunk_ms after it starts
        time.sleep(max(0.0, (due - time.time() * 1000) / 1000))
        for sid, c in chunks.items():
            if j < len(c):
                p.produce(topic, json.dumps({**c[j], "ts": c[j]["ts"] + t0}).encode(),
                          key=sid.encode(), on_delivery=acked(due))
        p.poll(0)
    p.flush(60)
    out.send(late)
