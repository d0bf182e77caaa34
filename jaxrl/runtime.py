"""Process-wide JAX settings, applied once before any compilation."""

from __future__ import annotations

import os
from pathlib import Path

import jax

CACHE_DIR = Path(os.environ.get("JAXRL_CACHE_DIR", Path.home() / ".cache" / "jaxrl" / "xla"))


def configure_jax() -> None:
    """Persistent compilation cache: a second run of the same program skips XLA."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(CACHE_DIR))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def has_accelerator() -> bool:
    return jax.default_backend() != "cpu"
