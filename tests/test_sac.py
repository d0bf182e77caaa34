"""SAC: the maths of a gradient step, what it stores, that a resumed run continues exactly, and
that it learns."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import jaxrl_process
from jax.flatten_util import ravel_pytree
from toy_envs import CountingEnv, NoPhysics, PointMass

import envs_mjx
from envs_mjx.core import Env, State
from jaxrl import cli, config, replay
from jaxrl.algos import sac
from jaxrl.checkpoint import Checkpointer
from jaxrl.logger import read_metrics
from jaxrl.train import train


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
    data = jax.tree.map(lambda x: np.asarray(x).reshape((-1,) + x.shape[2:]), state.replay.data)
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


# The maths of one gradient step, against numbers worked out by hand or in NumPy.


def test_the_soft_bellman_target_bootstraps_unless_terminated_and_adds_the_entropy_bonus():
    cfg = sac.Config(discounting=0.9, reward_scaling=2.0)
    reward = np.array([1.0, -2.0, 0.5, 3.0], np.float32)
    terminated = np.array([0.0, 1.0, 0.0, 1.0], np.float32)  # row 2 stands for a time-limit cut
    next_q = np.array([[1.0, 5.0, -2.0, 0.5], [3.0, 4.0, -1.0, 7.0]], np.float32)
    next_log_prob = np.array([-1.0, 0.5, 2.0, -3.0], np.float32)
    target = sac.soft_bellman_target(reward, terminated, next_q, next_log_prob, 0.2, cfg)
    # min of the twins 1, -, -2, -; minus 0.2 log pi: 1.2, -, -2.4, -; terminated rows: 2 r alone.
    np.testing.assert_allclose(target, [2.0 + 0.9 * 1.2, -4.0, 1.0 + 0.9 * -2.4, 6.0], rtol=1e-6)


def test_the_critic_loss_is_half_each_critics_mean_squared_error_summed():
    q = np.array([[1.0, 2.0, 3.0], [0.0, 2.0, 5.0]], np.float32)
    # errors to 2: -1, 0, 1 (mean square 2/3) and -2, 0, 3 (13/3)
    assert float(sac.critic_loss(q, np.full(3, 2.0, np.float32))) == pytest.approx(2.5, rel=1e-6)


def test_the_actor_loss_is_alpha_log_pi_minus_the_smaller_critic():
    log_prob = np.array([-1.0, 0.5], np.float32)
    q = np.array([[2.0, -1.0], [1.0, 3.0]], np.float32)
    loss, (d_log_prob, d_q) = jax.value_and_grad(sac.actor_loss, argnums=(1, 2))(0.5, log_prob, q)
    assert float(loss) == pytest.approx(np.mean([-0.5 - 1.0, 0.25 + 1.0]), rel=1e-6)
    np.testing.assert_allclose(d_log_prob, [0.25, 0.25])
    np.testing.assert_allclose(d_q, [[0.0, -0.5], [-0.5, 0.0]])  # only the smaller critic pulls


def test_the_temperature_gradient_raises_log_alpha_below_the_target_entropy_and_lowers_it_above():
    log_prob = np.array([0.5, 1.5], np.float32)  # entropy -1
    grad = jax.grad(sac.temperature_loss)
    assert float(grad(0.0, log_prob, 0.0)) == pytest.approx(-1.0)  # entropy below: descent raises it
    assert float(grad(0.0, log_prob, -3.0)) == pytest.approx(2.0)  # above: descent lowers it
    assert float(jax.grad(sac.temperature_loss, argnums=1)(0.3, log_prob, 0.0).sum()) == 0.0


# obs [count, horizon]: transitions of CountingEnv, one of them terminated and one truncated.
BATCH = {"obs": np.array([[0, 3], [2, 3], [5, 100], [1, 100]], np.float32),
         "action": np.array([[0.5], [-0.2], [0.9], [0.0]], np.float32),
         "reward": np.array([1, 3, 6, 2], np.float32),
         "terminated": np.array([0, 1, 0, 0], np.float32),
         "truncated": np.array([0, 0, 1, 0], np.float32),
         "next_obs": np.array([[1, 3], [3, 3], [6, 100], [2, 100]], np.float32)}


def tiny_learner(**changes):
    """A SAC state with one-layer networks of 8 units, its config and its jitted _gradient_step."""
    cfg = sac.Config(num_envs=4, batch_size=4, min_replay_size=4, replay_capacity=16,
                     policy_hidden_layer_sizes=(8,), q_hidden_layer_sizes=(8,), **changes)
    state = sac.init(jax.random.PRNGKey(0), envs_mjx.wrap_for_training(CountingEnv(), episode_length=6), cfg)
    step = jax.jit(sac._gradient_step, static_argnames="cfg")
    return state, cfg, lambda params, cfg=cfg: step(params, state.opt_state, BATCH, jax.random.PRNGKey(1),
                                                   state, cfg=cfg)


def constant_critics(q_params, values):
    """Twin critics that output values[i] whatever their input."""
    last = q_params["params"]["dense_1"]
    layers = dict(q_params["params"], dense_1={"kernel": jnp.zeros_like(last["kernel"]),
                                               "bias": jnp.asarray(values, jnp.float32).reshape(2, 1)})
    return {"params": layers}


def test_a_gradient_step_regresses_the_critics_on_the_target_critics_cut_only_at_termination():
    state, cfg, step = tiny_learner(discounting=0.9, reward_scaling=2.0)
    # Target critics of 3 and 1.5 and no temperature (exp(-200) is 0 in float32): the target is
    # 2 r + 0.9 (1 - terminated) 1.5, whatever action the policy samples at the successor.
    params = state.params.replace(target_q=constant_critics(state.params.q, [3.0, 1.5]),
                                  log_alpha=jnp.asarray(-200.0))
    _, _, metrics = step(params)
    q = np.asarray(sac.q_values(state.params.q, state.q_spec, state.obs_stats, BATCH["obs"], BATCH["action"]))
    target = 2.0 * BATCH["reward"] + 0.9 * (1.0 - BATCH["terminated"]) * 1.5
    assert float(metrics["loss/critic"]) == pytest.approx(0.5 * np.sum(np.mean((q - target) ** 2, -1)),
                                                          rel=1e-5)
    assert float(metrics["q_mean"]) == pytest.approx(q.mean(), rel=1e-5, abs=1e-6)


def test_a_gradient_steps_actor_loss_is_alpha_log_pi_minus_the_smaller_critic():
    # Constant critics that a zero learning rate keeps constant: min Q = 1.5 at any action.
    state, cfg, step = tiny_learner(init_alpha=0.5, learning_rate=0.0)
    _, _, metrics = step(state.params.replace(q=constant_critics(state.params.q, [3.0, 1.5])))
    # "entropy" is -mean log pi of the very actions the actor loss sampled.
    assert float(metrics["loss/actor"]) == pytest.approx(-0.5 * float(metrics["entropy"]) - 1.5, rel=1e-6)


def test_the_target_critics_move_tau_of_the_way_to_the_updated_critics():
    state, cfg, step = tiny_learner(tau=0.3, learning_rate=0.1)
    flat = lambda tree: ravel_pytree(tree)[0]  # noqa: E731
    old_target = jax.tree.map(lambda x: 0.5 * x + 1.0, state.params.q)  # apart from the critics
    new, _, _ = step(state.params.replace(target_q=old_target))
    np.testing.assert_allclose(flat(new.target_q), 0.3 * flat(new.q) + 0.7 * flat(old_target),
                               rtol=1e-6, atol=1e-7)
    # The step moved the critics, so following the old ones would differ.
    assert np.max(np.abs(flat(new.q) - flat(state.params.q))) > 0.05


def test_a_gradient_step_raises_the_temperature_below_the_target_entropy_and_lowers_it_above():
    state, cfg, step = tiny_learner(learning_rate=0.01)
    entropy = float(step(state.params)[2]["entropy"])  # of the actions the step samples
    for offset, direction in ((0.5, 1.0), (-0.5, -1.0)):
        new, _, metrics = step(state.params, dataclasses.replace(cfg, target_entropy=entropy + offset))
        assert float(metrics["entropy"]) == entropy
        # Adam's first step moves log_alpha by the learning rate, down the temperature loss.
        assert float(new.log_alpha - state.params.log_alpha) == pytest.approx(direction * 0.01, rel=1e-3)


# What SAC keeps of a dict observation.


class PartsEnv(Env):
    """A dict observation like grasp-lift-cube's and go1-joystick's: parts, their concatenation
    "state", a larger "privileged_state", and an entry no network reads."""

    action_size = 2
    dt = 0.01

    def observe(self, x):
        parts = {"pos": x[:2], "vel": 10.0 * x[2:]}
        return dict(parts, state=jnp.concatenate([parts["pos"], parts["vel"]]),
                    privileged_state=jnp.concatenate([x, jnp.sin(x)]), unread=jnp.cos(x))

    def reset(self, key):
        x = jax.random.normal(key, (4,))
        return State(data=NoPhysics(x), obs=self.observe(x), reward=jnp.zeros(()), done=jnp.zeros(()))

    def step(self, state, action):
        x = state.data.placeholder
        x = jnp.concatenate([x[:2] + 0.1 * x[2:], x[2:] + 0.1 * action])
        return state.replace(data=NoPhysics(x), obs=self.observe(x), reward=-jnp.sum(jnp.square(x)),
                             done=jnp.zeros(()))


def test_correlated_noise_keeps_its_share_of_the_step_before_and_stays_standard_normal():
    def step(noise, key):
        noise = sac.correlated_noise(noise, key, 0.9)
        return noise, noise

    start = jax.random.normal(jax.random.PRNGKey(0), (8192,))  # already N(0, 1): the process is stationary
    _, noise = jax.lax.scan(step, start, jax.random.split(jax.random.PRNGKey(1), 50))
    noise = np.asarray(noise)
    # 8,192 chains of 50 steps are about 40,000 independent draws: standard errors near 0.01.
    np.testing.assert_allclose(noise.var(), 1.0, atol=0.05)
    np.testing.assert_allclose(np.mean(noise[1:] * noise[:-1]), 0.9, atol=0.03)
    key = jax.random.PRNGKey(2)
    np.testing.assert_array_equal(sac.correlated_noise(jnp.full(4, 3.0), key, 0.0),
                                  jax.random.normal(key, (4,)))  # white: the step before is forgotten


def test_with_correlated_noise_each_envs_actions_change_less_from_step_to_step():
    env = envs_mjx.wrap_for_training(PointMass(), episode_length=100)

    def mean_action_change(correlation):
        cfg = sac.Config(num_envs=64, batch_size=16, min_replay_size=16, replay_capacity=64 * 20,
                         noise_correlation=correlation, policy_hidden_layer_sizes=(8,),
                         q_hidden_layer_sizes=(8,))
        state = sac.init(jax.random.PRNGKey(0), env, cfg)
        step = jax.jit(lambda s: sac.train_step(s, env, cfg))
        for _ in range(20):
            state, _ = step(state)
        actions = np.asarray(state.replay.data["action"])[1:, :, 0]  # [step, env], after the uniform first
        return np.mean(np.abs(np.diff(actions, axis=0)))

    # The policy's std starts near softplus(0) = 0.69: white noise moves a typical action by about 0.5
    # a step, noise that keeps 95% of itself by about a third of that.
    assert mean_action_change(0.95) < 0.5 * mean_action_change(0.0)


def test_sac_keeps_only_the_entries_its_networks_read_and_its_policy_takes_the_full_observation():
    env = envs_mjx.wrap_for_training(PartsEnv(), episode_length=5)
    cfg = sac.Config(num_envs=8, batch_size=16, min_replay_size=16, replay_capacity=64,
                     policy_hidden_layer_sizes=(8,), q_hidden_layer_sizes=(8,))
    state = sac.init(jax.random.PRNGKey(0), env, cfg)
    step = jax.jit(lambda s: sac.train_step(s, env, cfg))
    for _ in range(3):
        state, metrics = step(state)
    assert float(metrics["loss/critic"]) > 0  # it learned from what it kept
    read = {"state", "privileged_state"}
    assert set(state.replay.data["obs"]) == set(state.replay.data["next_obs"]) == read
    assert set(state.obs_stats.mean) == set(state.obs_stats.m2) == read

    obs = jax.tree.map(np.asarray, state.env_state.obs)  # the env's own observation, every entry
    params = sac.policy_params(state)
    x = obs["state"]
    std = np.sqrt(np.maximum(state.obs_stats.m2["state"] / float(state.obs_stats.count), 1e-12))
    normalized = np.clip((x - state.obs_stats.mean["state"]) / std, -10.0, 10.0)
    loc = state.policy_spec.network().apply(params.network, normalized)[:, :env.action_size]
    np.testing.assert_allclose(sac.policy(params, obs), np.tanh(loc), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(sac.export_policy(params)(x), sac.policy(params, obs))


def test_on_grasp_lift_cube_the_replay_keeps_state_alone_in_about_half_the_bytes():
    # Shapes only: tracing sac.init spares compiling the MJX env.
    env = envs_mjx.wrap_for_training(envs_mjx.make("grasp-lift-cube"), episode_length=10)
    cfg = sac.Config(num_envs=2, replay_capacity=1000, min_replay_size=10)
    state = jax.eval_shape(lambda key: sac.init(key, env, cfg), jax.random.PRNGKey(0))
    one = lambda tree, axes: jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[axes:], x.dtype), tree)  # noqa: E731
    stored, whole_obs = one(state.replay.data, 2), one(state.env_state.obs, 1)
    assert len(whole_obs) > 2 and set(stored["obs"]) == set(stored["next_obs"]) == {"state"}
    assert set(state.obs_stats.mean) == {"state"}
    whole = replay.bytes_per_transition(dict(stored, obs=whole_obs, next_obs=whole_obs))
    state_floats = whole_obs["state"].shape[0]
    assert replay.bytes_per_transition(stored) == 4 * (2 * state_floats + env.action_size + 3)
    assert 0.45 < replay.bytes_per_transition(stored) / whole < 0.55  # "state" is all the other parts


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
    kept = r"min_replay_size = 2,000 exceeds the [\d,]+ transitions replay_capacity = 1,000 keeps"
    with pytest.raises(config.ConfigError, match=kept):
        config.load("cartpole-balance", "sac", overrides=["algo.replay_capacity=1000",
                                                          "algo.min_replay_size=2000"])
    with pytest.raises(config.ConfigError, match=r"noise_correlation must be in \[0, 1\), got 1.0"):
        config.load("cartpole-balance", "sac", overrides=["algo.noise_correlation=1.0"])
    with pytest.raises(config.ConfigError, match="did you mean 'algo.replay_capacity'"):
        config.load("cartpole-balance", "sac", overrides=["replay_capacty=10"])


@pytest.mark.slow
def test_sac_learns_pendulum_swingup_on_the_cpu(tmp_path):
    """The recipe's CPU preset, cut to 40k env steps: the pendulum swings up.

    Untrained, the deterministic policy scores about 20 of 1,000; a policy that only
    learned to push one way (a dead end of white noise here) stays below 150. Seed 0
    read 411, 492 and 542 at 20k, 30k and 40k env steps; seeds 0-3 of the recipe, in
    one program, ended at 628-762 at 50k.
    """
    jaxrl_process("train", "pendulum-swingup", "sac", "--preset", "cpu", f"train.run_dir={tmp_path}",
                  "train.num_timesteps=40_000", "train.tensorboard=false")
    evals = [r for r in read_metrics(tmp_path / "metrics.jsonl") if "eval/episode_return" in r]
    assert evals[0]["eval/episode_return"] < 100
    assert evals[-1]["eval/episode_return"] >= 400, evals
