"""Redis client factory: URL (``redis://`` / ``rediss://`` for TLS), password, private CA."""

from __future__ import annotations

import redis

from connectors.settings import RedisSettings


def redis_client(settings: RedisSettings | None = None, **overrides) -> redis.Redis:
    """A client for ``settings`` (default: from the environment). Connections are lazy: nothing
    is opened until the first command, so this is safe to call in a Flink ``open()``."""
    settings = settings or RedisSettings.from_env()
    kw: dict = {"socket_timeout": 5, "socket_connect_timeout": 5, "health_check_interval": 30}
    if settings.password:
        kw["password"] = settings.password
    if settings.tls_ca and settings.url.startswith("rediss://"):
        kw["ssl_ca_certs"] = settings.tls_ca
    kw.update(overrides)
    return redis.Redis.from_url(settings.url, **kw)
