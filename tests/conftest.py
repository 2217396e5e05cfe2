"""Shared fixtures: one set of services per test session.

Services, in order of preference: what ``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL`` /
``FLINK_REST_URL`` name; testcontainers Kafka and Redis when a Docker engine answers; otherwise
the embedded stack (``onair up``), started once and stopped at the end of the session.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sized
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Services:
    kafka: str
    redis: str
    flink: str


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:  # any failure means "no engine"
        return False


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    containers = []
    if _docker_answers():
        from testcontainers.kafka import KafkaContainer
        from testcontainers.redis import RedisContainer

        if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
            kafka = KafkaContainer().with_kraft().start()
            containers.append(kafka)
            os.environ["KAFKA_BOOTSTRAP_SERVERS"] = kafka.get_bootstrap_server()
        if not os.environ.get("REDIS_URL"):
            redis = RedisContainer().start()
            containers.append(redis)
            os.environ["REDIS_URL"] = (f"redis://{redis.get_container_host_ip()}:"
                                       f"{redis.get_exposed_port(6379)}/0")

    from onair.stack import Stack

    home = Path(os.environ.get("ONAIR_TEST_HOME") or tmp_path_factory.mktemp("onair-home"))
    os.environ["ONAIR_HOME"] = str(home)
    stack = Stack(home)
    # Prometheus too, when the system has it (./dev installs it): tests/integration/test_metrics.py
    endpoints = stack.up(metrics=shutil.which("prometheus") is not None)
    yield Services(endpoints["kafka"], endpoints["redis"], endpoints["flink"])
    stack.down()
    # `onair down` must leave nothing behind of what this session started.
    assert stack.leftovers() == {}
    for c in containers:
        c.stop()


def cancel_at_checkpoint(job_id: str, triggered_after_ms: int, timeout_s: float) -> str:
    """Wait up to ``timeout_s`` for a checkpoint of the job triggered after
    ``triggered_after_ms`` to complete, cancel the job (whatever happens), and return the
    newest such checkpoint to resume from."""
    from connectors import flink_rest

    checkpoint, deadline = None, time.monotonic() + timeout_s
    try:
        while checkpoint is None and time.monotonic() < deadline:
            time.sleep(0.5)
            checkpoint = flink_rest.latest_checkpoint(job_id,
                                                      triggered_after_ms=triggered_after_ms)
    finally:
        flink_rest.cancel(job_id)
    assert checkpoint, "no completed checkpoint to resume from"
    assert flink_rest.wait_for_state(job_id, {"CANCELED"}, 60) == "CANCELED"
    # Only the newest checkpoint is retained: one completed between our read and the cancel
    # deletes the one we read. Ask again now that the job is over.
    return flink_rest.retained_checkpoint(job_id, triggered_after_ms=triggered_after_ms) \
        or checkpoint


def wait_for_count(fetch: Callable[[], Sized], n: int, timeout_s: float = 120):
    """Call ``fetch`` every second until what it returns has ``n`` items (or time runs out);
    return the last result either way, for the test to assert on."""
    deadline = time.monotonic() + timeout_s
    result = fetch()
    while len(result) < n and time.monotonic() < deadline:
        time.sleep(1)
        result = fetch()
    return result


@pytest.fixture()
def topic_prefix(monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh namespace of topics for one test (``ONAIR_TOPIC_PREFIX``)."""
    prefix = f"t{uuid.uuid4().hex[:8]}."
    monkeypatch.setenv("ONAIR_TOPIC_PREFIX", prefix)
    return prefix


@pytest.fixture(autouse=True)
def _unit_tests_own_state_dir(request: pytest.FixtureRequest,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests keep their state (the model-signing key pair a registry makes on first use)
    in a folder of their own, never in the checkout's ``.onair``."""
    if "unit" not in request.node.path.parts:
        return
    tmp_path = request.getfixturevalue("tmp_path")
    monkeypatch.setenv("ONAIR_HOME", str(tmp_path / "onair-home"))
    for name in ("ONAIR_MODEL_SIGNING_KEY", "ONAIR_MODEL_VERIFY_KEY", "ONAIR_REGISTRY"):
        monkeypatch.delenv(name, raising=False)
