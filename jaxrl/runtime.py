"""Process-wide JAX settings, applied once before any compilation."""

from __future__ import annotations

import os
from pathlib import Path

import jax

CACHE_DIR = Path(os.environ.get("JAXRL_CACHE_DIR", Path.home() / ".cache" / "jaxrl" / "xla"))
# Traced programs kept in CACHE_DIR/programs (jaxrl.program_cache); JAXRL_PROGRAM_CACHE=0 turns it off.
PROGRAM_CACHE = os.environ.get("JAXRL_PROGRAM_CACHE", "1") != "0"


def configure_jax() -> None:
    """Persistent compilation cache: a second run of the same program skips XLA."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(CACHE_DIR))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


# XLA settings for work that compiles far more than it runs, such as the test suite: LLVM at -O1 and
# XLA:CPU's older fusion path compile in about half the time; MJX steps run nearly as fast, SGD on MLPs
# slower (benchmarks/results/quick_compile_flags_cpu.json). XLA reads them when jax starts its backend.
QUICK_COMPILE_FLAGS = {"xla_backend_optimization_level": "1", "xla_cpu_use_fusion_emitters": "false",
                       "xla_cpu_enable_concurrency_optimized_scheduler": "false"}
# The same at LLVM -O0, for work that runs almost nothing it compiles: the test suite's processes and
# benchmarks/gpu.sh's dry run (which the suite runs, so the two must compile alike).
COMPILE_ONLY_FLAGS = dict(QUICK_COMPILE_FLAGS, xla_backend_optimization_level="0")


def unset_xla_flags(xla_flags: str, flags: dict[str, str]) -> dict[str, str]:
    """Those of `flags` that the XLA_FLAGS value `xla_flags` does not set."""
    return {name: value for name, value in flags.items() if f"--{name}=" not in xla_flags}


def with_xla_flags(xla_flags: str, flags: dict[str, str]) -> str:
    """The XLA_FLAGS value `xla_flags` with each of `flags` added where it does not set that flag already."""
    added = [f"--{name}={value}" for name, value in unset_xla_flags(xla_flags, flags).items()]
    return " ".join([xla_flags, *added]).strip()


def has_accelerator() -> bool:
    return jax.default_backend() != "cpu"
