"""Flink functions and the pure logic they call (the pure parts import no PyFlink)."""
