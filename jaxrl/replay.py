"""A replay buffer as a pytree ring buffer on the device.

`ReplayBuffer.data` holds one [rows, num_envs, ...] array per field of the
stored transition: a row is one step of every env. `insert` writes a batch of
steps [T, num_envs, ...] at the insert row, wrapping around onto the oldest rows
once full; `sample` draws transitions uniformly from the filled slots only, and
`sample_chunks` runs of consecutive steps of one env (a sequence learner's
batch: each step is stored once, whatever the chunks it is drawn in).
Keeping each env's transitions on its own column lets a run split the buffer
over its devices with the envs that filled it (jaxrl.parallel): the env axis,
ENV_AXIS, is the one sharded. Being a pytree, the buffer lives in the learner's
TrainState: it is updated inside the compiled iteration (no host round trip)
and saved in every checkpoint, so a resumed run continues with the same data.

The capacity is a number of transitions fixed when the buffer is made, rounded
down to whole rows (a multiple of num_envs); `check_fits`
refuses one that would take more than half of the device's memory.
"""

from __future__ import annotations

import math
import os

import jax
import jax.numpy as jnp
from flax import struct

# Of the device's memory a buffer may take; the rest is for the learner, the runtime and its programs. The
# loop holds one TrainState (donated to each call, checkpointed synchronously: benchmarks/train_memory.py).
MEMORY_SHARE = 0.5


class ReplayCapacityError(ValueError):
    """A capacity that cannot work on this device; the message says what to set."""


@struct.dataclass
class ReplayBuffer:
    data: object  # pytree of [rows, num_envs, ...] arrays
    position: jax.Array  # int32: the row the next step goes to
    size: jax.Array  # int32: filled slots (transitions), at most capacity

    ENV_AXIS = 1  # of every leaf of `data`: the envs, which a run's devices split between them

    @property
    def rows(self) -> int:
        return jax.tree.leaves(self.data)[0].shape[0]

    @property
    def num_envs(self) -> int:
        return jax.tree.leaves(self.data)[0].shape[self.ENV_AXIS]

    @property
    def capacity(self) -> int:
        return self.rows * self.num_envs


def bytes_per_transition(example) -> int:
    """Bytes one transition shaped like `example` (no batch axis) takes in the buffer."""
    return sum(math.prod(x.shape) * jnp.dtype(x.dtype).itemsize for x in jax.tree.leaves(example))


def device_memory_bytes(device: jax.Device | None = None) -> int:
    """What the device can hold: an accelerator's memory limit, or the host's RAM for the CPU."""
    device = device or jax.devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"])
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_fits(example, capacity: int, setting: str = "replay_capacity") -> None:
    """ReplayCapacityError when `capacity` transitions like `example` exceed MEMORY_SHARE of the device."""
    if capacity < 1:
        raise ReplayCapacityError(f"{setting} must be >= 1 transition, got {capacity}")
    per_transition, memory = bytes_per_transition(example), device_memory_bytes()
    fits = int(MEMORY_SHARE * memory // per_transition)
    if capacity > fits:
        raise ReplayCapacityError(
            f"a replay buffer of {capacity:,} transitions ({per_transition:,} bytes each) needs "
            f"{capacity * per_transition / 2**30:.1f} GiB, more than {MEMORY_SHARE:.0%} of this device's "
            f"{memory / 2**30:.1f} GiB; set {setting}={fits:,} or less")


def init(example, capacity: int, num_envs: int = 1) -> ReplayBuffer:
    """An empty buffer of `capacity` transitions (rounded down to whole rows of `num_envs`) shaped like
    `example` (no batch axis)."""
    rows = capacity // num_envs
    if rows < 1:
        raise ValueError(f"a replay capacity of {capacity} cannot hold one step of {num_envs} envs")
    data = jax.tree.map(lambda x: jnp.zeros((rows, num_envs) + jnp.shape(x), jnp.asarray(x).dtype), example)
    return ReplayBuffer(data=data, position=jnp.zeros((), jnp.int32), size=jnp.zeros((), jnp.int32))


def insert(buffer: ReplayBuffer, steps) -> ReplayBuffer:
    """`buffer` with the T steps of `steps` (leaves [T, num_envs, ...], T <= rows) written in order,
    wrapping around past the last row."""
    length = jax.tree.leaves(steps)[0].shape[0]
    if length > buffer.rows:
        raise ValueError(f"cannot insert {length} steps into a buffer of {buffer.rows} rows")
    rows = (buffer.position + jnp.arange(length, dtype=jnp.int32)) % buffer.rows
    data = jax.tree.map(lambda stored, x: stored.at[rows].set(x, mode="promise_in_bounds"),
                        buffer.data, steps)
    return ReplayBuffer(data=data, position=(buffer.position + length) % buffer.rows,
                        size=jnp.minimum(buffer.size + length * buffer.num_envs, buffer.capacity))


def sample(buffer: ReplayBuffer, key: jax.Array, batch_size: int):
    """`batch_size` transitions drawn uniformly, with replacement, from the filled slots.

    The buffer must hold at least one transition. Rows fill from the first, so
    the filled slots are the first `size` in row-major order.
    """
    slots = jax.random.randint(key, (batch_size,), 0, jnp.maximum(buffer.size, 1))
    rows, envs = slots // buffer.num_envs, slots % buffer.num_envs
    return jax.tree.map(lambda stored: stored[rows, envs], buffer.data)


def sample_chunks(buffer: ReplayBuffer, key: jax.Array, batch_size: int, length: int):
    """`batch_size` runs of `length` consecutive steps of one env each (leaves [batch_size, length, ...]),
    their env and first step drawn uniformly, with replacement, from the runs the buffer holds whole.

    A run never crosses the ring's seam, where the newest row meets the oldest. It may cross an episode's
    end: the steps' own flags (such as is_first) say where one starts. The buffer must hold at least
    `length` rows.
    """
    if length > buffer.rows:
        raise ValueError(f"chunks of {length} steps cannot come from a buffer of {buffer.rows} rows")
    filled_rows = buffer.size // buffer.num_envs
    oldest = jnp.where(filled_rows == buffer.rows, buffer.position, 0)
    start_key, env_key = jax.random.split(key)
    offsets = jax.random.randint(start_key, (batch_size,), 0, jnp.maximum(filled_rows - length + 1, 1))
    rows = (oldest + offsets[:, None] + jnp.arange(length, dtype=jnp.int32)) % buffer.rows
    envs = jax.random.randint(env_key, (batch_size, 1), 0, buffer.num_envs)
    return jax.tree.map(lambda stored: stored[rows, envs], buffer.data)
