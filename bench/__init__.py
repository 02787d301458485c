"""Benchmarks for replydeck: `python -m bench` runs them all (see bench/README.md)."""
