"""Read-committed reading that does not trust the broker to list aborted transactions.

A read-committed Kafka consumer skips an aborted transaction's records because the broker's
fetch response lists the aborted transactions of the range it returns. The embedded broker
(Tansu 0.6) always answers that list empty, so every read-committed client — kafka-python's
and Java's alike — hands out records of aborted transactions, e.g. those a Flink Kafka sink
wrote before a TaskManager died and aborted on recovery: an exactly-once sink would look
at-least-once. Every transaction still ends with its control marker (commit or abort) in each
partition it wrote, so this reader fetches the log as it is (read_uncommitted), holds a
transactional producer's records until its marker and then hands them out or drops them. It
answers the same against Apache Kafka, where the markers are the same.

``settle`` is the rule on its own (no broker); ``CommittedReader`` fetches with kafka-python's
protocol classes, one Fetch per partition leader per ``read``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from kafka import TopicPartition
from kafka.net.compat import KafkaNetClient
from kafka.protocol.consumer.fetch import FetchRequest
from kafka.record import MemoryRecords

from core.settings import KafkaSettings

_NO_ERROR, _OFFSET_OUT_OF_RANGE = 0, 1
_PARTITION_MAX_BYTES = 1 << 20
_MAX_BYTES = 16 << 20       # one fetch answer, all partitions together


class CommittedRecord(NamedTuple):
    """The fields of kafka-python's ConsumerRecord that readers use."""
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list


@dataclass
class PartitionLog:
    """Where reading a partition stands: the next offset to fetch and the records of
    transactions whose marker has not been read yet, by producer id."""
    next_offset: int = 0
    open: dict[int, list[CommittedRecord]] = field(default_factory=dict)
    aborted: int = 0        # records left out so far


class Batch(NamedTuple):
    """What ``settle`` needs of a record batch."""
    producer_id: int
    transactional: bool
    control: bool
    aborts: bool            # a control batch's marker: abort (True) or commit
    records: list[CommittedRecord]


def settle(log: PartitionLog, batches: Iterable[Batch]) -> list[CommittedRecord]:
    """The records ``batches`` make visible to a read-committed reader, in log order: a
    non-transactional batch at once, a transaction's batches when its commit marker comes, never
    when an abort marker comes. ``log.open`` keeps what still waits for its marker."""
    out: list[CommittedRecord] = []
    for b in batches:
        if b.control:
            held = log.open.pop(b.producer_id, [])
            if b.aborts:
                log.aborted += len(held)
            else:
                out.extend(held)
        elif b.transactional:
            log.open.setdefault(b.producer_id, []).extend(b.records)
        else:
            out.extend(b.records)
    return out


def _batches(topic: str, partition: int, records: bytes, log: PartitionLog) -> list[Batch]:
    """Decoded batches of a fetch response's record set; advances ``log.next_offset``."""
    mr = MemoryRecords(records)
    found = []
    while (b := mr.next_batch()) is not None:
        log.next_offset = max(log.next_offset, b.next_offset)
        if b.is_control_batch:
            marker = next(iter(b), None)
            found.append(Batch(b.producer_id, True, True, bool(marker and marker.abort), []))
            continue
        rows = [CommittedRecord(topic, partition, r.offset, r.timestamp, r.key, r.value,
                                list(r.headers or [])) for r in b]
        found.append(Batch(b.producer_id, b.is_transactional, False, False, rows))
    return found


class CommittedReader:
    """Every committed record of a physical topic, from the log start, read incrementally:
    each ``read`` returns what became visible since the previous one."""

    def __init__(self, kafka: KafkaSettings, topic: str):
        self.topic = topic
        # Room for a whole answer: every partition's share plus the protocol's framing.
        self.client = KafkaNetClient(**kafka.python_client_kwargs(),
                                     receive_message_max_bytes=_MAX_BYTES + (1 << 20))
        self.client.cluster.set_topics([topic])
        self._refresh()
        parts = self.client.cluster.partitions_for_topic(topic)
        if not parts:
            self.close()
            raise ValueError(f"topic {topic!r} does not exist; run `onair topics create`")
        self.logs = {p: PartitionLog() for p in sorted(parts)}

    def skip_to_end(self, reported_ends: dict[int, int]) -> None:
        """Go on from the end of each partition (``reported_ends``, as the broker reports it):
        what is committed up to now is skipped, as a consumer that seeks to the end does. The
        records read past the reported ends are skipped too (Tansu reports the start of the
        last batch); a transaction open across the start shows only its later records."""
        for p, end in reported_ends.items():
            self.logs[p].next_offset = max(self.logs[p].next_offset, end)
        while self.read(max_wait_ms=0):
            pass

    def _refresh(self) -> None:
        self.client.poll(future=self.client.cluster.request_update())

    def read(self, max_wait_ms: int = 100) -> list[CommittedRecord]:
        by_leader: dict[int, list[int]] = {}
        for p in self.logs:
            leader = self.client.cluster.leader_for_partition(TopicPartition(self.topic, p))
            by_leader.setdefault(leader, []).append(p)
        out: list[CommittedRecord] = []
        stale = False
        for node, parts in by_leader.items():
            response = self.client.send_and_receive(node, self._request(parts, max_wait_ms))
            for topic_data in response.responses:
                for pd in topic_data.partitions:
                    log = self.logs[pd.partition_index]
                    if pd.error_code == _OFFSET_OUT_OF_RANGE:
                        log.next_offset = max(pd.log_start_offset, 0)
                    elif pd.error_code != _NO_ERROR:
                        stale = True   # e.g. a leader moved: ask for metadata, fetch again
                    elif pd.records:
                        out += settle(log, _batches(self.topic, pd.partition_index,
                                                    pd.records, log))
        if stale:
            self._refresh()
        return out

    def _request(self, parts: list[int], max_wait_ms: int) -> FetchRequest:
        fetch_partition = FetchRequest.FetchTopic.FetchPartition
        return FetchRequest(
            max_wait_ms=max_wait_ms, min_bytes=1, max_bytes=_MAX_BYTES,
            isolation_level=0,   # the whole log, markers included: settle() decides
            session_id=0, session_epoch=-1, forgotten_topics_data=[], rack_id="",
            topics=[FetchRequest.FetchTopic(topic=self.topic, partitions=[
                fetch_partition(partition=p, fetch_offset=self.logs[p].next_offset,
                                partition_max_bytes=_PARTITION_MAX_BYTES,
                                current_leader_epoch=-1, log_start_offset=-1)
                for p in parts])],
            min_version=4, max_version=11)

    @property
    def aborted(self) -> int:
        """Records of aborted transactions left out so far."""
        return sum(log.aborted for log in self.logs.values())

    def read_until_idle(self, idle_ms: int) -> list[CommittedRecord]:
        """Every record that becomes visible until ``idle_ms`` pass with none."""
        out: list[CommittedRecord] = []
        quiet_since = time.monotonic()
        while (time.monotonic() - quiet_since) * 1000 < idle_ms:
            got = self.read()
            if got:
                out += got
                quiet_since = time.monotonic()
        return out

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> CommittedReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
