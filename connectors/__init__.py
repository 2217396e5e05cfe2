"""Adapters to the outside world: Kafka, Redis, the lake and Flink environment setup."""
