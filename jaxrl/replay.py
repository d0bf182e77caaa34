"""A replay buffer as a pytree ring buffer on the device.

`ReplayBuffer.data` holds one [capacity, ...] array per field of the stored
transition. `insert` writes a batch at the insert position, wrapping around
onto the oldest transitions once full; `sample` draws uniformly from the filled
slots only. Being a pytree, the buffer lives in the learner's TrainState: it is
updated inside the compiled iteration (no host round trip) and saved in every
checkpoint, so a resumed run continues with the same data.

The capacity is a number of transitions fixed when the buffer is made; `check_fits`
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
    data: object  # pytree of [capacity, ...] arrays
    position: jax.Array  # int32: the slot the next transition goes to
    size: jax.Array  # int32: filled slots, at most capacity

    @property
    def capacity(self) -> int:
        return jax.tree.leaves(self.data)[0].shape[0]


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


def init(example, capacity: int) -> ReplayBuffer:
    """An empty buffer of `capacity` transitions shaped like `example` (no batch axis)."""
    data = jax.tree.map(lambda x: jnp.zeros((capacity,) + jnp.shape(x), jnp.asarray(x).dtype), example)
    return ReplayBuffer(data=data, position=jnp.zeros((), jnp.int32), size=jnp.zeros((), jnp.int32))


def insert(buffer: ReplayBuffer, batch) -> ReplayBuffer:
    """`buffer` with the n transitions of `batch` (leading axis n <= capacity) written in order,
    wrapping around past the last slot."""
    n = jax.tree.leaves(batch)[0].shape[0]
    capacity = buffer.capacity
    if n > capacity:
        raise ValueError(f"cannot insert {n} transitions into a buffer of capacity {capacity}")
    slots = (buffer.position + jnp.arange(n, dtype=jnp.int32)) % capacity
    data = jax.tree.map(lambda stored, x: stored.at[slots].set(x, mode="promise_in_bounds"),
                        buffer.data, batch)
    return ReplayBuffer(data=data, position=(buffer.position + n) % capacity,
                        size=jnp.minimum(buffer.size + n, capacity))


def sample(buffer: ReplayBuffer, key: jax.Array, batch_size: int):
    """`batch_size` transitions drawn uniformly, with replacement, from the filled slots.

    The buffer must hold at least one transition.
    """
    slots = jax.random.randint(key, (batch_size,), 0, jnp.maximum(buffer.size, 1))
    return jax.tree.map(lambda stored: stored[slots], buffer.data)
