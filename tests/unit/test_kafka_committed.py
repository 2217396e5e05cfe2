"""The read-committed rule of connectors/kafka_committed.py, on batches as a log holds them."""

from connectors.kafka_committed import Batch, CommittedRecord, PartitionLog, settle


def _rows(*values: str) -> list[CommittedRecord]:
    return [CommittedRecord("t", 0, i, 0, None, v.encode(), []) for i, v in enumerate(values)]


def _data(pid: int, *values: str, transactional: bool = True) -> Batch:
    return Batch(pid, transactional, False, False, _rows(*values))


def _marker(pid: int, aborts: bool) -> Batch:
    return Batch(pid, True, True, aborts, [])


def _values(records) -> list[str]:
    return [r.value.decode() for r in records]


def test_committed_transactions_show_at_their_marker_and_aborted_ones_never():
    log = PartitionLog()
    got = settle(log, [_data(1, "a1", "a2"), _data(2, "b1"), _data(1, "a3"),
                       _marker(2, aborts=True), _data(9, "plain", transactional=False),
                       _marker(1, aborts=False)])
    assert _values(got) == ["plain", "a1", "a2", "a3"]
    assert log.aborted == 1 and log.open == {}


def test_an_open_transaction_waits_across_reads_for_its_marker():
    log = PartitionLog()
    assert settle(log, [_data(1, "x1")]) == []
    assert settle(log, [_data(1, "x2")]) == []
    assert _values(settle(log, [_marker(1, aborts=False)])) == ["x1", "x2"]


def test_a_producer_fenced_and_aborted_then_committing_again_shows_only_the_commit():
    # A Flink sink killed mid-transaction: on recovery the transaction is aborted (the same
    # producer id, a new epoch), the replayed records are written again and committed.
    log = PartitionLog()
    got = settle(log, [_data(5, "s1", "s2"), _marker(5, aborts=True),
                       _data(5, "s1", "s2"), _marker(5, aborts=False)])
    assert _values(got) == ["s1", "s2"]
    assert log.aborted == 2
