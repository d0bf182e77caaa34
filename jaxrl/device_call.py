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

A population (jaxrl.population.Members) is stepped as one vmapped train_step
with a guard per member: a member whose parameters or metrics stop being
finite is frozen at its last good state from that iteration on, and the call
goes on for the others until all have run their iterations or diverged.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.extend
import jax.numpy as jnp

from jaxrl import algos, parallel
from jaxrl.population import Members, member_config
from jaxrl.replay import ReplayBuffer


class CallReport(NamedTuple):
    """Of one run, or [members] of each field for a population."""

    iterations: jax.Array  # int32: iterations run, all of them unless one diverged (it counts)
    finite: jax.Array  # bool: every iteration's parameters and metrics were finite
    finite_params: list  # bool per leaf of the last iteration's parameters: all finite


def _leaves_finite(tree, members: bool = False) -> list[jax.Array]:
    """Per leaf of `tree`: all finite ([members] of it, if its leaves are batched over members)."""
    axes = lambda leaf: tuple(range(1, leaf.ndim)) if members else None  # noqa: E731
    return [jnp.all(jnp.isfinite(leaf), axis=axes(leaf)) for leaf in jax.tree.leaves(tree)]


def _all_finite(tree, members: bool = False) -> jax.Array:
    leaves = _leaves_finite(tree, members)
    return jnp.all(jnp.stack(leaves), axis=0) if leaves else jnp.bool_(True)


def _is_replay(node) -> bool:
    return isinstance(node, ReplayBuffer)


def last_good(finite: jax.Array, new, start):
    """`new` where `finite` (a bool, or one per member of a leading axis), else `start`; replay buffers
    are always `new`'s (see the module docstring)."""
    def pick(new_node, start_node):
        if _is_replay(new_node):
            return new_node
        return jnp.where(finite.reshape(finite.shape + (1,) * (new_node.ndim - finite.ndim)), new_node,
                         start_node)

    return jax.tree.map(pick, new, start, is_leaf=_is_replay)


def _traced(step, *args):
    """(`step` as a function of the same arguments, its metrics' shapes): `step` traced once, for both
    the shapes of its metrics (the rows a while_loop must carry from the start) and the loop's body,
    since tracing an MJX env step takes seconds."""
    traced, out_shapes = jax.make_jaxpr(step, return_shape=True)(*args)
    out_tree, as_function = jax.tree.structure(out_shapes), jax.extend.core.jaxpr_as_fun(traced)
    return (lambda *a: jax.tree.unflatten(out_tree, as_function(*jax.tree.leaves(a)))), out_shapes[1]


def _pinned(out, start, mesh):
    """The call's outputs: the state laid out as it came in, metrics and report replicated."""
    if mesh is None:
        return out
    return jax.lax.with_sharding_constraint(
        out, (parallel.state_shardings(start, mesh), *parallel.replicated(out[1:], mesh)))


@functools.lru_cache(maxsize=16)  # runs of the same config in one process (a sweep, tests) trace once
def make_device_call(algo, env, algo_cfg, iterations: int, mesh=None, members: bool = False):
    """jit-compiled (state, demos) -> (state, metrics stacked [iterations, ...], CallReport).

    `state` is donated; `demos` is None for learners that step an env. Metric rows
    of iterations that did not run (after a diverging one) are zeros. On a `mesh`,
    the state comes back laid out as parallel.state_shardings says and the
    metrics and report replicated. With `members`, `state` is a population's
    Members and the metrics are [iterations, members, ...]: see make_population_call.
    """
    if members:
        return make_population_call(algo, env, algo_cfg, iterations, mesh)

    def step(state, demos):
        return algo.train_step(state, env, algo_cfg, *algos.data_args(demos))

    def call(start, demos):
        traced_step, metric_shapes = _traced(step, start, demos)
        rows = jax.tree.map(lambda s: jnp.zeros((iterations, *s.shape), s.dtype), metric_shapes)

        def unfinished(carry):
            done, _, finite, _ = carry
            return (done < iterations) & finite

        def iterate(carry):
            done, state, _, rows = carry
            state, metrics = traced_step(state, demos)
            rows = jax.tree.map(lambda stacked, row: stacked.at[done].set(row), rows, metrics)
            return done + 1, state, _all_finite(state.params) & _all_finite(metrics), rows

        done, state, finite, rows = jax.lax.while_loop(
            unfinished, iterate, (jnp.int32(0), start, jnp.bool_(True), rows))
        report = CallReport(done, finite, _leaves_finite(state.params))
        return _pinned((last_good(finite, state, start), rows, report), start, mesh)

    return jax.jit(call, donate_argnums=0)


def make_population_call(algo, env, algo_cfg, iterations: int, mesh=None):
    """jit-compiled (members, demos) -> (members, metrics [iterations, members, ...], CallReport of
    [members]): every member's train_step as one vmap, each with its own swept settings (traced) and
    its own divergence guard. A member stops at its first non-finite iteration (its `iterations`
    count that one, its `finite_params` are that iteration's) and keeps its last good state."""
    def step(runs, settings, demos):
        return algo.train_step(runs, env, member_config(algo_cfg, settings), *algos.data_args(demos))

    vmapped = jax.vmap(step, in_axes=(0, 0, None))

    def call(start: Members, demos):
        traced_step, metric_shapes = _traced(vmapped, start.runs, start.settings, demos)
        rows = jax.tree.map(lambda s: jnp.zeros((iterations, *s.shape), s.dtype), metric_shapes)
        counts = jnp.zeros(start.alive.shape, jnp.int32)
        params_ok = [jnp.ones(start.alive.shape, bool) for _ in jax.tree.leaves(start.runs.params)]

        def unfinished(carry):
            done, members, *_ = carry
            return (done < iterations) & jnp.any(members.alive)

        def iterate(carry):
            done, members, counts, params_ok, rows = carry
            was_alive = members.alive
            runs, metrics = traced_step(members.runs, members.settings, demos)
            rows = jax.tree.map(lambda stacked, row: stacked.at[done].set(row), rows, metrics)
            params_finite = _leaves_finite(runs.params, members=True)
            alive = was_alive & _all_finite(runs.params, True) & _all_finite(metrics, True)
            died = was_alive & ~alive
            params_ok = [jnp.where(died, now, before) for now, before in zip(params_finite, params_ok,
                                                                             strict=True)]
            members = members.replace(runs=last_good(alive, runs, members.runs), alive=alive)
            return done + 1, members, counts + was_alive, params_ok, rows

        _, members, counts, params_ok, rows = jax.lax.while_loop(
            unfinished, iterate, (jnp.int32(0), start, counts, params_ok, rows))
        report = CallReport(counts, members.alive, params_ok)
        return _pinned((members, rows, report), start, mesh)

    return jax.jit(call, donate_argnums=0)


def member_report(rows: dict, report: CallReport, index: int) -> tuple[dict, CallReport]:
    """Member `index`'s metric rows and report, from a population call's (host arrays)."""
    return ({key: values[:, index] for key, values in rows.items()},
            CallReport(report.iterations[index], report.finite[index],
                       [ok[index] for ok in report.finite_params]))


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
