"""Secrets masked in what is printed: URLs' passwords, settings' repr."""

from core.settings import KafkaSettings, RedisSettings, redact


def test_redaction_hides_passwords_in_urls_and_settings():
    assert redact("rediss://onair:s3cret@redis:6380/0") == "rediss://onair:***@redis:6380/0"
    assert redact("pw is s3cret", ["s3cret"]) == "pw is ***"
    settings = RedisSettings("rediss://u:s3cret@h:1/0", "also-secret")
    assert "s3cret" not in repr(settings) and "also-secret" not in repr(settings)
    kafka = KafkaSettings("b:9092", {"sasl.password": "kpw", "sasl.jaas.config": "x pw=kpw"})
    assert "kpw" not in repr(kafka)
