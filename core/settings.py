"""Shared, typed connection settings built from the environment.

Every job config embeds these, so the same code runs against the embedded stack (the defaults)
and against a real deployment (set the variables, nothing else). Secrets are masked in ``repr``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from core.config import option

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


def stack_credentials(env: dict[str, str] | None = None) -> dict[str, str]:
    """The client settings the embedded stack generated for itself (``onair up``:
    ``$ONAIR_HOME/secrets/stack.env``, ``NAME=value`` lines, readable by its owner only); empty
    when there are none (``onair up --insecure``, or a stack of your own)."""
    path = state_dir(env) / "secrets" / "stack.env"
    try:
        text = path.read_text()
    except OSError:
        return {}
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line
                and not line.startswith("#"))


def write_private(path: Path, data: bytes, exclusive: bool = False) -> None:
    """Write ``data`` readable by the owner only, its folder too, never briefly wider;
    ``exclusive``: fail rather than replace an existing file (a key is never overwritten)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    with os.fdopen(os.open(path, flags, 0o600), "wb") as f:
        f.write(data)
    path.chmod(0o600)


def redact(text: str, secrets: list[str | None] | tuple[str | None, ...] = ()) -> str:
    """``text`` with each of ``secrets`` and any URL's password (``scheme://user:pw@host``)
    replaced by ``***``: for what is printed or logged."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _URL_PASSWORD.sub(r"\1***@", text)


_URL_PASSWORD = re.compile(r"([a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@", re.IGNORECASE)


@dataclass(frozen=True)
class RedisSettings:
    """Redis (or Valkey) server: ``REDIS_URL`` (``redis://`` or ``rediss://`` for TLS),
    ``REDIS_USERNAME`` and ``REDIS_PASSWORD`` (an ACL user; the password alone for a server
    with ``requirepass``), ``REDIS_TLS_CA`` for a private CA. At the embedded stack's address
    the stack's generated user applies unless these are set."""

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
    username: str | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> RedisSettings:
        """``ONAIR_REDIS_PREFIX`` (default ``onair``) starts every key onair writes;
        ``REDIS_TIMEOUT_S`` and ``REDIS_RETRIES`` bound each command."""
        env = os.environ if env is None else env
        stack = stack_credentials(env)
        # Unset, REDIS_URL is the embedded stack's (rediss:// when it runs with --tls).
        url = env.get("REDIS_URL") or stack.get("REDIS_URL") or cls.url
        if stack.get("REDIS_URL") != url or env.get("REDIS_PASSWORD"):
            stack = {}      # another server, or credentials given: the stack's do not apply
        return cls(
            url, env.get("REDIS_PASSWORD") or stack.get("REDIS_PASSWORD") or None,
            env.get("REDIS_TLS_CA") or stack.get("REDIS_TLS_CA") or None,
            env.get("ONAIR_REDIS_PREFIX", cls.key_prefix),
            float(env.get("REDIS_TIMEOUT_S") or cls.timeout_s),
            int(env.get("REDIS_RETRIES") or cls.retries),
            env.get("REDIS_USERNAME") or stack.get("REDIS_USERNAME") or None,
        )

    def __repr__(self) -> str:
        return (f"RedisSettings(url={redact(self.url)!r}, username={self.username!r}, "
                f"password={'***' if self.password else None}, tls_ca={self.tls_ca!r}, "
                f"key_prefix={self.key_prefix!r})")


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


def model_signing_key_path(env: dict[str, str] | None = None) -> Path:
    """Ed25519 private key that signs registry entries (``ONAIR_MODEL_SIGNING_KEY``)."""
    env = os.environ if env is None else env
    return Path(env.get("ONAIR_MODEL_SIGNING_KEY")
                or state_dir(env) / "secrets" / "model-signing.key").resolve()


def model_verify_key_path(env: dict[str, str] | None = None) -> Path:
    """Ed25519 public key registry entries must verify with (``ONAIR_MODEL_VERIFY_KEY``)."""
    env = os.environ if env is None else env
    return Path(env.get("ONAIR_MODEL_VERIFY_KEY")
                or model_signing_key_path(env).with_suffix(".pub")).resolve()


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


# The checkout: jobs/ and the packages `flink run` ships with them live here.
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def audio_dir(env: dict[str, str] | None = None) -> Path:
    """Real recordings for the alarm detector (``ONAIR_AUDIO_DIR``, default the repository's
    ``data/audio``: one folder per source, each with ``alarm/`` and ``background/``)."""
    env = os.environ if env is None else env
    return Path(env.get("ONAIR_AUDIO_DIR") or PROJECT_ROOT / "data" / "audio")


@dataclass(frozen=True)
class FlinkJobSettings:
    """Runtime options every streaming job takes (``group(FlinkJobSettings, ...)`` in its
    config, with the job's own defaults); bounded jobs use ``BatchJobSettings``."""

    parallelism: int = option(1, "operator parallelism", minimum=1,
                              legacy_env=("{JOB}_PARALLELISM",))
    checkpoint_interval_ms: int = option(10_000, "checkpoint interval, ms", minimum=100,
                                         legacy_env=("ONAIR_CHECKPOINT_INTERVAL_MS",))
    # "thread" embeds CPython in the TaskManager: no serialisation to a separate process.
    python_mode: str = option("thread", "PyFlink Python execution mode",
                              choices=("thread", "process"), legacy_env=("ONAIR_PYTHON_MODE",))
    bundle_size: int = option(1000, "records per Python bundle (process mode); keyed state is "
                              "written back to the JVM once per key per bundle", minimum=1,
                              legacy_env=("ONAIR_BUNDLE_SIZE",))
    bundle_time_ms: int = option(1000, "a Python bundle also ends after this many ms: the floor "
                                 "of the job's latency in process mode", minimum=1,
                                 legacy_env=("ONAIR_BUNDLE_TIME_MS",))
    # Flink's 100 ms default is added at every exchange; latency-bound jobs lower it.
    buffer_timeout_ms: int = option(100, "longest wait of a network buffer between operators",
                                    minimum=0, legacy_env=("ONAIR_BUFFER_TIMEOUT_MS",))
    unaligned_checkpoints: bool = option(False, "checkpoint barriers overtake in-flight "
                                         "records, so no input waits for another's barrier",
                                         legacy_env=("ONAIR_UNALIGNED_CHECKPOINTS",))
    # Exponential delay from 1 s; the job FAILS after this many restarts without 10 stable
    # minutes between them, for an operator to look at (docs/robustness.md).
    restart_attempts: int = option(30, "restarts after faults before the job fails, counted "
                                   "until it runs 10 min without one", minimum=0,
                                   legacy_env=("ONAIR_RESTART_ATTEMPTS",))
    restart_max_delay_s: int = option(60, "longest wait before a restart; waits double from 1 s",
                                      minimum=1, legacy_env=("ONAIR_RESTART_MAX_DELAY_S",))
    # The state backend: "hashmap" keeps state as objects on the TaskManager's heap (every
    # checkpoint copies all of it); "rocksdb" keeps it serialised on local disk behind a memory
    # cache, and checkpoints only the files changed since the last one (docs/performance.md
    # measures both as state grows).
    state_backend: str = option("hashmap", "keyed state on the heap ('hashmap') or in RocksDB "
                                "on local disk with incremental checkpoints ('rocksdb')",
                                choices=("hashmap", "rocksdb"))
    bounded: bool = option(False, "read the input topics up to their current end, then finish")
    # BATCH execution (bounded jobs over files: no checkpoints, blocking shuffles).
    batch: bool = False


@dataclass(frozen=True)
class BatchJobSettings:
    """The runtime option of bounded jobs over files (BATCH execution, process mode)."""

    parallelism: int = option(2, "subtasks of the job's Python operators", minimum=1,
                              legacy_env=("{JOB}_PARALLELISM",))
    # One record per bundle where each record names heavy work (a partition, a block of days);
    # jobs over many small records set a larger one.
    bundle_size: int = 1

    def runtime(self) -> FlinkJobSettings:
        return FlinkJobSettings(parallelism=self.parallelism, python_mode="process",
                                bundle_size=self.bundle_size, bounded=True, batch=True)


# Every variable the settings above read, for docs/configuration.md (a test keeps this list
# and the code in step).
SHARED_ENVIRONMENT: tuple[tuple[str, str, str], ...] = (
    ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092", "Kafka brokers (the embedded Tansu by "
     "default)"),
    ("KAFKA_<OPTION>", "—", "Kafka client options passed through, e.g. KAFKA_SECURITY_PROTOCOL, "
     "KAFKA_SASL_PASSWORD (secrets masked): " + ", ".join(KAFKA_PASSTHROUGH_OPTIONS)),
    ("ONAIR_TOPIC_PREFIX", "—", "prefix of every topic name, so environments can share a "
     "cluster"),
    ("REDIS_URL", "redis://127.0.0.1:6379/0", "Redis or Valkey (rediss:// for TLS)"),
    ("REDIS_USERNAME", "—", "Redis ACL user (default: the embedded stack's generated one at "
     "its address)"),
    ("REDIS_PASSWORD", "—", "Redis password when it is not in the URL (secret; default: the "
     "embedded stack's generated one at its address)"),
    ("REDIS_TLS_CA", "—", "CA file for a private Redis TLS certificate"),
    ("ONAIR_REDIS_PREFIX", "onair", "first part of every Redis key onair writes"),
    ("REDIS_TIMEOUT_S", "5", "a Redis command waits this long for its reply"),
    ("REDIS_RETRIES", "10", "retries of a Redis command, with exponential backoff"),
    ("FLINK_REST_URL", "http://127.0.0.1:8081", "the Flink cluster jobs are submitted to"),
    ("ONAIR_HOME", "./.onair", "state of the embedded stack: logs, pids, checkpoints"),
    ("ONAIR_LAKE", "$ONAIR_HOME/lake", "root URI of the data lake (any Flink filesystem)"),
    ("ONAIR_REGISTRY", "$ONAIR_HOME/registry", "root of the model registry"),
    ("ONAIR_MODEL_SIGNING_KEY", "$ONAIR_HOME/secrets/model-signing.key", "Ed25519 key that "
     "signs registry entries (secret; made on first use at the default place)"),
    ("ONAIR_MODEL_VERIFY_KEY", "beside the signing key (.pub)", "public key registry entries "
     "must verify with to be loaded"),
    ("ONAIR_AUDIO_DIR", "data/audio", "real recordings for the alarm dataset"),
)
