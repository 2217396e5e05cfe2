"""Redis client factory: URL (``redis://`` / ``rediss://`` for TLS), password, private CA."""

from __future__ import annotations

from collections.abc import Callable

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from core.settings import RedisSettings


def redis_client(settings: RedisSettings | None = None, **overrides) -> redis.Redis:
    """A client for ``settings`` (default: from the environment). Connections are lazy: nothing
    is opened until the first command, so this is safe to call in a Flink ``open()``."""
    settings = settings or RedisSettings.from_env()
    kw: dict = {
        "socket_timeout": settings.timeout_s, "socket_connect_timeout": settings.timeout_s,
        "health_check_interval": 30,
        # Every command and pipeline retries on a lost connection or a timeout; onair's
        # writes are versioned (idempotent) and its reads have no side effect. OSError too:
        # a refused connect (a server restarting) reaches the retry as the socket's error,
        # before redis-py wraps it in its own ConnectionError.
        "retry": Retry(ExponentialBackoff(cap=2.0, base=0.1), settings.retries,
                       supported_errors=(redis.exceptions.ConnectionError,
                                         redis.exceptions.TimeoutError, OSError)),
        "retry_on_error": [redis.exceptions.ConnectionError, redis.exceptions.TimeoutError],
    }
    if settings.password:
        kw["password"] = settings.password
    if settings.username:
        kw["username"] = settings.username
    if settings.url.startswith("rediss://"):
        # The server's certificate must name the host dialled (redis-py 5 does not check).
        kw["ssl_check_hostname"] = True
        if settings.tls_ca:
            kw["ssl_ca_certs"] = settings.tls_ca
    kw.update(overrides)
    return redis.Redis.from_url(settings.url, **kw)


def unlink_matching(client: redis.Redis, pattern: str, *, batch: int = 1000,
                    keep: Callable[[bytes], bool] | None = None) -> int:
    """Unlink the keys matching ``pattern`` (but those ``keep`` says to keep), ``batch`` per
    SCAN step and UNLINK call; returns how many went."""
    deleted, found = 0, []
    for key in client.scan_iter(match=pattern, count=batch):
        if keep is None or not keep(key):
            found.append(key)
        if len(found) >= batch:
            deleted += client.unlink(*found)
            found = []
    if found:
        deleted += client.unlink(*found)
    return deleted
