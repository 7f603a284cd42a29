"""Examples of clients of the Qilian API (importable, so that tests and benchmarks reuse them)."""
