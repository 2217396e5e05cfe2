import re
import socket
import stat

import pytest
import yaml

from onair.stack import Stack, StackError


@pytest.fixture()
def busy_port():
    """A port held by a listener that never speaks any protocol."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    yield s.getsockname()[1]
    s.close()


def test_port_taken_by_a_stranger_is_a_clear_error(tmp_path, busy_port):
    stack = Stack(tmp_path, kafka_port=busy_port, redis_port=busy_port, flink_port=busy_port)
    stack.logs.mkdir(parents=True)
    for start, what in ((stack._up_kafka, "Kafka"), (stack._up_redis, "Redis"),
                        (stack._up_flink, "Flink")):
        with pytest.raises(StackError, match=rf"port {busy_port} is taken .*{what}"):
            start(lambda _msg: None)


def test_external_endpoint_that_does_not_answer_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    expected = re.escape("REDIS_URL=redis://127.0.0.1:1/0 does not answer")
    with pytest.raises(StackError, match=expected):
        Stack(tmp_path).up(lambda _msg: None)


def test_flink_conf_keeps_defaults_and_sizes_for_two_cores(tmp_path):
    stack = Stack(tmp_path, flink_port=18081)
    conf = yaml.safe_load((stack.write_flink_conf() / "config.yaml").read_text())
    assert conf["rest.port"] == 18081
    assert conf["taskmanager.numberOfTaskSlots"] == 4
    assert conf["python.execution-mode"] == "thread"
    assert conf["env.pid.dir"] == str(tmp_path / "pids")
    # TaskManager working directories inside the state directory, where `down` removes them
    assert conf["io.tmp.dirs"] == str(tmp_path / "flink-tmp")
    assert "--add-opens" in conf["env.java.opts.all"]
    assert (tmp_path / "flink-conf" / "log4j.properties").exists()


def test_down_with_nothing_started_stops_nothing(tmp_path):
    said = []
    Stack(tmp_path).down(said.append)
    assert said == ["nothing to stop: this state directory started no services"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_failed_up_stops_what_it_started(tmp_path, busy_port):
    from onair.stack import port_open

    kafka_port = _free_port()
    stack = Stack(tmp_path, kafka_port=kafka_port, redis_port=busy_port)
    with pytest.raises(StackError, match="does not speak Redis"):
        stack.up(lambda _msg: None)
    assert stack.started() == {}
    assert stack.leftovers() == {}
    assert not port_open(kafka_port)


def test_tls_and_insecure_together_are_refused_before_anything_starts(tmp_path):
    with pytest.raises(StackError, match="--insecure and --tls together"):
        Stack(tmp_path).up(lambda _msg: None, insecure=True, tls=True)
    assert Stack(tmp_path).started() == {}


def test_tls_credentials_name_the_stack_ca_and_keep_the_password(tmp_path):
    plain = Stack(tmp_path).credentials()
    stack = Stack(tmp_path, tls=True)
    creds = stack.credentials()
    assert creds["REDIS_URL"].startswith("rediss://127.0.0.1:")
    assert creds["REDIS_TLS_CA"] == str(stack.server_tls.ca) and stack.server_tls.exists()
    assert creds["REDIS_PASSWORD"] == plain["REDIS_PASSWORD"]
    assert stat.S_IMODE(stack.server_tls.key.stat().st_mode) == 0o600
