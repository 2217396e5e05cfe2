"""Flink functions: what the jobs run inside Flink, by domain, and the validated Kafka sources
and sinks (kafka_io). They call the pure logic in models/ and the stores in connectors/."""
