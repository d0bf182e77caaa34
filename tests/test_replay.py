"""The on-device replay ring buffer: rows of every env's step, wrap-around, sampling, size checks,
checkpoints."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl import replay
from jaxrl.checkpoint import Checkpointer

EXAMPLE = {"obs": {"state": jnp.zeros(3)}, "reward": jnp.zeros(())}


def numbered(start: int, steps: int, num_envs: int = 1) -> dict:
    """`steps` steps of `num_envs` envs, [steps, num_envs, ...]: every entry of the transition env e
    made at step t is its number, start + t * num_envs + e."""
    ids = start + jnp.arange(steps * num_envs, dtype=jnp.float32).reshape(steps, num_envs)
    return {"obs": {"state": jnp.repeat(ids[..., None], 3, axis=-1)}, "reward": ids}


def test_inserts_fill_in_order_then_wrap_around_onto_the_oldest():
    buffer = replay.init(EXAMPLE, capacity=5)
    assert buffer.capacity == 5 and int(buffer.size) == 0
    buffer = replay.insert(buffer, numbered(0, 3))
    np.testing.assert_array_equal(buffer.data["reward"][:, 0], [0, 1, 2, 0, 0])
    assert (int(buffer.position), int(buffer.size)) == (3, 3)
    buffer = replay.insert(buffer, numbered(3, 4))  # 3, 4 fill the end; 5, 6 overwrite 0, 1
    np.testing.assert_array_equal(buffer.data["reward"][:, 0], [5, 6, 2, 3, 4])
    np.testing.assert_array_equal(buffer.data["obs"]["state"][:, 0, 2], [5, 6, 2, 3, 4])
    assert (int(buffer.position), int(buffer.size)) == (2, 5)


def test_each_env_keeps_a_column_and_the_capacity_is_whole_rows():
    buffer = replay.init(EXAMPLE, capacity=7, num_envs=3)  # two rows of three envs
    assert (buffer.rows, buffer.num_envs, buffer.capacity) == (2, 3, 6)
    buffer = replay.insert(replay.insert(buffer, numbered(0, 1, 3)), numbered(3, 2, 3))
    np.testing.assert_array_equal(buffer.data["reward"], [[6, 7, 8], [3, 4, 5]])
    assert (int(buffer.position), int(buffer.size)) == (1, 6)
    with pytest.raises(ValueError, match="capacity of 2 cannot hold one step of 3 envs"):
        replay.init(EXAMPLE, capacity=2, num_envs=3)


def test_a_batch_as_large_as_the_buffer_replaces_it_and_a_larger_one_is_refused():
    buffer = replay.insert(replay.init(EXAMPLE, capacity=4), numbered(0, 2))
    buffer = replay.insert(buffer, numbered(10, 4))
    np.testing.assert_array_equal(buffer.data["reward"][:, 0], [12, 13, 10, 11])
    with pytest.raises(ValueError, match="cannot insert 5 steps into a buffer of 4 rows"):
        replay.insert(buffer, numbered(0, 5))


def test_sampling_draws_only_filled_slots_and_all_of_them():
    # Rows of 3 envs, the first 3 filled with transitions 1 .. 9; the slots after them hold zeros.
    buffer = replay.insert(replay.init(EXAMPLE, capacity=99, num_envs=3), numbered(1, 3, 3))
    batch = jax.jit(replay.sample, static_argnums=2)(buffer, jax.random.PRNGKey(0), 2000)
    drawn = np.asarray(batch["reward"])
    assert set(drawn.tolist()) == set(range(1, 10))
    np.testing.assert_array_equal(batch["obs"]["state"][:, 0], drawn)  # fields stay together
    counts = np.bincount(drawn.astype(int), minlength=10)[1:]
    assert counts.min() > 2000 / 9 * 0.7  # uniform over the filled slots


def test_insert_and_sample_compile_into_a_scan():
    """The buffer is a pytree carried through jit and scan, as in a training iteration."""
    def body(buffer, start):
        buffer = replay.insert(buffer, numbered(0, 2) | {"reward": start + jnp.arange(2.0)[:, None]})
        return buffer, replay.sample(buffer, jax.random.PRNGKey(0), 1)["reward"]

    buffer, _ = jax.jit(lambda b: jax.lax.scan(body, b, jnp.arange(0.0, 10.0, 2.0)))(
        replay.init(EXAMPLE, capacity=6))
    np.testing.assert_array_equal(buffer.data["reward"][:, 0], [6, 7, 8, 9, 4, 5])


def test_save_and_restore_round_trip_keeps_data_position_and_size(tmp_path):
    buffer = replay.insert(replay.insert(replay.init(EXAMPLE, capacity=5), numbered(0, 4)), numbered(4, 3))
    checkpointer = Checkpointer(tmp_path)
    checkpointer.save(1, buffer, {"env_steps": 7})
    checkpointer.close()
    restored, meta = Checkpointer(tmp_path).restore(jax.eval_shape(lambda: replay.init(EXAMPLE, 5)))
    assert meta["env_steps"] == 7
    for want, got in zip(jax.tree.leaves(buffer), jax.tree.leaves(restored), strict=True):
        np.testing.assert_array_equal(got, want)
    # The restored buffer goes on where the saved one stopped.
    np.testing.assert_array_equal(replay.insert(restored, numbered(7, 1)).data["reward"][:, 0],
                                  [5, 6, 7, 3, 4])


def test_a_capacity_beyond_the_device_memory_names_one_that_fits():
    per_transition = replay.bytes_per_transition(EXAMPLE)
    assert per_transition == 4 * 4
    too_many = int(replay.device_memory_bytes() // per_transition)
    with pytest.raises(replay.ReplayCapacityError,
                       match=r"needs .* GiB, more than 50% of this device's .* "
                             r"set algo.replay_capacity=[\d,]+ or less"):
        replay.check_fits(EXAMPLE, too_many, "algo.replay_capacity")
    replay.check_fits(EXAMPLE, 1_000_000)
    with pytest.raises(replay.ReplayCapacityError, match="must be >= 1"):
        replay.check_fits(EXAMPLE, 0)


def chunk_steps(buffer, length: int, num_envs: int, draws: int = 500):
    """(step, env) [draws, length] of the chunks sample_chunks draws, read back from numbered entries."""
    ids = np.asarray(replay.sample_chunks(buffer, jax.random.PRNGKey(0), draws, length)["reward"]).astype(int)
    return ids // num_envs, ids % num_envs


@pytest.mark.parametrize("inserted, kept", [(6, range(0, 6)), (14, range(4, 14))])
def test_chunks_are_consecutive_steps_of_one_env_and_never_cross_the_seam(inserted, kept):
    buffer = replay.init(EXAMPLE, capacity=30, num_envs=3)  # 10 rows; 14 steps wrap round onto the oldest
    buffer = replay.insert(replay.insert(buffer, numbered(0, 4, 3)), numbered(12, inserted - 4, 3))
    steps, envs = chunk_steps(buffer, length=4, num_envs=3)
    assert np.all(np.diff(steps, axis=1) == 1) and np.all(envs == envs[:, :1])
    assert steps.min() == kept[0] and steps.max() == kept[-1]
    assert set(steps[:, 0]) == set(kept[:len(kept) - 3]) and set(envs[:, 0]) == {0, 1, 2}  # every whole run


def test_chunks_longer_than_the_buffer_are_refused():
    buffer = replay.init(EXAMPLE, capacity=10, num_envs=2)
    with pytest.raises(ValueError, match="chunks of 6 steps cannot come from a buffer of 5 rows"):
        replay.sample_chunks(buffer, jax.random.PRNGKey(0), 4, 6)
