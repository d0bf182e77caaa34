"""Throughput and learning benchmarks; run each as `python -m benchmarks.NAME`."""

import os

# Set here, before any benchmark loads jax: XLA's notes on loading cached programs are noise in their output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
