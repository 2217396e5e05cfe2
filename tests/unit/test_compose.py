"""infra/docker-compose.yml opens no door: every published port on the host's loopback, Redis
behind a password from the uncommitted env file, no secret written in the file itself."""

from pathlib import Path

import yaml

INFRA = Path(__file__).resolve().parents[2] / "infra"


def test_compose_publishes_on_loopback_only_and_keeps_secrets_out():
    text = (INFRA / "docker-compose.yml").read_text()
    compose = yaml.safe_load(text)
    published = [(name, p) for name, svc in compose["services"].items()
                 for p in svc.get("ports", [])]
    assert published
    assert all(str(p).startswith("127.0.0.1:") for _, p in published), published
    redis = compose["services"]["redis"]
    assert "--requirepass" in " ".join(redis["command"])
    assert redis["environment"]["REDIS_PASSWORD"].startswith("${REDIS_PASSWORD:?")
    for name in ("jobmanager", "taskmanager"):
        assert compose["services"][name]["environment"]["REDIS_PASSWORD"].startswith(
            "${REDIS_PASSWORD:?")
    example = (INFRA / ".env.example").read_text()
    assert "REDIS_PASSWORD=change-me" in example
    assert "infra/.env" in (INFRA.parent / ".gitignore").read_text().split()
