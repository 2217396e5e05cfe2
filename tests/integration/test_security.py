"""Nobody gets in unasked, on the stack the tests run on (docs/security.md): Redis takes only
the stack's generated ACL user; the secrets files are the owner's alone; and the generated
secrets appear nowhere in what onair prints, in the `flink run` lines, in what Flink's REST API
shows of a job, or in any log of the run."""

from __future__ import annotations

import json
import stat
import urllib.parse

import pytest
import redis

from connectors import flink_rest
from connectors.kafka_admin import create_topics
from connectors.redis_client import redis_client
from core.settings import KafkaSettings, RedisSettings, stack_credentials, state_dir
from models.signing import ModelKeys
from onair.cli import main
from onair.submit import submit

pytestmark = pytest.mark.integration


def _embedded() -> dict[str, str]:
    creds = stack_credentials()
    if not creds:
        pytest.skip("the tests' Redis is not the embedded stack's (REDIS_URL points elsewhere)")
    return creds


def test_redis_takes_only_the_stack_user(services):
    creds = _embedded()
    url = urllib.parse.urlparse(creds["REDIS_URL"])
    host, port = url.hostname, url.port
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host, port, socket_timeout=5).ping()          # no credentials at all
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host, port, username=creds["REDIS_USERNAME"], password="guessed",
                    socket_timeout=5).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host, port, username="default", password="", socket_timeout=5).ping()
    settings = RedisSettings.from_env()
    assert (settings.username, settings.password) == (creds["REDIS_USERNAME"],
                                                      creds["REDIS_PASSWORD"])
    assert redis_client(settings).ping()
    secrets = state_dir() / "secrets"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    for f in ("stack.env", "redis.acl"):
        assert stat.S_IMODE((secrets / f).stat().st_mode) == 0o600
    # The ACL file keeps only the password's SHA-256.
    assert creds["REDIS_PASSWORD"] not in (secrets / "redis.acl").read_text()


def test_the_generated_secrets_are_never_printed_or_logged(services, topic_prefix, capsys):
    creds = _embedded()
    keys = ModelKeys.from_env()
    keys.sign({})                        # the signing pair exists (made on first use)
    private_key = keys.signing_path.read_text()
    body = "".join(line for line in private_key.splitlines() if "-----" not in line)
    secrets = [creds["REDIS_PASSWORD"], body]

    kafka = KafkaSettings.from_env()
    create_topics(kafka)
    assert main(["status"]) == 0
    assert main(["status", "--json"]) == 0
    assert main(["up", "--no-topics"]) == 0
    job = submit("compute_features", ["--checkpoint-interval-ms", "2000"])
    try:
        assert flink_rest.wait_for_state(job, {"RUNNING"}, 120) == "RUNNING"
        rest = flink_rest.FlinkSettings.from_env().rest_url
        shown = [json.dumps(flink_rest.call(f"{rest}{path}"))
                 for path in (f"/jobs/{job}", f"/jobs/{job}/config", "/jobmanager/config",
                              "/jobmanager/environment", "/taskmanagers")]
    finally:
        flink_rest.cancel(job)
    printed = capsys.readouterr()
    assert "$ " in printed.err and "flink run" in printed.err    # the submission was printed
    logs = [p.read_text(errors="replace") for p in (state_dir() / "logs").rglob("*")
            if p.is_file()]
    assert logs
    for where, text in [("stdout", printed.out), ("stderr", printed.err),
                        *((f"REST {i}", t) for i, t in enumerate(shown)),
                        *((f"log {i}", t) for i, t in enumerate(logs))]:
        for secret in secrets:
            assert secret not in text, f"a generated secret in {where}"
