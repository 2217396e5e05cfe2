"""Benchmark: build_batch_features over a 60-day simulated lake against a single-process
pandas/pyarrow reference computing the same features over the same Parquet files.

The Flink job is submitted to the standalone cluster (``onair up``: two TaskManagers) with
``flink run`` attached, parallelism 2, and timed wall-clock from submission to the client's
exit (client start, scheduling, Python workers, both stages), after an untimed warm-up run
over ``--warmup-days`` days. Its peak memory is the largest
resident set of the TaskManagers' process trees (their JVMs and Python workers) while it runs;
``flink_idle_mb`` is the same before submission. The reference runs as a child process, timed
from start to exit, peak memory of its process. The lake (simulate + compact_lake) is built
once per size under ``--cache`` and reused.
Prints one JSON line. Run: ``./dev bench batch_features [--users 20000 --days 60]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable


def tree_rss_mb(pid: int) -> tuple[float, float]:
    """Resident memory of a process with all its descendants, and of the descendants alone
    (e.g. a TaskManager's Python workers), MB, from one pass over /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        p = int(stat.parent.name)
        children.setdefault(int(fields[1]), []).append(p)
        rss[p] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    descendants, stack = 0, list(children.get(pid, []))
    while stack:
        p = stack.pop()
        descendants += rss.get(p, 0)
        stack.extend(children.get(p, []))
    return (rss.get(pid, 0) + descendants) / 1e6, descendants / 1e6


def taskmanager_pids() -> list[int]:
    return [int(p.parent.name) for p in Path("/proc").glob("[0-9]*/cmdline")
            if b"TaskManagerRunner" in _read(p)]


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def timed(argv: list[str], env: dict | None = None,
          watch: list[int] | None = None) -> tuple[float, float, str, float]:
    """(seconds, peak MB, stdout, peak MB of the watched processes' descendants) of a child
    process; the peak is of the child's process tree, or of the trees of ``watch``."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, env=env)
    peak = [0.0, 0.0]

    def sample():
        while proc.poll() is None:
            sizes = [tree_rss_mb(p) for p in (watch or [proc.pid])]
            peak[0] = max(peak[0], sum(tree for tree, _ in sizes))
            peak[1] = max(peak[1], sum(below for _, below in sizes) if watch else 0.0)
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    seconds = time.monotonic() - start
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{err[-3000:]}")
    return seconds, peak[0], out, peak[1]


def build_lake(cache: Path, users: int, days: int, start: date) -> str:
    from onair.sim.world import WORLD_VERSION

    lake_dir = cache / f"lake-w{WORLD_VERSION}-{users}u-{days}d-{start}"
    lake = lake_dir.as_uri()
    if (lake_dir / ".complete").exists():
        return lake
    subprocess.run([PY, "-m", "onair.cli", "simulate", "--users", str(users), "--days",
                    str(days), "--start", start.isoformat(), "--lake", lake, "--quiet"],
                   check=True, cwd=ROOT)
    subprocess.run([PY, "jobs/compact_lake.py", "--lake", lake, "--tables",
                    "behavior_events,impressions"], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    (lake_dir / ".complete").write_text("")
    return lake


REFERENCE = """
import json, sys, time
from datetime import date
sys.path.insert(0, "tests")
from batch_features_reference import reference_features
t = time.monotonic()
out = reference_features(sys.argv[1], date.fromisoformat(sys.argv[2]), int(sys.argv[3]))
for name, frame in out.items():
    frame.to_parquet(f"{sys.argv[4]}/{name}.parquet")
print(json.dumps({"compute_s": time.monotonic() - t}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--parallelism", type=int, default=2)
    parser.add_argument("--lookback-days", type=int, default=0,
                        help="days the features look back (default: all --days): memory "
                             "against the size of what is read, on the same lake")
    parser.add_argument("--warmup-days", type=int, default=5,
                        help="an untimed run over this many days first (0: none)")
    parser.add_argument("--job-args", nargs=argparse.REMAINDER, default=[],
                        help="passed on to build_batch_features, e.g. --execution batch")
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "onair-bench"))
    args = parser.parse_args()

    start = date(2026, 9, 1)
    as_of = start + timedelta(days=args.days)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    lake = build_lake(cache, args.users, args.days, start)
    lookback = args.lookback_days or args.days

    from onair.stack import Stack
    from onair.submit import flink_run_argv

    stack = Stack.default()
    stack.up(lambda _m: None)
    tms = taskmanager_pids()
    warmup_s = None
    if args.warmup_days:
        # Untimed: the first job on fresh TaskManagers ran ~10 s longer than the next ones
        # (JIT, first touch of their memory); the figure is for a running cluster.
        warmup_s, *_ = timed(flink_run_argv("build_batch_features", [
            "--lake", lake, "--as-of", as_of.isoformat(), "--lookback-days",
            str(args.warmup_days), "--parallelism", str(args.parallelism), "--no-online",
            *args.job_args], detached=False), env=stack.flink_env())
    idle_mb = sum(tree_rss_mb(p)[0] for p in tms)
    argv = flink_run_argv("build_batch_features", [
        "--lake", lake, "--as-of", as_of.isoformat(), "--lookback-days", str(lookback),
        "--parallelism", str(args.parallelism), "--no-online", *args.job_args],
        detached=False)
    flink_s, flink_mb, out, python_mb = timed(argv, env=stack.flink_env(), watch=tms)
    job = json.loads([line for line in out.splitlines() if line.startswith("{")][-1])
    ref_dir = Path(tempfile.mkdtemp(prefix="onair-bench-ref-"))
    ref_s, ref_mb, ref_out, _ = timed([PY, "-c", REFERENCE, lake, as_of.isoformat(),
                                    str(lookback), str(ref_dir)])

    # Same numbers? (after the clocks stopped)
    import pandas as pd

    from connectors.batch_store import offline_root, read_offline
    from models.features.batch import TABLE_FEATURES, TABLE_KEYS

    equal = True
    for table in TABLE_KEYS:
        cols = [*TABLE_KEYS[table], *TABLE_FEATURES[table]]
        keys = list(TABLE_KEYS[table])
        got = read_offline(offline_root(lake), table, as_of.isoformat())[cols]
        want = pd.read_parquet(ref_dir / f"{table}.parquet")[cols]
        try:
            pd.testing.assert_frame_equal(got.sort_values(keys).reset_index(drop=True),
                                          want.sort_values(keys).reset_index(drop=True),
                                          check_dtype=False, rtol=1e-9)
        except AssertionError:
            equal = False

    print(json.dumps({
        "bench": "batch_features",
        "events": job["events"],
        **job["events_by_table"],
        "users": args.users, "days": args.days, "lookback_days": lookback,
        "parallelism": args.parallelism,
        "flink_s": round(flink_s, 2),
        "warmup_s": warmup_s and round(warmup_s, 2),
        "job_args": args.job_args,
        "flink_job_s": job["seconds"],
        "reference_s": round(ref_s, 2),
        "reference_compute_s": round(json.loads(ref_out.strip().splitlines()[-1])["compute_s"],
                                     2),
        "ratio": round(flink_s / ref_s, 3),
        "events_per_s": round(job["events"] / flink_s),
        "reference_events_per_s": round(job["events"] / ref_s),
        "flink_peak_mb": round(flink_mb),
        "flink_idle_mb": round(idle_mb),
        # The job's Python workers alone (the JVMs' heaps grow and shrink at GC's pace).
        "flink_python_peak_mb": round(python_mb),
        "taskmanagers": len(tms),
        "reference_peak_mb": round(ref_mb),
        "features_equal": equal,
    }))


if __name__ == "__main__":
    main()
