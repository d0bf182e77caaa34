"""Throughput and learning benchmarks; run each as `python -m benchmarks.NAME`."""
