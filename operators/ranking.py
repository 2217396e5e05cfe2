"""Flink glue of ``rank_shows``: requests joined with the broadcast catalog of shows, features
from Redis in one round trip, one ONNX call per request, top-k, A/B arm.

Requests arrive as raw Kafka rows and are validated here, not in a validate operator before:
each Python operator on the way is one more hand-over between the JVM and Python and one more
bundle to close, and latency is what this job is for (docs/performance.md)."""

from __future__ import annotations

import dataclasses
import json
import logging
import time

import numpy as np
import redis
from pyflink.common import Types
from pyflink.datastream import BroadcastProcessFunction
from pyflink.datastream.state import MapStateDescriptor

from models.ranking.catalog import SWEEP_EVERY_MS, CandidateSet, Catalog, ShowEntry
from models.ranking.retrieval import (
    DEFAULT_LIMIT,
    PriorOrder,
    affinities,
    prior_scores,
    select,
)
from models.ranking.scoring import (
    assemble,
    catalog_scores,
    heuristic_scores,
    top_k_indices,
    variant,
)
from models.registry import RegistryRef
from operators.metrics import HeapMetrics, LatencyMetrics
from operators.validate import (
    DEAD_LETTER_TAG,
    RecordBarrier,
    as_message,
    kafka_row,
    validate_row,
)

CATALOG_STATE = MapStateDescriptor("show-catalog", Types.STRING(), Types.STRING())
log = logging.getLogger(__name__)


class Ranker:
    """One request -> one ranking message (no Flink here: the benchmark times it alone)."""

    # After the online store failed, requests skip it for this long (doubling per failure up
    # to the cap) and rank from the catalog alone: a request never waits on a dead Redis
    # for more than one socket timeout.
    RETRY_AFTER_S = (0.5, 5.0)

    def __init__(self, catalog: Catalog, reader, experiment: str, horizon_ms: int,
                 default_k: int, max_candidates: int = DEFAULT_LIMIT):
        self.catalog, self.reader, self.experiment = catalog, reader, experiment
        self.horizon_ms, self.default_k = horizon_ms, default_k
        self.max_candidates = max_candidates
        self.store_down_until = 0.0
        self.store_backoff_s = 0.0
        # The retrieval prior per catalog slot, for (slot layout, batch run); slots added
        # since are appended at the next large request.
        self._prior: tuple[int, str | None, np.ndarray, PriorOrder] | None = None

    def _prior_order(self) -> PriorOrder:
        cols, run = self.catalog.columns, self.reader.run()
        kept = self._prior
        if kept is None or kept[0] != cols.layout or kept[1] != run:
            kept = (cols.layout, run, np.zeros(0), PriorOrder(np.zeros(0)))
        prior = kept[2]
        if len(prior) < cols.size:
            new = range(len(prior), cols.size)
            # Holes (forgotten shows) are never candidates: their prior does not matter.
            ids = [cols.ids[i] or "" for i in new]
            creators = [self.catalog.shows[s].creator_id if s else "" for s in ids]
            listens, plays = self.reader.priors(ids, creators)
            prior = np.concatenate([prior, prior_scores(listens, plays)])
            kept = (cols.layout, run, prior, PriorOrder(prior))
        self._prior = kept
        return kept[3]

    def _retrieve(self, request: dict, candidate: np.ndarray):
        """(ids, creators, topics, the user's profile) of the candidates retrieval picks
        for this request (models/ranking/retrieval.py). Reads the store; raises what it
        raises."""
        cols = self.catalog.columns
        prior = self._prior_order()
        profile = self.reader.profile(request["user_id"])
        liked_creators, liked_topics = affinities(*profile)
        chosen = select(candidate, cols.creator[:cols.size], cols.topic[:cols.size], prior,
                        (c for name in liked_creators
                         if (c := cols.creators.get(name)) is not None),
                        (t for name in liked_topics if (t := cols.topics.get(name)) is not None),
                        self.max_candidates)
        entries = [self.catalog.shows[cols.ids[i]] for i in chosen]
        return ([e.show_id for e in entries], [e.creator_id for e in entries],
                [e.topic for e in entries], profile)

    def _features(self, request: dict, now: int, c: CandidateSet | None,
                  candidate: np.ndarray | None):
        """(ids, creators, topics, their features): ``c``'s candidates, or when ``c`` is None
        those retrieval picks among the slots ``candidate`` marks. The features are None
        while the online store is unreachable, and then the candidates are all of them
        (which the catalog alone ranks)."""
        if time.monotonic() < self.store_down_until:
            return self._catalog_only(now, c)
        try:
            if c is None:
                ids, creators, topics, profile = self._retrieve(request, candidate)
            else:
                ids, creators, topics, profile = c.ids, c.creators, c.topics, None
            feats = self.reader.read(request["user_id"], ids, creators, topics, now, profile)
        except (redis.RedisError, OSError) as e:
            lo, hi = self.RETRY_AFTER_S
            self.store_backoff_s = min(hi, max(lo, 2 * self.store_backoff_s))
            self.store_down_until = time.monotonic() + self.store_backoff_s
            log.warning("online store unreachable (%r): catalog-only rankings for %.1f s",
                        e, self.store_backoff_s)
            return self._catalog_only(now, c)
        self.store_backoff_s = 0.0
        return ids, creators, topics, feats

    def _catalog_only(self, now: int, c: CandidateSet | None):
        """Every candidate (``c``'s, or the catalog's), without features."""
        c = c or self.catalog.candidate_set(now, self.horizon_ms)
        return c.ids, c.creators, c.topics, None

    def rank(self, request: dict, scorer, model_version: str | None,
             started: float | None = None) -> dict:
        """``scorer`` (an OnnxScorer or None) ranks the ml arm; ``model_version`` names it."""
        started = time.perf_counter() if started is None else started
        now = int(request["ts"])
        if request.get("candidates"):
            # The request names its candidates: all of them are scored (validation caps
            # their number), none retrieved.
            known = self.catalog.shows
            shows = [known.get(s) or ShowEntry(s, "", "", "unknown", 0, 0)
                     for s in request["candidates"]]
            c, candidate = CandidateSet.of(shows, horizon_ms=self.horizon_ms), None
        else:
            # Past --max-candidates, retrieval picks among the catalog's columns; otherwise
            # the (cached) candidate set is scored whole.
            candidate = self.catalog.columns.candidates(now, self.horizon_ms)
            if int(candidate.sum()) > self.max_candidates:
                c = None
            else:
                c, candidate = self.catalog.candidate_set(now, self.horizon_ms), None
        k = int(request.get("k") or self.default_k)
        arm = variant(request["user_id"], self.experiment)
        used = None
        degraded = False
        best: list[int] = []
        ids, creators = (), ()
        if c is None or c.ids:
            ids, creators, _, feats = self._features(request, now, c, candidate)
            if feats is None:
                degraded = True
                entries = [self.catalog.shows.get(s) for s in ids]
                scores = catalog_scores([e is not None and e.status == "live" for e in entries],
                                        [e.scheduled_start if e else 0 for e in entries], now)
            elif arm == "ml" and scorer is not None and feats.batch_run is not None:
                scores = scorer(assemble(feats.columns, len(ids)))[:, 1]
                used = model_version
            else:
                scores = heuristic_scores(feats.declared, feats.popularity)
            best = top_k_indices(ids, scores, k, request["request_id"])
        message = {
            "request_id": request["request_id"], "user_id": request["user_id"], "ts": now,
            "variant": arm, "model_version": used,
            "items": [{"show_id": ids[i], "score": round(float(scores[i]), 6),
                       "creator_id": creators[i]} for i in best],
            "latency_ms": round((time.perf_counter() - started) * 1000, 3),
        }
        if degraded:
            message["degraded"] = True
        return message


class RankShowsFunction(BroadcastProcessFunction):
    def __init__(self, job: str, request_schema, redis, registry: RegistryRef, model_name: str,
                 alias: str, experiment: str, horizon_ms: int, default_k: int, reload_s: float,
                 user_cache_size: int = 100_000, max_candidates: int = DEFAULT_LIMIT):
        # Settings travel from the driver: the TaskManagers' environment is not the user's.
        self.job, self.request_schema = job, request_schema
        self.redis = redis
        self.registry_ref, self.model_name, self.alias = registry, model_name, alias
        self.experiment, self.horizon_ms = experiment, horizon_ms
        self.default_k, self.reload_s = default_k, reload_s
        self.user_cache_size = user_cache_size
        self.max_candidates = max_candidates

    def open(self, runtime_context):
        from connectors.ranking_reads import RankingReader
        self.catalog = Catalog()
        self.next_sweep = 0
        self.restored = False
        # Short waits and no retries: a request ranks from the catalog alone rather than
        # wait for the store (``Ranker._features``).
        store = dataclasses.replace(self.redis, timeout_s=min(self.redis.timeout_s, 0.25),
                                    retries=0)
        reader = RankingReader(store, max_users=self.user_cache_size)
        self.ranker = Ranker(self.catalog, reader, self.experiment, self.horizon_ms,
                             self.default_k, self.max_candidates)
        self.registry = self.registry_ref.open()
        self.scorer = None
        self.model_version: str | None = None
        self.next_check = 0.0
        group = runtime_context.get_metrics_group().add_group("onair")
        self.requests = group.counter("ranking_requests")
        self.dead_letters = group.counter("dead_letters")
        self.fallbacks = group.counter("ranking_fallbacks")
        self.reloads = group.counter("model_reloads")
        self.reload_failures = group.counter("model_reload_failures")
        # Users' batch hashes read from Redis (the rest came from the reader's per-run cache).
        self.user_reads = group.counter("ranking_user_reads")
        self.latency = group.distribution("ranking_latency_us")
        self.job_latency = LatencyMetrics(group)
        self.degraded = group.counter("ranking_degraded")
        self.barrier = RecordBarrier(self.job, "rank", runtime_context)
        # The worker holds a few hundred thousand long-lived objects (Beam, PyFlink, ONNX
        # Runtime's bindings, the catalog); a full collection walking them stalls requests
        # behind it. Frozen now and then again each minute (models/heap.py), they are not
        # scanned again; what requests allocate is still collected.
        self.heap = HeapMetrics(group, freeze_every_s=60)
        self.heap.tick()

    def close(self):
        self.heap.close()

    # ------------------------------------------------------------------ the catalog
    def process_broadcast_element(self, value, ctx):
        try:
            entry = self.catalog.apply(value)
        except Exception as e:
            yield self.barrier.letter(e, value, source_topic="show-events",
                                      message_id=str(value.get("event_id")))
            return
        state = ctx.get_broadcast_state(CATALOG_STATE)
        if entry is not None:
            state.put(entry.show_id, json.dumps(entry.as_tuple()))
        if self.catalog.newest_ts >= self.next_sweep:   # a sweep walks every show
            self.next_sweep = self.catalog.newest_ts + SWEEP_EVERY_MS
            for show_id in self.catalog.forget_ended():
                state.remove(show_id)

    def _restore(self, ctx) -> None:
        """After a restart the broadcast state holds the catalog; the local copy is rebuilt
        from it once (reads from the local copy are plain dict lookups)."""
        for show_id, packed in ctx.get_broadcast_state(CATALOG_STATE).items():
            if show_id not in self.catalog.shows:
                self.catalog.put(ShowEntry.from_tuple(show_id, tuple(json.loads(packed))))
        self.restored = True

    # ------------------------------------------------------------------ the model
    def _refresh_model(self) -> None:
        """Follow the alias: a promoted version is picked up within ``reload_s`` seconds."""
        now = time.monotonic()
        if now < self.next_check:
            return
        self.next_check = now + self.reload_s
        from models.onnx_export import OnnxScorer

        try:
            mv = self.registry.resolve(self.model_name, self.alias)
            if mv.ref == self.model_version:
                return
            session, mv = self.registry.load_session(self.model_name, mv.version)
            scorer = OnnxScorer(session)
        except Exception as e:
            # Whatever is wrong with the registry (a missing or broken version, a bad alias,
            # bytes that are not ONNX), the model in service stays in service.
            self.reload_failures.inc()
            if self.scorer is None:
                log.warning("no model to rank with yet (%s): heuristic for every request", e)
            else:
                log.warning("keeping %s: reload failed: %s", self.model_version, e)
            return
        self.scorer, self.model_version = scorer, mv.ref
        self.job_latency.model(mv.ref)
        self.reloads.inc()
        log.info("ranking with %s", mv.ref)

    # ------------------------------------------------------------------ requests
    def process_element(self, value, ctx):
        started = time.perf_counter()
        ok, request = validate_row(value, (self.request_schema, as_message), self.job)
        if not ok:
            self.dead_letters.inc()
            yield DEAD_LETTER_TAG, request
            return
        if not self.restored:
            self._restore(ctx)
        self._refresh_model()
        self.requests.inc()
        reads = self.ranker.reader.user_reads
        try:
            message = self.ranker.rank(request, self.scorer, self.model_version, started)
        except Exception as e:
            yield self.barrier.letter(e, request, source_topic=value.topic or "rec-requests",
                                      message_id=request["request_id"])
            return
        if self.ranker.reader.user_reads != reads:
            self.user_reads.inc(self.ranker.reader.user_reads - reads)
        if message.get("degraded"):
            self.degraded.inc()
        elif message["variant"] == "ml" and message["model_version"] is None:
            self.fallbacks.inc()
        elapsed = time.perf_counter() - started
        self.latency.update(int(elapsed * 1e6))
        self.job_latency.observe(elapsed * 1000)
        yield kafka_row(request["user_id"], message)
        self.heap.tick()
