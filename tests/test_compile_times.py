"""jaxrl.compile_times: programs compiled ahead of time, each one's seconds split by stage."""

import jax
import jax.numpy as jnp

from jaxrl import compile_times


def test_each_program_is_timed_by_stage_and_a_rarely_run_one_compiles_with_the_quick_settings(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "")  # the suite's own XLA_FLAGS set them all: none would be passed
    assert compile_times._quick_compile_options()
    compiler = compile_times.Compiler()
    square = compiler.compile("square", jax.jit(lambda x: x * x), jnp.arange(3.0))
    # XLA refuses a mistyped option (a string for a bool) at compile time: this compile would raise.
    cube = compiler.compile("cube", jax.jit(lambda x: x**3), jnp.arange(3.0), rarely_run=True)
    assert square(jnp.arange(3.0)).tolist() == [0.0, 1.0, 4.0]
    assert cube(jnp.arange(3.0)).tolist() == [0.0, 1.0, 8.0]
    assert [program.name for program in compiler.times] == ["square", "cube"]
    for program in compiler.times:
        assert min(program.trace_seconds, program.lower_seconds, program.compile_seconds) >= 0
        assert program.describe().startswith(f"{program.name} {program.seconds:.1f} s (trace ")


def test_traced_ahead_the_shapes_come_first_and_the_trace_counts_once():
    compiler = compile_times.Compiler()
    shapes = compiler.output_shapes("pair", jax.jit(lambda x: (x, x.sum())), jnp.ones((2, 3)))
    assert [s.shape for s in shapes] == [(2, 3), ()]
    compiled = compiler.compile("pair", None, jnp.ones((2, 3)))  # the trace made above is compiled
    assert float(compiled(jnp.ones((2, 3)))[1]) == 6.0
    assert len(compiler.times) == 1


def test_the_quick_settings_leave_out_what_xla_flags_sets(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_backend_optimization_level=0")
    options = compile_times._quick_compile_options()
    assert "xla_backend_optimization_level" not in options
    assert options["xla_cpu_use_fusion_emitters"] is False
