"""Benchmark modules for ``python -m parity bench``."""
