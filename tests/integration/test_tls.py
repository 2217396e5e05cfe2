"""`onair up --tls` on a real Redis: clients must trust the stack's CA and dial a name its
certificate holds, plaintext is refused, and a job writes its features over TLS end to end.

The TLS Redis is a second stack of its own (its own home and port), so the session's stack
is left as it is."""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from feature_checks import JOB_ARGS, end_log, produce_log, wait_until_redis_matches

from connectors import flink_rest
from connectors.feature_store import RedisFeatureStore
from connectors.kafka_admin import create_topics
from connectors.redis_client import redis_client
from core.settings import KafkaSettings, RedisSettings, stack_credentials
from onair.sim.sample_features import feature_log
from onair.stack import Stack
from onair.submit import submit

pytestmark = pytest.mark.integration

PORT = 16379


@pytest.fixture(scope="module")
def tls_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A Redis started the way `onair up --tls` starts it; yields its client settings."""
    home = tmp_path_factory.mktemp("tls-home")
    stack = Stack(home, redis_port=PORT)
    with pytest.MonkeyPatch.context() as env:
        env.delenv("REDIS_URL", raising=False)
        stack.up(lambda _m: None, tls=True, only={"redis"})
    try:
        yield stack_credentials({"ONAIR_HOME": str(home)})
    finally:
        stack.down(lambda _m: None)


def _ping(url: str, **kw) -> bool:
    with redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, **kw) as c:
        return c.ping()


def test_only_verified_tls_clients_with_the_password_get_in(tls_stack):
    creds = tls_stack
    assert creds["REDIS_URL"] == f"rediss://127.0.0.1:{PORT}/0"
    user = {"username": creds["REDIS_USERNAME"], "password": creds["REDIS_PASSWORD"]}
    with pytest.raises(redis.ConnectionError):                    # plaintext: no such port
        _ping(f"redis://127.0.0.1:{PORT}/0", **user)
    with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        _ping(creds["REDIS_URL"], **user)                          # the system CAs only
    with pytest.raises(redis.AuthenticationError):
        _ping(creds["REDIS_URL"], ssl_ca_certs=creds["REDIS_TLS_CA"],
              username=creds["REDIS_USERNAME"], password="guessed")
    settings = RedisSettings.from_env({"ONAIR_HOME": str(Path(creds["REDIS_TLS_CA"])
                                                          .parents[2])})
    assert settings.url == creds["REDIS_URL"] and settings.tls_ca == creds["REDIS_TLS_CA"]
    assert redis_client(settings).ping()                           # what every onair client does
    # `localhost` is in the certificate too.
    assert _ping(f"rediss://localhost:{PORT}/0", ssl_ca_certs=creds["REDIS_TLS_CA"], **user)


def test_a_name_the_certificate_does_not_hold_is_refused(tls_stack):
    """The same server reached through 127.0.0.2 (a relay): the right CA, the wrong name."""
    creds = tls_stack
    relay = _relay("127.0.0.2", ("127.0.0.1", PORT))
    url = f"rediss://127.0.0.2:{relay}/0"
    settings = RedisSettings(url, creds["REDIS_PASSWORD"], creds["REDIS_TLS_CA"],
                             username=creds["REDIS_USERNAME"], retries=0)
    with pytest.raises(redis.ConnectionError, match=r"IP address mismatch|doesn.t match"):
        redis_client(settings).ping()
    # Only the name was wrong: without the hostname check the relay gets through.
    assert redis_client(settings, ssl_check_hostname=False).ping()


def test_compute_features_writes_over_tls(services, tls_stack, topic_prefix, monkeypatch):
    creds = tls_stack
    for name in ("REDIS_URL", "REDIS_USERNAME", "REDIS_PASSWORD", "REDIS_TLS_CA"):
        monkeypatch.setenv(name, creds[name])
    monkeypatch.setenv("ONAIR_REDIS_PREFIX", f"tls{uuid.uuid4().hex[:8]}")
    kafka = KafkaSettings.from_env()
    create_topics(kafka)
    log = feature_log(3_000)
    produce_log(kafka, log)
    expected = end_log(kafka, log)
    job = submit("compute_features", JOB_ARGS)
    try:
        assert flink_rest.wait_for_state(job, {"RUNNING"}, 120) == "RUNNING"
        wait_until_redis_matches(RedisFeatureStore(), expected)
    finally:
        flink_rest.cancel(job)


def _relay(host: str, to: tuple[str, int]) -> int:
    """A TCP relay listening on ``host`` (a free port) to ``to``; daemon threads."""
    server = socket.create_server((host, 0))

    def pipe(a: socket.socket, b: socket.socket) -> None:
        with a, b, contextlib.suppress(OSError):     # either side closing ends both
            while data := a.recv(65536):
                b.sendall(data)

    def serve() -> None:
        while True:
            client, _ = server.accept()
            upstream = socket.create_connection(to)
            threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return server.getsockname()[1]
