"""bench_state_scale's rank_shows and detect_alarms parts (not a benchmark of its own).

* ``ranking_catalogs``: the rank operator (``Ranker.rank``, as in bench_ranking: features from
  Redis, ONNX, top-10) over catalogs of N live shows, with the job's default
  ``--max-candidates`` (a retrieval stage above it) and, as the baseline of the same run,
  every show scored. Per size: p50/p99 with the catalog still and with a show event every
  ``churn_every`` requests (in turn a new show going live and a show ending), the
  Python memory the catalog, caches and index take (tracemalloc), and how many of the
  exhaustive top-10 the retrieved ranking also returns.
* ``alarm_streams``: bench_alarms' latency run (real-time streams, each with an alarm at a
  known time, sent by ``producers`` librdkafka processes in ``chunk_ms`` chunks) with N
  streams: alert latency p50/p99 and its parts (the audio the model needed, the job's own
  time), detections, how late chunks were acknowledged after they were due, and the
  TaskManagers' resident memory per stream.
"""

from __future__ import annotations

import gc
import os
import time
import tracemalloc
import uuid
from pathlib import Path

import numpy as np


def ranking_catalogs(sizes: list[int], requests: int, churn_every: int, cache: Path) -> dict:
    from bench_ranking import EXPERIMENT, MODEL, catalog_shows, setup

    from connectors.feature_store import FeatureWrite, RedisFeatureStore
    from models.onnx_export import OnnxScorer
    from models.ranking.retrieval import DEFAULT_LIMIT
    from models.ranking.scoring import variant
    from models.registry import Registry

    lake = setup(cache, 3000, 30)
    session, mv = Registry().load_session(MODEL, "production")
    scorer = OnnxScorer(session)
    users = [u for u in (f"u{i}" for i in range(3000)) if variant(u, EXPERIMENT) == "ml"]
    rng = np.random.default_rng(5)
    out: dict = {"max_candidates": DEFAULT_LIMIT}
    for n in sizes:
        shows = catalog_shows(lake, n)
        now = int(time.time() * 1000)
        RedisFeatureStore().write_many(
            FeatureWrite("show", s, 1, now, {"status": "live",
                                             "listen_count": int(rng.integers(500)),
                                             "unique_listeners": int(rng.integers(300)),
                                             "like_count": int(rng.integers(50))})
            for s in shows)

        gc.collect()
        tracemalloc.start()
        ranker = _ranker(shows, now, DEFAULT_LIMIT)
        _Serve(shows, now, users, 0, scorer, mv.ref)(ranker, 0, "warm")   # 20 requests
        memory = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        serve = _Serve(shows, now, users, requests, scorer, mv.ref)
        still, retrieved = serve(ranker, 0, "r")
        churned, _ = serve(ranker, churn_every, "c")
        exhaustive, full = serve(_ranker(shows, now, n), 0, "r")
        overlap = [len(set(a) & set(b)) / max(1, len(b)) for a, b in
                   zip(retrieved, full, strict=True)]
        label = f"{n // 1000}k"
        out[label] = {
            "shows": n, "python_mb": round(memory / 2**20, 1),
            "p50_ms": _pct(still, 50), "p99_ms": _pct(still, 99),
            "churn_p50_ms": _pct(churned, 50), "churn_p99_ms": _pct(churned, 99),
            "exhaustive_p50_ms": _pct(exhaustive, 50), "exhaustive_p99_ms": _pct(exhaustive, 99),
            "top10_overlap_with_exhaustive": round(float(np.mean(overlap)), 3),
        }
    return out


def _ranker(shows: dict[str, tuple[str, str]], now: int, limit: int):
    from bench_ranking import EXPERIMENT

    from connectors.ranking_reads import RankingReader
    from models.ranking.catalog import Catalog
    from operators.ranking import Ranker

    catalog = Catalog()
    for sid, (creator, topic) in shows.items():
        catalog.apply({"show_id": sid, "event_type": "live", "ts": now - 60_000,
                       "creator_id": creator, "topic": topic})
    return Ranker(catalog, RankingReader(), EXPERIMENT, 2 * 3_600_000, 10, limit)


class _Serve:
    """``requests`` rankings (after 20 untimed), a show event every ``churn`` of them:
    (times in ms, each ranking's show ids)."""

    def __init__(self, shows, now, users, requests, scorer, model_ref):
        self.shows, self.now, self.users = shows, now, users
        self.requests, self.scorer, self.model_ref = requests, scorer, model_ref

    def __call__(self, ranker, churn: int, tag: str) -> tuple[list[float], list[list[str]]]:
        times, tops = [], []
        ids = list(self.shows)
        for i in range(self.requests + 20):
            if churn and i % churn == 0:
                # Turns: a new show goes live (a new slot: its prior is read), a show ends.
                sid = ids[(i // churn) % len(ids)]
                creator, topic = self.shows[sid]
                if (i // churn) % 2:
                    ranker.catalog.apply({"show_id": sid, "event_type": "ended",
                                          "ts": self.now})
                else:
                    ranker.catalog.apply({"show_id": f"{tag}-new-{i}", "event_type": "live",
                                          "ts": self.now, "creator_id": creator,
                                          "topic": topic})
            request = {"request_id": f"{tag}-{i}", "user_id": self.users[i % len(self.users)],
                       "ts": int(time.time() * 1000)}
            t = time.perf_counter()
            ranking = ranker.rank(request, self.scorer, self.model_ref)
            if i >= 20:
                times.append((time.perf_counter() - t) * 1000)
                tops.append([item["show_id"] for item in ranking["items"]])
        return times, tops


def alarm_streams(counts: list[int], seconds: float, job_args: list[str], tmp: Path,
                  rss, fresh_cluster, chunk_ms: int, producers: int) -> dict:
    """``rss``: bytes resident in the TaskManagers; ``fresh_cluster``: restarts Flink, so
    each count starts from the same memory (both from bench_state_scale)."""
    from bench_alarms import ensure_model, latency

    from connectors.kafka_admin import create_topics
    from core.settings import KafkaSettings

    ensure_model(tmp)
    out: dict = {}
    for n in counts:
        fresh_cluster()
        # Topics of this count's own: no earlier count's chunks or alerts in them.
        os.environ["ONAIR_TOPIC_PREFIX"] = f"streams{n}-{uuid.uuid4().hex[:6]}."
        kafka = KafkaSettings.from_env()
        create_topics(kafka)
        before = rss()
        try:
            run = latency(kafka, n, seconds, job_args, before_cancel=rss, chunk_ms=chunk_ms,
                          producers=producers)
        except Exception as e:   # a count that does not fit is a result too
            out[str(n)] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
            continue
        run.pop("raw")
        run["bytes_per_stream"] = round((run.pop("before_cancel") - before) / n)
        out[str(n)] = run
    return out


def _pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 2)


def plot(runs: list[dict], path: Path) -> None:
    """compute_features' cost against the population, one line per state backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # (key, its line's label after the backend's, style): memory both whole and as held by
    # the entities (outside the JVM heap plus the heap's live objects).
    panels = (((("rss_mb", "resident", "-"), ("held_mb", "held", "--")),
               "TaskManagers' memory (MB)"),
              ((("checkpoint_steady_s", "", "-"),), "incremental / steady checkpoint (s)"),
              ((("restore_s", "", "-"),), "restore from the latest checkpoint (s)"),
              ((("events_per_s", "", "-"),), "events/s while loading"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.4))
    for ax, (lines, title) in zip(axes, panels, strict=True):
        for backend in sorted({r["backend"] for r in runs}):
            for key, label, style in lines:
                points = sorted((r["listeners"], r[key]) for r in runs
                                if r["backend"] == backend and r.get(key) is not None)
                if points:
                    ax.plot(*zip(*points, strict=True), style, marker="o",
                            label=f"{backend} {label}".strip())
        ax.set_xscale("log")
        ax.set_ylim(bottom=0)
        ax.set_xlabel("listeners")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
