"""What every command module of the CLI shares."""

from __future__ import annotations

from core.settings import KafkaSettings
from core.topics import TOPICS


class CliError(Exception):
    """An error the user can fix; printed without a traceback."""


def kafka_settings() -> KafkaSettings:
    return KafkaSettings.from_env()


def require_topic(name: str) -> None:
    if name not in TOPICS:
        raise CliError(f"unknown topic {name!r}. Known topics: {', '.join(TOPICS)}")
