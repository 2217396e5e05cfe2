"""The Python worker's collector keeper (models/heap.py), and why freezing is safe for the
state compute_features holds: its entities form no reference cycles."""
import gc
import pickle

import pytest

from models.features.buckets import Bucket, route_derived, route_event, split_by_bucket
from models.features.entities import Eviction
from models.heap import HeapKeeper
from onair.sim.sample_features import feature_log


@pytest.fixture(autouse=True)
def no_keeper_left():
    yield
    while HeapKeeper._shared is not None:
        HeapKeeper._shared.release()
    gc.unfreeze()


def test_a_tick_collects_and_freezes_at_most_once_per_period():
    keeper = HeapKeeper.shared(10)
    before = gc.get_freeze_count()
    held = [[i] for i in range(1000)]
    assert keeper.tick(100.0)
    assert gc.get_freeze_count() >= before + len(held)
    assert not keeper.tick(105.0)
    assert keeper.tick(110.0)


def test_frozen_objects_are_still_freed_when_dropped():
    keeper = HeapKeeper.shared(10)
    held = [[i] for i in range(1000)]
    keeper.tick(0.0)
    frozen = gc.get_freeze_count()
    del held
    assert gc.get_freeze_count() <= frozen - 1000


def test_the_keeper_is_shared_and_unfreezes_when_its_last_user_leaves():
    first, second = HeapKeeper.shared(10), HeapKeeper.shared(30)
    assert first is second and first.every_s == 10
    first.tick(0.0)
    assert gc.get_freeze_count() > 0
    first.release()
    assert gc.get_freeze_count() > 0     # still in use
    second.release()
    assert gc.get_freeze_count() == 0
    assert first._on_collection not in gc.callbacks
    assert HeapKeeper.shared(5) is not first


def test_a_user_asking_for_no_freezing_does_not_take_it_from_another():
    assert HeapKeeper.shared(0).every_s == 0
    assert HeapKeeper.shared(60).every_s == 60
    assert HeapKeeper.shared(10).every_s == 10
    assert HeapKeeper.shared(0).every_s == 10


def test_collection_pauses_are_measured_even_without_freezing():
    keeper = HeapKeeper.shared(0)
    assert not keeper.tick(0.0) and gc.get_freeze_count() == 0
    gc.collect()
    assert keeper.pause_max_ms() is not None and keeper.pause_max_ms() >= 0


def test_entity_states_make_no_cyclic_garbage():
    """A frozen cycle that becomes garbage is never collected: what compute_features' buckets
    drop (users leaving a small cache, evicted entities, replaced states) must be freed by
    reference counting alone."""
    log = [e for _, e in feature_log(3_000, seed=7)]
    gc.collect()
    gc.disable()
    try:
        saved: dict[str, bytes] = {}
        buckets: dict[str, Bucket] = {}

        def bucket(key: str) -> Bucket:
            if key not in buckets:
                buckets[key] = Bucket(capacity=20, eviction=Eviction(idle_ms=3_600_000),
                                      load=lambda k: pickle.loads(v) if (v := saved.get(k))
                                      else None)
            return buckets[key]

        def apply(routed) -> list:
            derived = []
            for key, part in split_by_bucket(routed, 3, "b").items():
                derived += bucket(key).apply(part)
                saved.update((k, pickle.dumps(v)) for k, v in bucket(key).take_changed()[1])
            return derived

        for i in range(0, len(log), 50):
            batch = log[i:i + 50]
            first = [r for e in batch for r in route_event(e)[0]]
            creators = [r for e in batch for r in route_event(e)[1]]
            apply(creators + route_derived(apply(first)))
            for b in buckets.values():
                b.advance(batch[-1]["ts"] + 7 * 86_400_000)
                b.take_evicted()
                saved.update((k, pickle.dumps(v)) for k, v in b.take_changed()[1])
        assert sum(b.loads for b in buckets.values()) > 0   # the cache did churn
        buckets.clear()
        saved.clear()
        assert gc.collect() == 0
    finally:
        gc.enable()
