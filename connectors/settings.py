"""Shared, typed connection settings built from the environment.

Every job config embeds these, so the same code runs against the embedded stack (the defaults)
and against a real deployment (set the variables, nothing else). Secrets are masked in ``repr``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

# Kafka client options a user may pass through the environment. Each is read from
# KAFKA_<OPTION_IN_UPPER_SNAKE> (e.g. KAFKA_SECURITY_PROTOCOL -> security.protocol).
KAFKA_PASSTHROUGH_OPTIONS = (
    "security.protocol",
    "sasl.mechanism",
    "sasl.jaas.config",
    "sasl.username",
    "sasl.password",
    "ssl.truststore.location",
    "ssl.truststore.password",
    "ssl.keystore.location",
    "ssl.keystore.password",
    "ssl.ca.location",
    "ssl.endpoint.identification.algorithm",
)
SECRET_MARKERS = ("password", "jaas")


def _env_name(option: str) -> str:
    return "KAFKA_" + option.upper().replace(".", "_")


def _mask(options: dict[str, str]) -> dict[str, str]:
    return {k: ("***" if any(m in k for m in SECRET_MARKERS) else v) for k, v in options.items()}


@dataclass(frozen=True)
class KafkaSettings:
    """Where Kafka is and how to authenticate.

    ``bootstrap_servers`` comes from ``KAFKA_BOOTSTRAP_SERVERS`` (default 127.0.0.1:9092, the
    embedded broker); ``options`` holds the pass-through client options listed in
    ``KAFKA_PASSTHROUGH_OPTIONS`` under their Java client names.
    """

    bootstrap_servers: str = "127.0.0.1:9092"
    options: dict[str, str] = field(default_factory=dict, repr=False)
    topic_prefix: str = ""

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> KafkaSettings:
        env = os.environ if env is None else env
        options = {o: env[_env_name(o)] for o in KAFKA_PASSTHROUGH_OPTIONS if env.get(_env_name(o))}
        return cls(env.get("KAFKA_BOOTSTRAP_SERVERS", cls.bootstrap_servers), options,
                   env.get("ONAIR_TOPIC_PREFIX", ""))

    def topic(self, name: str) -> str:
        """Physical name of a project topic: ``ONAIR_TOPIC_PREFIX`` + name. The prefix lets
        several environments (or test runs) share one cluster without seeing each other."""
        return self.topic_prefix + name

    def java_properties(self) -> dict[str, str]:
        """Properties for Flink's Kafka connector (Java client names)."""
        return {"bootstrap.servers": self.bootstrap_servers, **self.options}

    def python_client_kwargs(self) -> dict[str, object]:
        """Keyword arguments for kafka-python clients (its own spelling of the same options)."""
        kw: dict[str, object] = {"bootstrap_servers": self.bootstrap_servers.split(",")}
        renames = {
            "security.protocol": "security_protocol",
            "sasl.mechanism": "sasl_mechanism",
            "sasl.username": "sasl_plain_username",
            "sasl.password": "sasl_plain_password",
            "ssl.ca.location": "ssl_cafile",
        }
        for java_name, py_name in renames.items():
            if java_name in self.options:
                kw[py_name] = self.options[java_name]
        return kw

    def __repr__(self) -> str:
        masked = _mask(self.options)
        return (f"KafkaSettings(bootstrap_servers={self.bootstrap_servers!r}, options={masked}, "
                f"topic_prefix={self.topic_prefix!r})")


@dataclass(frozen=True)
class RedisSettings:
    """Redis (or Valkey) server: ``REDIS_URL`` (``redis://`` or ``rediss://`` for TLS),
    ``REDIS_PASSWORD`` when it is not in the URL, ``REDIS_TLS_CA`` for a private CA."""

    url: str = "redis://127.0.0.1:6379/0"
    password: str | None = field(default=None, repr=False)
    tls_ca: str | None = None
    key_prefix: str = "onair"
    # A command waits this long for its reply, and a connection error or timeout is retried
    # this many times with exponential backoff (0.1 s doubling to 2 s; a server away ~13 s,
    # or frozen ~60 s, is ridden out) before it fails the caller: a longer outage fails the
    # job into its restart strategy. rank_shows waits less and does not retry (it degrades).
    timeout_s: float = 5.0
    retries: int = 10

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> RedisSettings:
        """``ONAIR_REDIS_PREFIX`` (default ``onair``) starts every key onair writes;
        ``REDIS_TIMEOUT_S`` and ``REDIS_RETRIES`` bound each command."""
        env = os.environ if env is None else env
        return cls(
            env.get("REDIS_URL", cls.url), env.get("REDIS_PASSWORD") or None,
            env.get("REDIS_TLS_CA") or None, env.get("ONAIR_REDIS_PREFIX", cls.key_prefix),
            float(env.get("REDIS_TIMEOUT_S") or cls.timeout_s),
            int(env.get("REDIS_RETRIES") or cls.retries),
        )


@dataclass(frozen=True)
class FlinkSettings:
    """The Flink cluster jobs are submitted to: ``FLINK_REST_URL`` (default the embedded
    standalone cluster on :8081)."""

    rest_url: str = "http://127.0.0.1:8081"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> FlinkSettings:
        env = os.environ if env is None else env
        return cls(env.get("FLINK_REST_URL", cls.rest_url).rstrip("/"))

    @property
    def address(self) -> str:
        """``host:port`` as ``flink run -m`` takes it."""
        return self.rest_url.split("://", 1)[-1]


def state_dir(env: dict[str, str] | None = None) -> Path:
    """Where the embedded stack keeps logs, pids, checkpoints and the lake (``ONAIR_HOME``)."""
    env = os.environ if env is None else env
    return Path(env.get("ONAIR_HOME", Path.cwd() / ".onair")).resolve()


def lake_root(env: dict[str, str] | None = None) -> str:
    """Root of the data lake as a Flink filesystem URI (``ONAIR_LAKE``, default file:// under
    the state directory). Any Flink filesystem scheme works for the Flink jobs."""
    env = os.environ if env is None else env
    return env.get("ONAIR_LAKE") or (state_dir(env) / "lake").as_uri()


def registry_root(env: dict[str, str] | None = None) -> Path:
    """Root of the model registry (``ONAIR_REGISTRY``, default under the state directory). A
    local or shared filesystem path: the jobs' TaskManagers load models from it."""
    env = os.environ if env is None else env
    return Path(env.get("ONAIR_REGISTRY") or state_dir(env) / "registry").resolve()
