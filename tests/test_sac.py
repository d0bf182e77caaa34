"""SAC: what it stores, that a resumed run continues exactly, and that it learns."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

import envs_mjx
from envs_mjx.core import Env, State
from jaxrl import cli, config
from jaxrl.algos import sac
from jaxrl.checkpoint import Checkpointer
from jaxrl.logger import read_metrics
from jaxrl.train import train


@struct.dataclass
class NoPhysics:
    """Stands in for mjx.Data, including the merge the auto-reset wrapper calls."""

    placeholder: jax.Array

    def where(self, condition, other):
        return jax.tree.map(lambda mine, theirs: jnp.where(condition, theirs, mine), self, other)


class CountingEnv(Env):
    """obs = [steps taken, horizon]; the episode terminates when the count reaches its horizon,
    drawn per episode from {3, 100}: with a time limit of 6, some episodes end by termination
    and the others by truncation."""

    action_size = 1
    dt = 0.01

    def reset(self, key):
        horizon = jnp.where(jax.random.bernoulli(key), 3.0, 100.0)
        return State(data=NoPhysics(jnp.zeros(())), obs=jnp.stack([0.0, horizon]), reward=jnp.zeros(()),
                     done=jnp.zeros(()))

    def step(self, state, action):
        count = state.obs[0] + 1.0
        return state.replace(obs=jnp.stack([count, state.obs[1]]), reward=count,
                             done=(count >= state.obs[1]).astype(jnp.float32))


def test_transitions_store_termination_apart_from_truncation_with_the_true_successor():
    env = envs_mjx.wrap_for_training(CountingEnv(), episode_length=6)
    # Learning starts only once the buffer is full: every action stored is uniformly random.
    cfg = sac.Config(num_envs=16, batch_size=8, min_replay_size=320, replay_capacity=320,
                     policy_hidden_layer_sizes=(8,), q_hidden_layer_sizes=(8,))
    state = sac.init(jax.random.PRNGKey(0), env, cfg)
    # Donated as benchmarks do: every leaf of a fresh state must own its buffer.
    step = jax.jit(lambda s: sac.train_step(s, env, cfg), donate_argnums=0)
    for _ in range(20):
        state, metrics = step(state)
    data = jax.tree.map(np.asarray, state.replay.data)
    assert int(state.replay.size) == 320 and metrics["replay_size"] == 320
    count, horizon = data["obs"][:, 0], data["obs"][:, 1]
    next_count = data["next_obs"][:, 0]
    np.testing.assert_array_equal(next_count, count + 1)  # the successor, never the next episode's start
    np.testing.assert_array_equal(data["next_obs"][:, 1], horizon)
    np.testing.assert_array_equal(data["reward"], count + 1)
    np.testing.assert_array_equal(data["terminated"], (next_count == 3) & (horizon == 3))
    np.testing.assert_array_equal(data["truncated"], (next_count == 6) & (horizon == 100))
    assert data["terminated"].sum() > 10 and data["truncated"].sum() > 10
    assert np.all((data["action"] >= -1) & (data["action"] <= 1))


@pytest.fixture(scope="session")
def tiny_sac():
    return config.load("cartpole-balance", "sac", overrides=[
        "env.episode_length=50", "algo.num_envs=8", "algo.batch_size=32", "algo.min_replay_size=64",
        "algo.replay_capacity=1000", "algo.grad_updates_per_step=2", "algo.policy_hidden_layer_sizes=[16,16]",
        "algo.q_hidden_layer_sizes=[16,16]", "train.iterations_per_call=8", "train.num_timesteps=256",
        "train.eval_every=128", "train.checkpoint_every=128", "train.num_eval_envs=4",
        "train.tensorboard=false"], preset="cpu")


def reproducible(records):
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in records]


def test_interrupted_then_resumed_sac_run_matches_unbroken_run(tiny_sac, tmp_path):
    unbroken = train(tiny_sac, tmp_path / "unbroken")
    assert unbroken.status == "finished" and unbroken.steps == 256
    want = reproducible(read_metrics(tmp_path / "unbroken" / "metrics.jsonl"))
    assert want[-1]["loss/critic"] > 0  # learning started after the random warm-up
    assert want[-1]["replay_size"] == np.mean(np.arange(200, 257, 8))  # its mean over the last call

    def stop_after_two_calls(record):
        if record["call"] == 2:
            raise KeyboardInterrupt

    assert train(tiny_sac, tmp_path / "resumed", on_record=stop_after_two_calls).status == "interrupted"
    assert Checkpointer(tmp_path / "resumed" / "checkpoints").latest_step() == 2
    assert train(tiny_sac, tmp_path / "resumed", resume=True).status == "finished"
    assert reproducible(read_metrics(tmp_path / "resumed" / "metrics.jsonl")) == want


def test_a_replay_buffer_too_large_for_the_device_is_refused_before_training(tmp_path, capsys):
    words = ["train", "cartpole-balance", "sac", "algo.replay_capacity=1_000_000_000_000",
             "algo.num_envs=4", "train.num_timesteps=4", f"run_dir={tmp_path}"]
    assert cli.main(words) == cli.EXIT_USAGE
    out = " ".join(capsys.readouterr().out.split())
    assert "a replay buffer of 1,000,000,000,000 transitions" in out
    assert "set algo.replay_capacity=" in out and "or less" in out
    assert not (tmp_path / "checkpoints").exists()


def test_settings_that_cannot_run_are_refused_by_name():
    with pytest.raises(config.ConfigError, match="replay_capacity = 4 cannot hold one iteration's"):
        config.load("cartpole-balance", "sac", overrides=["algo.num_envs=8", "algo.replay_capacity=4"])
    with pytest.raises(config.ConfigError, match="min_replay_size = 2,000 exceeds replay_capacity"):
        config.load("cartpole-balance", "sac", overrides=["algo.replay_capacity=1000",
                                                          "algo.min_replay_size=2000"])
    with pytest.raises(config.ConfigError, match="did you mean 'algo.replay_capacity'"):
        config.load("cartpole-balance", "sac", overrides=["replay_capacty=10"])


@pytest.mark.slow
def test_sac_learns_pendulum_swingup_on_the_cpu(tmp_path):
    """The recipe's CPU preset, cut to 50k env steps (about a minute): the pendulum swings up.

    Untrained, the deterministic policy scores about 20 of 1,000; a policy that only
    learned to push one way (a common dead end here) stays below 150.
    """
    cfg = config.load("pendulum-swingup", "sac", preset="cpu",
                      overrides=["train.num_timesteps=50_000", "train.tensorboard=false"])
    result = train(cfg, tmp_path)
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert records[0]["eval/episode_return"] < 100
    assert result.final_eval["eval/episode_return"] >= 400, records
