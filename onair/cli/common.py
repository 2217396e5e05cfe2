"""What every command module of the CLI shares."""

from __future__ import annotations

import argparse
from datetime import date

from core.settings import KafkaSettings
from core.topics import TOPICS


class CliError(Exception):
    """An error the user can fix; printed without a traceback."""


def kafka_settings() -> KafkaSettings:
    return KafkaSettings.from_env()


def require_topic(name: str) -> None:
    if name not in TOPICS:
        raise CliError(f"unknown topic {name!r}. Known topics: {', '.join(TOPICS)}")


def iso_date(text: str) -> date:
    """An argparse type: a YYYY-MM-DD date."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None
