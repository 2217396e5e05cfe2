"""Faults injected for real into the embedded stack: a TaskManager killed with SIGKILL, Redis
frozen with SIGSTOP, Redis killed and started again. Each returns when the fault is over (the
cluster has its TaskManagers again, Redis answers again); the fault suite then measures how
long the job took to produce output again and compares what it produced with the reference.

Only a stack this test session started itself can be hurt this way (``onair up`` in its own
``ONAIR_HOME``); against services named by environment variables the tests skip.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import pytest

from connectors import flink_rest
from onair.stack import TASKMANAGERS, Stack, flink_overview, pyflink_home, redis_info

FIGURES = Path(os.environ.get("ONAIR_FAULT_FIGURES", "")) if os.environ.get(
    "ONAIR_FAULT_FIGURES") else None


def stack() -> Stack:
    s = Stack.default()
    missing = {"flink", "redis"} - set(s.started())
    if missing:
        pytest.skip(f"the fault suite hurts only a stack it started itself ({missing} are not)")
    return s


def taskmanager_pids(s: Stack) -> list[int]:
    pids = []
    for pid_file in s.pids.glob("*taskexecutor*.pid"):
        for line in pid_file.read_text().split():
            if line.isdigit() and Path(f"/proc/{line}").exists():
                pids.append(int(line))
    return pids


def taskmanager_running(job_id: str, s: Stack) -> int:
    """The pid of a TaskManager that runs a task of ``job_id``."""
    rest = flink_rest.FlinkSettings.from_env().rest_url
    hosts: set[str] = set()
    for vertex in flink_rest.call(f"{rest}/jobs/{job_id}").get("vertices", []):
        detail = flink_rest.call(f"{rest}/jobs/{job_id}/vertices/{vertex['id']}/taskmanagers")
        hosts |= {tm["taskmanager-id"] for tm in detail.get("taskmanagers", [])}
    by_id = {tm["id"]: tm for tm in flink_rest.call(f"{rest}/taskmanagers")["taskmanagers"]}
    for tm_id in sorted(hosts):
        port = by_id.get(tm_id, {}).get("dataPort")
        # The REST API names no pid: the process listening on the TaskManager's data port.
        for pid in taskmanager_pids(s):
            if _listens_on(pid, port):
                return pid
    raise AssertionError(f"no TaskManager process runs {job_id} (hosts {hosts})")


def _listens_on(pid: int, port: int | None) -> bool:
    if not port:
        return False
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True)
    return f"pid={pid}," in out.stdout


def kill_taskmanager(job_id: str) -> float:
    """SIGKILL a TaskManager running ``job_id``, start a new one, wait until the cluster has
    all its TaskManagers again; return the wall-clock time of the kill."""
    s = stack()
    pid = taskmanager_running(job_id, s)
    killed_at = time.time()
    os.kill(pid, signal.SIGKILL)
    with suppress(ChildProcessError):
        os.waitpid(pid, 0)
    rest = flink_rest.FlinkSettings.from_env().rest_url
    # The JobManager notices the loss by heartbeat; a new TaskManager joins meanwhile.
    with open(s.logs / "flink-start.log", "ab") as out:
        subprocess.run(["bash", str(pyflink_home() / "bin" / "taskmanager.sh"), "start"],
                       env=s.flink_env(), check=True, stdout=out, stderr=subprocess.STDOUT)
    wait_until(lambda: (flink_overview(rest) or {}).get("taskmanagers", 0) >= TASKMANAGERS
               and pid not in taskmanager_pids(s), 120, "a new TaskManager")
    return killed_at


def redis_pid() -> int:
    return stack().started()["redis"]["pid"]


def freeze_redis(seconds: float) -> tuple[float, float]:
    """SIGSTOP Redis for ``seconds``, then SIGCONT; return (frozen at, thawed at)."""
    pid = redis_pid()
    frozen = time.time()
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        os.kill(pid, signal.SIGCONT)
    return frozen, time.time()


def restart_redis(down_s: float = 5.0) -> tuple[float, float]:
    """SIGKILL Redis, leave it down ``down_s``, start it again on its port and data (its
    append-only file); return (killed at, answering again at)."""
    s = stack()
    pid = s.started()["redis"]["pid"]
    killed = time.time()
    os.kill(pid, signal.SIGKILL)
    with suppress(ChildProcessError):
        os.waitpid(pid, 0)
    time.sleep(down_s)
    url = s._up_redis(lambda _: None)
    wait_until(lambda: redis_info(url) is not None, 30, "Redis answering")
    return killed, time.time()


def wait_until(check: Callable[[], object], timeout_s: float, what: str,
               every_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(every_s)


def send_live_shows(kafka, n: int, t0: int) -> None:
    """``n`` shows live since a minute before ``t0`` (s0, s1, ...): a catalog to rank."""
    from connectors.kafka_admin import producer

    p = producer(kafka)
    for i in range(n):
        e = {"event_id": f"sh{i}", "event_type": "live", "ts": t0 - 60_000, "show_id": f"s{i}",
             "creator_id": f"c{i % 7}", "topic": "tech"}
        p.send(kafka.topic("show-events"), json.dumps(e).encode(), key=e["show_id"].encode())
    p.flush()
    p.close()


def record(job: str, fault: str, **figures) -> None:
    """A fault's figures: printed (pytest -s shows them) and appended to
    ``$ONAIR_FAULT_FIGURES`` when set, for docs/faults.md."""
    line = json.dumps({"job": job, "fault": fault, **figures})
    print(line)
    if FIGURES:
        with open(FIGURES, "a") as f:
            f.write(line + "\n")


@pytest.fixture(scope="session")
def alarm_model(services, tmp_path_factory):
    """A small alarm model trained on generated audio, and 20-s test streams: two with a
    temporal-three alarm in them, two without."""
    import numpy as np

    from models.alarms import sounds
    from models.alarms.dataset import DatasetConfig, build_dataset
    from models.registry import Registry
    from onair.submit import submit

    name = f"alarm_fault_{uuid.uuid4().hex[:6]}"
    dataset = tmp_path_factory.mktemp("alarm-dataset")
    build_dataset(DatasetConfig(out=str(dataset), real_audio=None,
                                train_per_class=600, holdout_per_class=40, holdout_streams=3,
                                background_minutes=2))
    submit("train_alarm_detector", ["--dataset", str(dataset), "--name", name,
                                     "--promote", "--target-fpr", "0.01"], detached=False)
    rate, rng = 16_000, np.random.default_rng(11)
    speech = sounds.speech_like(20.0, rate, rng)
    room = sounds.noise(20.0, rate, rng, "pink") + 0.5 * sounds.hum(20.0, rate, rng)
    streams = {
        "a1": sounds.mix_at_snr(speech, sounds.t3_alarm(8.0, rate, rng), 6 * rate, 15.0),
        "a2": sounds.mix_at_snr(room, sounds.t3_alarm(8.0, rate, rng), 10 * rate, 15.0),
        "q1": sounds.speech_like(20.0, rate, rng),
        "q2": room,
    }
    return Registry().resolve(name, "production"), name, streams
