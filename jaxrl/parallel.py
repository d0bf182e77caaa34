"""Devices and hosts: one mesh over every device a run has, and where each part of its state lives.

A run's devices form a `jax.sharding.Mesh` with two axes, "population" and
"envs" (of `train.population_devices` and the remaining devices). A
population's members (jaxrl.population) are split over the first, so 8 GPUs
can train 8 seeds, one each, or one seed 8 times wider. The env batch is split
over the second: every leaf of a TrainState's `env_state` (and of the
`policy_memory` a policy with memory keeps per env) along its leading
[num_envs] axis, and a replay buffer along the env axis of its slots
(jaxrl.replay), so each device keeps the transitions its envs collected.
Everything else (parameters, optimizer state, normalizer, keys, counters) is
replicated. The train loop compiles its programs with these shardings under
`jit`, and XLA's partitioner adds the communication a step needs (the
gradient means over a batch split across devices, the minibatch shuffles).
A learner is written for one device and never sees the mesh.

The math does not depend on the device count: random draws are made for the
global batch (jax_threefry_partitionable), so a seed gives the same numbers
on 1 device and on N, up to the order in which floats are summed.

Several hosts: `initialize_distributed()` joins the processes with
`jax.distributed` first; the mesh then spans every host's devices, each process
runs the same programs, and only process 0 writes logs, videos and the config
(Orbax coordinates checkpoint writes across processes itself).
"""

from __future__ import annotations

import math
import os

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxrl.config import ConfigError
from jaxrl.population import Members
from jaxrl.replay import ReplayBuffer

POPULATION = "population"  # the mesh axis a population's members are split over
ENVS = "envs"  # the mesh axis the env batch is split over
# TrainState fields whose leaves have a leading [num_envs] axis: the envs' states, and the memory a
# learner's policy keeps of each training env (Dreamer's latent states, SAC's correlated noise).
PER_ENV_FIELDS = ("env_state", "policy_memory")
# What initialize_distributed reads when no cluster manager (SLURM, Open MPI, a TPU pod) describes the job.
COORDINATOR_VARS = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


def initialize_distributed() -> None:
    """Join this process to the others of a multi-host job (jax.distributed), before anything else in
    JAX runs. SLURM, Open MPI and TPU pods describe the job themselves; elsewhere the variables of
    COORDINATOR_VARS do (address host:port of process 0, the number of processes, this one's index)."""
    address, count, index = (os.environ.get(name) for name in COORDINATOR_VARS)
    try:
        jax.distributed.initialize(coordinator_address=address,
                                   num_processes=None if count is None else int(count),
                                   process_id=None if index is None else int(index))
    except (ValueError, RuntimeError) as error:
        raise ConfigError(
            f"--distributed could not join the other processes ({' '.join(str(error).split())[:300]}). "
            f"Run under SLURM (srun), Open MPI (mpirun) or on a TPU pod, or set "
            f"{', '.join(COORDINATOR_VARS)} in every process") from None


def make_mesh(devices=None, population_devices: int = 1, members: int = 1) -> Mesh:
    """A mesh over `devices` (default: every device of every process): `population_devices` along its
    "population" axis, splitting a population of `members`, the rest along "envs"."""
    devices = jax.devices() if devices is None else list(devices)
    setting = f"train.population_devices={population_devices}"
    if population_devices > 1 and members == 1:
        raise ConfigError(f"{setting} splits a population, and this run is one: set train.num_seeds or "
                          f"sweep.*, or leave it at 1")
    if population_devices < 1 or len(devices) % population_devices:
        raise ConfigError(f"{setting} does not divide this run's {len(devices)} devices: set it to one of "
                          f"{', '.join(map(str, _divisors(len(devices))))}")
    if members % population_devices:
        options = [n for n in _divisors(members) if len(devices) % n == 0]
        raise ConfigError(f"{setting} does not divide the population's {members} members (sweep points x "
                          f"train.num_seeds): set it to one of {', '.join(map(str, options))}")
    grid = np.asarray(devices).reshape(population_devices, len(devices) // population_devices)
    return Mesh(grid, (POPULATION, ENVS))


def _divisors(count: int) -> list[int]:
    return [n for n in range(1, count + 1) if count % n == 0]


def check_divides(num_envs: int, mesh: Mesh, setting: str = "algo.num_envs") -> None:
    """ConfigError when `num_envs` envs cannot be split evenly over the devices of the mesh's envs axis
    (all of them, unless a population is split over some)."""
    devices = mesh.shape[ENVS]
    if num_envs % devices:
        below = num_envs - num_envs % devices
        options = ", ".join(f"{n:,}" for n in (below, below + devices) if n > 0)
        raise ConfigError(
            f"{setting}={num_envs:,} does not split evenly over this run's {devices} devices: set it to a "
            f"multiple of {devices} (e.g. {options}), or run on a number of devices that divides "
            f"{num_envs:,}")


def state_shardings(state, mesh: Mesh):
    """A NamedSharding per leaf of `state` (a TrainState, or its shapes): the env batch split over the
    mesh's "envs" axis, the rest replicated; a population's Members split over "population" too."""
    is_spec = lambda node: isinstance(node, PartitionSpec)  # noqa: E731
    specs = _run_specs(state.runs if isinstance(state, Members) else state)
    if isinstance(state, Members):
        # Empty leaves stay whole, as in _run_specs.
        def member_axis(spec, leaf):
            return PartitionSpec(POPULATION, *spec) if math.prod(leaf.shape) else spec

        runs = jax.tree.map(member_axis, specs, state.runs, is_leaf=is_spec)
        specs = Members(runs, jax.tree.map(lambda _: PartitionSpec(POPULATION), state.settings),
                        PartitionSpec(POPULATION))
    return jax.tree.map(lambda spec: NamedSharding(mesh, spec), specs, is_leaf=is_spec)


def _run_specs(state):
    """A PartitionSpec per leaf of one run's state."""
    def spec(node):
        if isinstance(node, ReplayBuffer):
            env_axis = PartitionSpec(*([None] * ReplayBuffer.ENV_AXIS), ENVS)
            return node.replace(data=jax.tree.map(lambda _: env_axis, node.data),
                                position=PartitionSpec(), size=PartitionSpec())
        return PartitionSpec()

    specs = jax.tree.map(spec, state, is_leaf=lambda node: isinstance(node, ReplayBuffer))
    # Empty leaves (mjx.Data has some) replicated: XLA makes them constants and drops their sharding.
    per_env = {field: jax.tree.map(lambda x: PartitionSpec(ENVS) if math.prod(x.shape) else PartitionSpec(),
                                   getattr(state, field))
               for field in PER_ENV_FIELDS if hasattr(state, field)}
    return specs.replace(**per_env) if per_env else specs


def replicated(tree, mesh: Mesh):
    """The sharding that puts every leaf of `tree` whole on each device of the mesh."""
    return jax.tree.map(lambda _: NamedSharding(mesh, PartitionSpec()), tree)


def stand_ins(tree, shardings=None):
    """ShapeDtypeStructs of `tree`'s leaves (arrays or stand-ins) placed as `shardings` says (None: on
    no device in particular): what a program that takes arrays so placed is lowered from. Only shapes,
    dtypes, weak types and the placement asked for count, not the devices arrays happen to be
    committed to: a fresh state and one restored from a checkpoint then lower to the same program,
    and a resumed run finds it in the compilation caches instead of compiling it again."""
    def of(x, sharding=None):
        return jax.ShapeDtypeStruct(np.shape(x), x.dtype, weak_type=getattr(x, "weak_type", False),
                                    sharding=sharding)

    return jax.tree.map(of, tree) if shardings is None else jax.tree.map(of, tree, shardings)


def replicate(tree, mesh: Mesh):
    """`tree`'s arrays, the same in every process, as arrays whole on each device of the mesh."""
    def put(x):
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, NamedSharding(mesh, PartitionSpec()),
                                            lambda index: host[index])

    return jax.tree.map(put, tree)


def to_host(tree):
    """Host numpy copies of arrays: a replicated one from this process's own copy, one split over the
    devices (a population's) gathered from every process."""
    def copy(x):
        if not isinstance(x, jax.Array):
            return x
        if x.is_fully_replicated:
            return np.asarray(x.addressable_data(0))
        return np.asarray(x) if x.is_fully_addressable else multihost_utils.process_allgather(x, tiled=True)

    return jax.tree.map(copy, tree)


def local_copy(tree):
    """Replicated arrays as arrays of this process's first device alone: for work only process 0 does
    (a video), which must not start a program every process would have to join."""
    device = jax.local_devices()[0]
    return jax.tree.map(lambda x: jax.device_put(x.addressable_data(0), device), tree)


def is_main_process() -> bool:
    return jax.process_index() == 0


def any_process(flag: bool) -> bool:
    """Whether `flag` is set in any process (every process calls this at the same point): a stop one
    process was asked for is taken by all at the same call, or they would wait on each other."""
    if jax.process_count() == 1:
        return flag
    return bool(np.any(multihost_utils.process_allgather(np.asarray(flag))))


def main_process_value(value: int) -> int:
    """Process 0's `value` in every process (every process calls this at the same point)."""
    if jax.process_count() == 1:
        return value
    return int(multihost_utils.broadcast_one_to_all(np.int64(value)))


def sync(name: str) -> None:
    """Wait until every process gets here (a no-op in a single-process run)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)
