"""Entity buckets: what one keyed call of compute_features applies, against the reference."""
import pickle

import pytest

from models.features.buckets import (
    Bucket,
    PendingWrites,
    bucket_of,
    route_derived,
    route_event,
    split_by_bucket,
)
from models.features.entities import MINUTE_MS, STATE_TYPES, FeatureReference, from_saved
from onair.sim.sample_features import feature_log

T = 1_764_000_000_000


def test_bucket_of_is_stable_and_in_range():
    # crc32, not hash(): the same key must map to the same bucket in every worker process.
    assert bucket_of("show:s1", 16) == bucket_of("show:s1", 16)
    assert {bucket_of(f"user:u{i}", 8) for i in range(200)} == set(range(8))


def test_split_keeps_arrival_order_within_a_bucket():
    routed = [(f"user:u{i % 3}", {"i": i}) for i in range(30)]
    out = split_by_bucket(routed, 4, "b")
    assert sum(len(b) for b in out.values()) == 30
    for batch in out.values():
        assert [e["i"] for _, e in batch] == sorted(e["i"] for _, e in batch)
        assert all(k.startswith("b") for k in out)


def test_routes_follow_to_creator_and_user():
    follow = {"event_id": "f", "event_type": "follow", "ts": T, "user_id": "u1",
              "creator_id": "c1"}
    assert route_event(follow) == ([("user:u1", follow)], [("creator:c1", follow)])


def test_a_session_open_past_five_minutes_is_advanced_by_the_bucket_timer():
    b = Bucket()
    start = {"event_id": "e1", "event_type": "listen_start", "ts": T, "user_id": "u1",
             "show_id": "s1"}
    b.apply([("show:s1", start)])
    changed, saves = b.take_changed()
    assert [k for k, _ in changed] == ["show:s1"]
    # The listener is saved on its own; the show's pickle leaves listeners out.
    assert sorted(k for k, _ in saves) == ["show:s1", "show:s1\x1fu1"]
    assert from_saved(dict(saves)["show:s1"]).listeners == {}
    assert b.next_timer() == T + 5 * MINUTE_MS
    b.advance(T + 4 * MINUTE_MS)          # nothing due: nothing changes
    assert b.take_changed() == ([], [])
    b.advance(T + 5 * MINUTE_MS)
    [(key, st)], _ = b.take_changed()
    assert key == "show:s1"
    assert st.features()["sessions_5min"] == 1 and st.features()["live_listeners"] == 1


def test_bucketed_two_stages_equal_the_reference_after_a_restore():
    """The job's flow in plain Python: split by bucket, apply per bucket, derived creator
    updates to creator buckets; halfway, every bucket is 'restored' from pickled states."""
    log = [e for _, e in feature_log(3_000, seed=3)]
    buckets = 5
    first: dict[str, Bucket] = {}
    creators: dict[str, Bucket] = {}

    def run(events):
        routed = [r for e in events for r in route_event(e)[0]]
        direct = [r for e in events for r in route_event(e)[1]]
        for key, batch in split_by_bucket(routed, buckets, "b").items():
            derived = first.setdefault(key, Bucket()).apply(batch)
            direct.extend(route_derived(derived))
        for key, batch in split_by_bucket(direct, buckets, "c").items():
            creators.setdefault(key, Bucket()).apply(batch)

    saved = {}   # what the job's MapState holds: every save, pickled, latest wins

    def save(stage, key):
        _, saves = stage[key].take_changed()
        saved.setdefault(key, {}).update((k, pickle.dumps(o)) for k, o in saves)

    for i in range(0, 1_500, 100):
        run(log[i:i + 100])
        for stage in (first, creators):
            for key in stage:
                save(stage, key)
    for stage in (first, creators):
        for key in stage:
            restored = Bucket()
            restored.restore((k, pickle.loads(v)) for k, v in saved[key].items())
            stage[key] = restored
    for i in range(1_500, len(log), 100):
        run(log[i:i + 100])
    watermark = max(e["ts"] for e in log)
    for bucket in [*first.values(), *creators.values()]:
        while (nxt := bucket.next_timer()) is not None and nxt <= watermark:
            bucket.advance(nxt)
        bucket.advance(watermark)   # what the reference's finish does to every entity

    ref = FeatureReference()
    for e in log:
        ref.apply(e)
    expected = {f"{k}:{i}": st.features() for (k, i), st in ref.finish(watermark).items()}
    got = {k: st.features() for b in [*first.values(), *creators.values()]
           for k, st in b.entities.items()}
    assert got == expected


def _state(event_ts: int):
    st = STATE_TYPES["user"]()
    st.event_ts = event_ts
    return st


def test_pending_writes_keep_each_entity_once_at_its_latest_state():
    pending = PendingWrites(interval_ms=100)
    first, later, other = _state(1_000), _state(2_000), _state(1_500)
    pending.mark([("user:u1", first)], events=True)
    pending.mark([("user:u1", later), ("user:u2", other)], events=True)
    entities, oldest = pending.take(now_ms=50)
    assert dict(entities) == {"user:u1": later, "user:u2": other}
    # Reflection is measured from the entity that has waited longest, as it was marked.
    assert oldest == 1_000
    assert pending.take(now_ms=60) == ([], None)


def test_pending_writes_are_due_at_once_after_a_quiet_spell_then_once_per_interval():
    pending = PendingWrites(interval_ms=100)
    assert not pending.due(now_ms=10_000)          # nothing to write
    pending.mark([("user:u1", _state(1))], events=True)
    assert pending.due(now_ms=10_000)              # first change after a quiet spell
    pending.take(now_ms=10_000)
    pending.mark([("user:u1", _state(2))], events=True)
    assert not pending.due(now_ms=10_050)
    assert pending.due(now_ms=10_100)


def test_pending_writes_at_interval_zero_are_always_due():
    pending = PendingWrites(interval_ms=0)
    pending.mark([("user:u1", _state(1))], events=True)
    pending.take(now_ms=5)
    pending.mark([("user:u1", _state(2))], events=True)
    assert pending.due(now_ms=5)


def test_changes_not_made_by_events_are_written_but_not_timed_as_reflection():
    pending = PendingWrites(interval_ms=100)
    pending.mark([("user:u1", _state(1_000))], events=False)   # a restore, or a timer
    entities, oldest = pending.take(now_ms=1)
    assert [k for k, _ in entities] == ["user:u1"] and oldest is None


def test_an_event_that_raises_is_set_aside_and_the_batch_goes_on():
    from models.features.buckets import Bucket

    good = {"event_id": "e1", "event_type": "like", "ts": 1_764_000_000_000, "user_id": "u1",
            "show_id": "s1"}
    bad = {"event_id": "e2", "event_type": "like", "ts": "not a time", "user_id": "u2",
           "show_id": "s1"}
    later = good | {"event_id": "e3", "user_id": "u3"}
    bucket, failed = Bucket(), []
    bucket.apply([("show:s1", good), ("show:s1", bad), ("show:s1", later)], failed)
    assert [(key, event["event_id"]) for key, event, _ in failed] == [("show:s1", "e2")]
    assert bucket.entities["show:s1"].features()["like_count"] == 2
    with pytest.raises(TypeError):
        Bucket().apply([("show:s1", bad)])


def test_ids_of_every_accepted_character_class_survive_a_save_and_restore():
    from models.features.buckets import Bucket
    from models.features.entities import to_saved
    from onair.sim.sample_hostile import ODD_ID

    events = [{"event_id": f"e{i}", "event_type": kind, "ts": 1_764_000_000_000 + i,
               "user_id": ODD_ID + str(i), "show_id": ODD_ID, "creator_id": ODD_ID}
              for i, kind in enumerate(("like", "listen_start", "notify_on", "follow"))]
    bucket = Bucket()
    for event in events:
        bucket.apply([(key, event) for key in _keys(event)])
    _, saves = bucket.take_changed()
    restored = Bucket()
    restored.restore(saves)
    assert {k: to_saved(v) for k, v in restored.entities.items()} == {
        k: to_saved(v) for k, v in bucket.entities.items()}


def _keys(event):
    from models.features.buckets import route_event

    first, creators = route_event(event)
    return [key for key, _ in first + creators]


def test_entities_leave_state_by_event_time_only_when_the_store_needs_nothing_of_them():
    from models.features.buckets import Bucket
    from models.features.entities import DAY_MS, STATE_TYPES, Eviction

    t0 = 1_764_000_000_000

    def ev(i, kind, **kw):
        return {"event_id": f"e{i}", "event_type": kind, "ts": t0 + i, **kw}

    bucket = Bucket(eviction=Eviction(idle_ms=30 * DAY_MS, ended_ms=DAY_MS))
    keeper = Bucket()   # the same entities, never evicted
    events = [ev(1, "follow", user_id="fan", creator_id="c1"),
              ev(2, "listen_start", user_id="idle", show_id="s1", topic="tech"),
              ev(3, "live", show_id="s1", creator_id="c1"),
              ev(4, "listen_stop", user_id="idle", show_id="s1"),
              ev(5, "ended", show_id="s1", creator_id="c1"),
              ev(6, "follow", user_id="gone", creator_id="c2"),
              ev(7, "unfollow", user_id="gone", creator_id="c2")]
    derived = [("creator:c1", {"kind": "live", "creator_id": "c1", "show_id": "s1",
                               "live": False, "ts": t0 + 5})]
    for b in (bucket, keeper):
        for e in events:
            b.apply([(key, e) for key in _keys(e)])
        b.apply(derived)
    bucket.take_changed()

    bucket.advance(t0 + DAY_MS + 5)               # the ended show goes after a day
    assert [k for k, _ in bucket.take_evicted()] == ["show:s1"]
    bucket.advance(t0 + 40 * DAY_MS)               # idle users and creators after 30 days
    evicted = {k for k, _ in bucket.take_evicted()}
    assert evicted == {"user:idle", "user:gone"}
    # Who still follows or is followed stays, and so does a creator that had followers (its
    # followers' parts are read one by one, never listed); whoever left said nothing but
    # defaults.
    assert set(bucket.entities) == {"user:fan", "creator:c1", "creator:c2"}
    keeper.advance(t0 + 40 * DAY_MS)
    for key in evicted:
        assert keeper.entities[key].features() == STATE_TYPES[key.split(":")[0]]().features()
    assert not bucket.timers.keys() - set(bucket.entities)


def test_idle_entities_wait_for_the_hour_after_their_bound_on_one_timer_per_hour():
    """Eviction times are rounded up to the hour, so a bucket's users active in one hour
    share one timer time (a list slot each, not a heap entry); each leaves at that hour,
    not before, and a user seen again moves to a later hour."""
    from models.features.buckets import Bucket
    from models.features.entities import DAY_MS, HOUR_MS, Eviction

    bucket = Bucket(eviction=Eviction(idle_ms=DAY_MS))
    for i in range(500):   # no topic: the users' only timer is their eviction
        bucket.apply([(f"user:u{i}", {"event_id": f"e{i}", "event_type": "listen_start",
                                      "ts": T + i * 7_000, "user_id": f"u{i}",
                                      "show_id": "s1"})])
    bucket.apply([("user:u0", {"event_id": "again", "event_type": "listen_start",
                               "ts": T + 2 * HOUR_MS, "user_id": "u0", "show_id": "s1"})])
    hours = sorted(set(bucket.timers.values()))
    assert hours == [T + DAY_MS + HOUR_MS, T + DAY_MS + 2 * HOUR_MS]
    assert bucket.next_timer() == hours[0] and len(bucket.heap) == 2   # u0's old hour gone
    bucket.advance(T + DAY_MS + HOUR_MS - 1)
    assert not bucket.take_evicted()
    bucket.advance(hours[0])
    assert len(bucket.take_evicted()) == 499 and bucket.next_timer() == hours[1]
    bucket.advance(hours[1])
    assert [k for k, _ in bucket.take_evicted()] == ["user:u0"]
    assert not bucket.timers and bucket.next_timer() is None


def test_without_eviction_bounds_entities_stay():
    from models.features.buckets import Bucket
    from models.features.entities import DAY_MS

    bucket = Bucket()
    e = {"event_id": "e1", "event_type": "listen_start", "ts": 1_764_000_000_000,
         "user_id": "u", "show_id": "s", "topic": "tech"}
    bucket.apply([(key, e) for key in _keys(e)])
    bucket.advance(1_764_000_000_000 + 400 * DAY_MS)
    assert set(bucket.entities) == {"user:u", "show:s"} and not bucket.take_evicted()


def test_a_bucket_with_a_small_cache_writes_what_an_unbounded_one_writes():
    """Users and creators beyond the capacity leave memory once saved and are read again
    from the saved states (the job's MapState) on their next event or timer: the features
    written, after timers and at the end, are the unbounded bucket's, across a restore."""
    log = [e for _, e in feature_log(3_000, seed=5)]

    def run(capacity):
        saved: dict[str, dict] = {}   # what the job's MapState holds, by bucket
        buckets: dict[str, Bucket] = {}
        written: dict[str, dict] = {}  # the store: entity -> latest features

        def bucket(key):
            if key not in buckets:
                saved.setdefault(key, {})
                buckets[key] = Bucket(capacity=capacity, load=loader(key))
            return buckets[key]

        def loader(key):
            return lambda k: None if k not in saved[key] else pickle.loads(saved[key][k])

        def save(key):
            # Pickled, as Flink state holds them (a saved tuple shares the live dicts).
            changed, saves = buckets[key].take_changed()
            saved[key].update((k, pickle.dumps(v)) for k, v in saves)
            written.update((k, st.features()) for k, st in changed)

        for i in range(0, len(log), 50):
            if i == 1_500:   # a restore: every bucket from its saved states alone
                for key in buckets:
                    buckets[key] = Bucket(capacity=capacity, load=loader(key))
                    buckets[key].restore((k, pickle.loads(v)) for k, v in saved[key].items())
            batch = log[i:i + 50]
            routed = [r for e in batch for r in route_event(e)[0] + route_event(e)[1]]
            for key, part in split_by_bucket(routed, 3, "b").items():
                derived = bucket(key).apply(part)
                save(key)
                for ckey, cpart in split_by_bucket(route_derived(derived), 3, "b").items():
                    bucket(ckey).apply(cpart)
                    save(ckey)
            watermark = batch[-1]["ts"] - 60_000
            for key, b in list(buckets.items()):
                if (nxt := b.next_timer()) is not None and nxt <= watermark:
                    b.advance(watermark)
                    save(key)
        return written, sum(b.loads for b in buckets.values()), buckets

    unbounded, _, _ = run(None)
    bounded, loads, buckets = run(2)
    assert bounded == unbounded
    assert loads > 100                      # entities really were read back
    assert all(len(b.cache) <= 2 for b in buckets.values())


def test_a_time_step_touches_only_the_sessions_due_and_survives_a_restore():
    """A live show with many open sessions: advancing event time re-evaluates (and saves)
    only the listeners whose session passes 5 minutes or times out by then; a show restored
    from its saved core and parts advances to the same features as one never restored."""
    from models.features.entities import ShowState, to_saved

    def start(user, ts):
        return {"event_id": f"e-{user}", "event_type": "listen_start", "ts": ts,
                "user_id": user, "show_id": "s1"}

    show = ShowState()
    show.apply({"event_id": "live", "event_type": "live", "ts": T, "show_id": "s1"})
    for i in range(100):
        show.apply(start(f"u{i}", T + i * MINUTE_MS // 10))   # one every 6 s
    show.take_parts()
    # Pickled, as Flink state holds them (a saved tuple shares the live object's dicts).
    saved = pickle.dumps(to_saved(show))
    parts = {u: pickle.dumps(to_saved(show.listener(u))) for u in show.listeners}
    show.advance(T + 5 * MINUTE_MS + 30_000)    # the first 6 starts are 5 minutes old
    assert sorted(u for u, _ in show.take_parts()) == [f"u{i}" for i in range(6)]
    assert show.features()["sessions_5min"] == 6

    restored = from_saved(pickle.loads(saved))
    for user, part in parts.items():
        restored.load_part(user, from_saved(pickle.loads(part)))
    for watermark in (T + 5 * MINUTE_MS + 30_000, T + 9 * MINUTE_MS, T + 5 * 3_600_000):
        show.advance(watermark)
        restored.advance(watermark)
        assert restored.features() == show.features()
    assert show.features()["sessions_5min"] == 100 and show.features()["live_listeners"] == 0


@pytest.mark.parametrize("seed", range(6))
def test_a_shows_session_counts_equal_every_listener_recounted_at_each_watermark(seed):
    """The show finds due sessions on its queues; recounting every listener's marks from
    scratch (``user_sessions``) at each watermark must give the same counts, with starts
    and stops out of order, sessions past 5 minutes and the 4-hour cut-off, a restore
    midway and (some seeds) the show ending."""
    import random

    from models.features.entities import (
        HOUR_MS,
        Listener,
        ShowState,
        to_saved,
        user_sessions,
    )

    rng = random.Random(seed)
    show = ShowState()
    show.apply({"event_id": "live", "event_type": "live", "ts": T, "show_id": "s1"})
    marks: dict[str, list[tuple[int, int]]] = {}
    watermark, n = T, 0
    for step in range(60):
        for _ in range(rng.randrange(0, 12)):
            user, n = f"u{rng.randrange(25)}", n + 1
            ts = watermark + rng.randrange(-3 * MINUTE_MS, 6 * MINUTE_MS)
            kind = rng.choice(("listen_start", "listen_start", "listen_stop"))
            show.apply({"event_id": f"e{n}", "event_type": kind, "ts": ts,
                        "user_id": user, "show_id": "s1"})
            marks.setdefault(user, []).append((ts, int(kind == "listen_start")))
        if seed % 2 and step == 45:
            show.apply({"event_id": "end", "event_type": "ended", "ts": watermark + 1,
                        "show_id": "s1"})
        if step == 30:   # restored from its saved core and parts alone
            show.take_parts()
            restored = from_saved(to_saved(show))
            for user in show.listeners:
                part = show.listener(user)
                assert isinstance(part, Listener)
                restored.load_part(user, from_saved(to_saved(part)))
            show = restored
        watermark += rng.choice((MINUTE_MS, 2 * MINUTE_MS, 30 * MINUTE_MS, HOUR_MS))
        show.advance(watermark)
        recount = [user_sessions(sorted(m), show.ended_ts, watermark) for m in marks.values()]
        assert show.features()["sessions_5min"] == sum(long for long, _ in recount)
        assert show.features()["live_listeners"] == sum(o is not None for _, o in recount)
        due = [o + (5 * MINUTE_MS if watermark - o < 5 * MINUTE_MS else 4 * HOUR_MS)
               for _, o in recount if o is not None]
        assert show.next_timer() == min(due, default=None)


def test_a_shows_saved_core_does_not_grow_with_its_listeners_and_old_cores_restore():
    """Open sessions live in the listeners' parts: the core saved at each event is the same
    size with 10 or 1,000 listeners. A core saved by an earlier version (open sessions in
    it) restores to the same show."""
    import dataclasses

    from models.features.entities import _LAYOUT, ShowState, to_saved

    def show_with(n):
        show = ShowState()
        show.apply({"event_id": "live", "event_type": "live", "ts": T, "show_id": "s1",
                    "creator_id": "c1"})
        for i in range(n):
            show.apply({"event_id": f"e{i}", "event_type": "listen_start", "ts": T + i,
                        "user_id": f"u{i}", "show_id": "s1"})
        return show

    small, large = (len(pickle.dumps(to_saved(show_with(n)))) for n in (10, 1000))
    assert large - small < 16

    show = show_with(50)
    parts = [(u, to_saved(lst)) for u, lst in show.take_parts()]
    # The earlier layout: the saved fields with open_at in its declared place.
    names = {name for name, _ in _LAYOUT[ShowState]}
    declared = [f.name for f in dataclasses.fields(ShowState)]
    at = 1 + sum(n in names for n in declared[:declared.index("open_at")])
    now = to_saved(show)
    earlier = (*now[:at], dict(show.open_at), *now[at:])
    for saved in (to_saved(show), earlier):
        restored = from_saved(pickle.loads(pickle.dumps(saved)))
        for user, part in parts:
            restored.load_part(user, from_saved(part))
        assert restored.open_at == show.open_at
        for watermark in (T + 6 * MINUTE_MS, T + 5 * 3_600_000):
            reference = from_saved(to_saved(show))
            for user, part in parts:
                reference.load_part(user, from_saved(part))
            reference.advance(watermark)
            restored.advance(watermark)
            assert restored.features() == reference.features()


def test_an_open_listener_costs_under_half_a_kilobyte_of_python_memory_and_saving_adds_none():
    """Each listener with an open session stays in memory with its show (its part, frozen
    once saved; its session on the show's queue) beside its user's timer: what one costs,
    measured by tracemalloc, ids and event ids included. Saving must not grow it (reading an
    object's ``__dict__`` once built one that stayed)."""
    import gc
    import tracemalloc

    n = 5_000
    events = [("show:s1", {"event_id": "live", "event_type": "live", "ts": T, "show_id": "s1",
                           "creator_id": "c1"})]
    gc.collect()
    tracemalloc.start()
    try:
        bucket = Bucket(capacity=100, load=lambda _k: None)
        bucket.apply(events)
        before = tracemalloc.get_traced_memory()[0]
        for i in range(n):
            event = {"event_id": f"l{i}", "event_type": "listen_start", "ts": T + i,
                     "user_id": f"u{i}", "show_id": "s1", "topic": "t1"}
            bucket.apply([("show:s1", event), (f"user:u{i}", event)])
            del event
        bucket.take_changed()
        gc.collect()
        applied = tracemalloc.get_traced_memory()[0]
        show = bucket.entities["show:s1"]
        show.changed.update(show.listeners)   # every part saved again
        bucket.changed.add("show:s1")
        bucket.take_changed()
        gc.collect()
        saved_again = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert (applied - before) / n < 450
    assert saved_again - applied < 16 * n / 100   # no per-listener growth


def test_a_cached_user_is_held_frozen_once_saved_and_reads_back_the_same():
    """Users and creators in a bucket's cache stay as their saved form between events: a
    fraction of the live objects' memory (tracemalloc), and the same state when touched."""
    import gc
    import tracemalloc

    n = 5_000
    events = [(f"user:u{i}", {"event_id": f"l{i}", "event_type": "listen_start", "ts": T + i,
                              "user_id": f"u{i}", "show_id": "s1", "topic": "t1"})
              for i in range(n)]
    reference = Bucket()
    reference.apply(events)
    bucket = Bucket(capacity=n, load=lambda _k: None)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for routed in events:
            bucket.apply([routed])
        bucket.take_changed()
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert all(isinstance(v, bytes) for v in bucket.cache.values())
    assert (held - before) / n < 500
    assert all(bucket.get(k).features() == st.features() for k, st in reference.entities.items())


def test_a_creators_followers_are_parts_read_one_by_one_and_old_creators_restore():
    """A creator's core does not grow with its followers (a play saves the core alone); a
    follow reads that follower's part only, and a follow event seen before the part left
    memory is still seen. A creator saved by an earlier version (followers in its core)
    restores to the same features and de-duplication, its followers becoming parts."""
    from models.features.buckets import PART_SEP
    from models.features.entities import CreatorState, _Dedupe, _LatestFlags

    def follow(i, kind="follow", eid=None):
        return {"event_id": eid or f"f{i}", "event_type": kind, "ts": T + i,
                "user_id": f"u{i}", "creator_id": "c1"}

    play = {"kind": "play", "creator_id": "c1", "ts": T}
    state: dict[str, bytes] = {}   # the MapState: pickled saves
    reads: list[str] = []

    def load(key):
        reads.append(key)
        return pickle.loads(state[key]) if key in state else None

    def save(bucket):
        _, saves = bucket.take_changed()
        state.update((k, pickle.dumps(v)) for k, v in saves)
        return [k for k, _ in saves]

    bucket = Bucket(capacity=10, load=load)
    bucket.apply([("creator:c1", follow(i)) for i in range(150)])
    assert len(save(bucket)) == 151
    bucket.apply([("creator:c1", play)])
    assert save(bucket) == ["creator:c1"] and len(state["creator:c1"]) < 200
    small_core = pickle.loads(state["creator:c1"])
    reads.clear()
    bucket.apply([("creator:c1", follow(7)),                 # a duplicate: not counted
                  ("creator:c1", follow(8, "unfollow", "x8"))])
    assert reads == [f"creator:c1{PART_SEP}u7", f"creator:c1{PART_SEP}u8"]
    creator = bucket.get("creator:c1")
    assert (creator.seq, creator.features()["follower_count"]) == (small_core[1] + 1, 149)

    # The earlier layout: dedupe holding the follow ids, followers as (latest, on).
    flags, dedupe = _LatestFlags(), _Dedupe()
    for i in range(150):
        dedupe.first_time(f"f{i}", T + i)
        flags.set(f"u{i}", T + i, f"f{i}", True)
    earlier = (small_core[0], 150, T + 149, (dedupe.seen, dedupe.newest),
               (flags.latest, flags.on), {}, {}, 0)
    restored = from_saved(pickle.loads(pickle.dumps(earlier)))
    assert restored.features() == CreatorState(follower_count=150).features()
    restored.apply(follow(3))
    assert restored.seq == 150
    assert len(restored.take_parts()) == 150   # saved as parts at its next save
