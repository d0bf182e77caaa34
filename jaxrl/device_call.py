"""The device call: `iterations_per_call` training iterations as one compiled program.

The TrainState is donated: the state a call returns lives in the buffers of the
one it was given, so a run holds one TrainState (replay buffer included) on the
device, not two.

The divergence guard decides on the device, so that it needs no second copy of
the state either: the call stops at the first iteration whose parameters or
metrics are not finite and returns the state it started from, the last good
one, for the loop to checkpoint. Replay buffers are the exception: they keep
what the diverging iteration wrote, transitions the last good policy collected
(its update is what diverged), because handing back the old buffer would mean
holding it twice.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.extend
import jax.numpy as jnp

from jaxrl import algos, parallel
from jaxrl.replay import ReplayBuffer


class CallReport(NamedTuple):
    iterations: jax.Array  # int32: iterations run, all of them unless one diverged
    finite: jax.Array  # bool: every iteration's parameters and metrics were finite
    finite_params: list  # bool per leaf of the last iteration's parameters: all finite


def _all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


def _is_replay(node) -> bool:
    return isinstance(node, ReplayBuffer)


def last_good(finite: jax.Array, new, start):
    """`new` where `finite`, else `start`; replay buffers are always `new`'s (see the module docstring)."""
    def pick(new_node, start_node):
        return new_node if _is_replay(new_node) else jnp.where(finite, new_node, start_node)

    return jax.tree.map(pick, new, start, is_leaf=_is_replay)


@functools.lru_cache(maxsize=16)  # runs of the same config in one process (a sweep, tests) trace once
def make_device_call(algo, env, algo_cfg, iterations: int, mesh=None):
    """jit-compiled (state, demos) -> (state, metrics stacked [iterations, ...], CallReport).

    `state` is donated; `demos` is None for learners that step an env. Metric rows
    of iterations that did not run (after a diverging one) are zeros. On a `mesh`,
    the state comes back laid out as parallel.state_shardings says and the
    metrics and report replicated.
    """
    def step(state, demos):
        return algo.train_step(state, env, algo_cfg, *algos.data_args(demos))

    def call(start, demos):
        # Traced once, for both the shapes of its metrics (the rows a while_loop must carry from the start)
        # and the loop's body: tracing an MJX env step takes seconds.
        traced, out_shapes = jax.make_jaxpr(step, return_shape=True)(start, demos)
        out_tree, traced_step = jax.tree.structure(out_shapes), jax.extend.core.jaxpr_as_fun(traced)
        rows = jax.tree.map(lambda s: jnp.zeros((iterations, *s.shape), s.dtype), out_shapes[1])

        def unfinished(carry):
            done, _, finite, _ = carry
            return (done < iterations) & finite

        def iterate(carry):
            done, state, _, rows = carry
            state, metrics = jax.tree.unflatten(out_tree, traced_step(*jax.tree.leaves((state, demos))))
            rows = jax.tree.map(lambda stacked, row: stacked.at[done].set(row), rows, metrics)
            return done + 1, state, _all_finite(state.params) & _all_finite(metrics), rows

        done, state, finite, rows = jax.lax.while_loop(
            unfinished, iterate, (jnp.int32(0), start, jnp.bool_(True), rows))
        report = CallReport(done, finite, [jnp.all(jnp.isfinite(p)) for p in jax.tree.leaves(state.params)])
        out = last_good(finite, state, start), rows, report
        if mesh is None:
            return out
        return jax.lax.with_sharding_constraint(
            out, (parallel.state_shardings(start, mesh), *parallel.replicated(out[1:], mesh)))

    return jax.jit(call, donate_argnums=0)


def non_finite_culprit(rows: dict, report: CallReport, params) -> str:
    """What went non-finite first, by name: a metric of the diverging iteration, else a parameter."""
    last = int(report.iterations) - 1
    for key, values in rows.items():
        value = float(values[last])
        if not math.isfinite(value):
            return f"metric {key} = {value}"
    paths = [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    for path, ok in zip(paths, report.finite_params, strict=True):
        if not bool(ok):
            return f"parameter {path}"
    return "a value"
