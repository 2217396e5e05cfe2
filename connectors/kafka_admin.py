"""Topic administration and offsets, with kafka-python.

``end_offsets`` is the one place that works around Tansu's ListOffsets(latest), which answers
with the base offset of the last record batch rather than the end of the partition: it seeks to
the reported offset and reads forward to find the real end. Against Apache Kafka the read finds
nothing more and the answer is unchanged.
"""

from __future__ import annotations

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from connectors.kafka_committed import CommittedReader
from core.settings import KafkaSettings
from core.topics import TOPICS, Topic

# Tansu answers a waiting fetch when its wait ends, not when data arrives (measured: one hop
# p90 56 ms at a 100 ms wait, 8 ms at 2 ms), so the wait bounds a record's time in the broker.
# Readers that exist for latency (the jobs' low-latency sources, `onair subscribe`, the
# benchmarks' alert readers) wait this long at most; Kafka's default is 500 ms.
LOW_LATENCY_FETCH_WAIT_MS = 20


def admin_client(kafka: KafkaSettings) -> KafkaAdminClient:
    return KafkaAdminClient(**kafka.python_client_kwargs(), request_timeout_ms=15000)


def producer(kafka: KafkaSettings, **overrides) -> KafkaProducer:
    """A producer that waits for all replicas and retries: no silent loss."""
    kw = {"acks": "all", "linger_ms": 5, "retries": 5, **overrides}
    return KafkaProducer(**kafka.python_client_kwargs(), **kw)


def consumer(kafka: KafkaSettings, **overrides) -> KafkaConsumer:
    """A consumer that reads only committed records (our sinks are transactional)."""
    kw = {"isolation_level": "read_committed", "enable_auto_commit": False, **overrides}
    return KafkaConsumer(**kafka.python_client_kwargs(), **kw)


def create_topics(kafka: KafkaSettings, topics: list[Topic] | None = None,
                  replication_factor: int = 1) -> dict[str, str]:
    """Create each topic that does not exist yet (with ``kafka.topic_prefix``); return
    logical topic name -> "created" / "exists"."""
    topics = list(TOPICS.values()) if topics is None else topics
    admin = admin_client(kafka)
    try:
        existing = set(admin.list_topics())
        result = {}
        for t in topics:
            name = kafka.topic(t.name)
            if name in existing:
                result[t.name] = "exists"
                continue
            try:
                admin.create_topics([NewTopic(name, t.partitions, replication_factor)])
                result[t.name] = "created"
            except TopicAlreadyExistsError:
                result[t.name] = "exists"
        return result
    finally:
        admin.close()


def partitions_of(kafka: KafkaSettings, topic: str) -> list[int]:
    """Partitions of a physical topic name."""
    c = consumer(kafka)
    try:
        parts = c.partitions_for_topic(topic)
        if not parts:
            raise ValueError(f"topic {topic!r} does not exist; run `onair topics create`")
        return sorted(parts)
    finally:
        c.close()


def end_offsets(kafka: KafkaSettings, topic: str, probe_timeout_ms: int = 2000) -> dict[int, int]:
    """The true end offset (one past the last record) of every partition of the physical
    topic ``topic``; ``probe_timeout_ms`` 0: as the broker reports it, without reading on."""
    c = consumer(kafka, isolation_level="read_uncommitted")
    try:
        parts = [TopicPartition(topic, p) for p in partitions_of(kafka, topic)]
        reported = c.end_offsets(parts)
        c.assign(parts)
        ends = {}
        for tp in parts:
            ends[tp.partition] = reported[tp]
            c.seek(tp, reported[tp])
        # Read forward from what the broker reported until nothing more arrives.
        while probe_timeout_ms:
            batch = c.poll(timeout_ms=probe_timeout_ms, max_records=5000)
            if not batch:
                break
            for tp, records in batch.items():
                ends[tp.partition] = max(ends[tp.partition], records[-1].offset + 1)
        return ends
    finally:
        c.close()


def read_all(kafka: KafkaSettings, topic: str, idle_ms: int = 3000) -> list:
    """Every committed record of a physical topic, from the beginning until ``idle_ms`` pass
    without a new one; aborted transactions left out by their markers (``kafka_committed``)."""
    with CommittedReader(kafka, topic) as reader:
        return reader.read_until_idle(idle_ms)
