"""Compiling a run's programs, and saying where the time went.

Each program's seconds are split into trace (Python runs the function), lowering (to StableHLO) and
XLA's compile, or on a persistent-cache hit its load; `jaxrl train` prints them, so a slow start names
its culprit. Programs that run once or rarely (init, videos) are compiled with XLA:CPU's quicker
settings: they cost seconds of compile for milliseconds of run time. Evaluation is not among them: a
CPU run evaluates often enough that its slower program costs more than the compile saves.
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax

from jaxrl.program_cache import ProgramCache, export_flat
from jaxrl.runtime import QUICK_COMPILE_FLAGS, unset_xla_flags

_CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"
_cache_hits = 0  # persistent-cache hits so far in this process


def _count_cache_hit(event: str, **_) -> None:
    global _cache_hits
    if event == _CACHE_HIT_EVENT:
        _cache_hits += 1


jax.monitoring.register_event_listener(_count_cache_hit)


@dataclasses.dataclass(frozen=True)
class ProgramTime:
    name: str
    trace_seconds: float
    lower_seconds: float  # lowering, or reading the program cache's file and lowering that
    compile_seconds: float  # XLA's compile, or the persistent cache's load when `cached`
    cached: bool
    from_program_cache: bool = False  # not traced: jaxrl.program_cache held it

    @property
    def seconds(self) -> float:
        return self.trace_seconds + self.lower_seconds + self.compile_seconds

    def describe(self) -> str:
        stages = (
            [f"program cache {self.lower_seconds:.1f}"]
            if self.from_program_cache
            else [f"trace {self.trace_seconds:.1f}", f"lower {self.lower_seconds:.1f}"]
        )
        stages.append(f"{'cache load' if self.cached else 'XLA'} {self.compile_seconds:.1f}")
        return f"{self.name} {self.seconds:.1f} s ({' + '.join(stages)})"


def total_seconds(programs: list[ProgramTime]) -> float:
    return sum(program.seconds for program in programs)


class Compiler:
    """Compiles jitted functions ahead of time and keeps each one's ProgramTime, in order; with a
    ProgramCache, a program it holds is not traced, and one it lacks is exported into it."""

    def __init__(self, cache: ProgramCache | None = None):
        self.times: list[ProgramTime] = []
        self.cache = cache
        self._ahead: dict[str, tuple] = {}  # name -> ("traced" or "loaded", it, seconds): output_shapes's

    def output_shapes(self, name: str, jitted, *args):
        """The ShapeDtypeStructs `jitted` returns for `args`, found now for `compile(name, ...)` later."""
        started = time.perf_counter()
        loaded = None if self.cache is None else self.cache.load(self.cache.key(name, args))
        if loaded is not None:
            self._ahead[name] = "loaded", loaded, time.perf_counter() - started
            exported, out_tree = loaded
            return jax.tree.unflatten(
                out_tree, [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in exported.out_avals]
            )
        traced = jitted.trace(*args)
        self._ahead[name] = "traced", traced, time.perf_counter() - started
        return traced.out_info

    def compile(
        self, name: str, jitted, *args, rarely_run: bool = False, donate_argnums: tuple[int, ...] = ()
    ):
        """`jitted` compiled for `args` (arrays or ShapeDtypeStructs), as a callable of such args.
        `rarely_run`: with XLA:CPU's quick settings (on a CPU backend;
        benchmarks/results/quick_compile_flags_cpu.json). `donate_argnums`: what `jitted` donates, for
        the exported program, which does not carry it."""
        started = time.perf_counter()
        key = None if self.cache is None else self.cache.key(name, args)
        kind, ahead, ahead_seconds = self._ahead.pop(name, (None, None, 0.0))
        loaded = ahead if kind == "loaded" else self.cache.load(key) if kind is None and key else None
        from_cache, trace_seconds = loaded is not None, 0.0
        if not from_cache:
            traced = ahead if kind == "traced" else jitted.trace(*args)
            trace_seconds = ahead_seconds + time.perf_counter() - started
        lower_started = time.perf_counter()
        if not from_cache and key is not None:
            loaded = self._export(key, jitted, args)
        if loaded is not None:
            exported, out_tree = loaded
            lowered = _lower_exported(exported, args, donate_argnums)
        else:
            lowered = traced.lower()
        lowered_at, hits = time.perf_counter(), _cache_hits
        compiled = _compile(lowered, rarely_run and jax.default_backend() == "cpu")
        done = time.perf_counter()
        lower_seconds = lowered_at - lower_started + (ahead_seconds if from_cache else 0.0)
        self.times.append(
            ProgramTime(name, trace_seconds, lower_seconds, done - lowered_at, _cache_hits > hits, from_cache)
        )
        return compiled if loaded is None else _FlatProgram(compiled, out_tree)

    def _export(self, key: str, jitted, args: tuple):
        """(Exported, out_tree) of `jitted`, kept in the program cache; None if it cannot be exported."""
        try:
            exported, out_tree = export_flat(jitted, args)
            self.cache.store(key, exported, out_tree)
        except Exception:  # jax.export refuses a host callback; an output's static field may not pickle
            return None
        return exported, out_tree


def _lower_exported(exported, args: tuple, donate_argnums: tuple[int, ...]):
    """`exported` lowered for the flat leaves of `args`, donating those of `donate_argnums`."""
    counts = [len(jax.tree.leaves(arg)) for arg in args]
    starts = [sum(counts[:i]) for i in range(len(args))]
    donated = tuple(leaf for a in donate_argnums for leaf in range(starts[a], starts[a] + counts[a]))
    wrapper = jax.jit(exported.call, donate_argnums=donated)
    return wrapper.trace(*jax.tree.leaves(args)).lower()


class _FlatProgram:
    """A compiled exported program called with the pytrees it was exported for."""

    def __init__(self, compiled, out_tree):
        self._compiled, self._out_tree = compiled, out_tree

    def __call__(self, *args):
        return jax.tree.unflatten(self._out_tree, self._compiled(*jax.tree.leaves(args)))


def _compile(lowered, quick: bool):
    """`lowered` compiled; `quick`: with the quick settings this XLA knows (a newer one may drop one)."""
    options = _quick_compile_options() if quick else {}
    if options:
        try:
            return lowered.compile(options)
        except jax.errors.JaxRuntimeError as error:
            if not any(words in str(error) for words in ("No such compile option", "While setting option")):
                raise
    return lowered.compile()


def _quick_compile_options() -> dict[str, int | bool]:
    """XLA:CPU's quick settings as one program's compile options, leaving out those XLA_FLAGS sets for
    the whole process (the test suite compiles at a lower level still)."""
    unset = unset_xla_flags(os.environ.get("XLA_FLAGS", ""), QUICK_COMPILE_FLAGS)
    return {name: int(value) if value.isdigit() else value == "true" for name, value in unset.items()}
