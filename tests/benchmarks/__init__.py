"""Benchmarks, run by hand with ``python -m tests.benchmarks`` (``bench_*.py`` are not tests)."""
