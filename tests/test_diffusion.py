"""Diffusion policy: learns action chunks, acts from a plan it renews every action_exec steps, refuses
settings that cannot run."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_bc import FlatEnv, resumed_run_matches_unbroken_run
from test_demos import cartpole_demo_file, cartpole_offline_config

import envs_mjx
from jaxrl import cli, config, normalize
from jaxrl.algos import diffusion, offline
from jaxrl.data import demos as demo_data
from jaxrl.data.writer import DemoWriter
from jaxrl.runs import restore_run
from jaxrl.train import train

TRAIN_STEPS = 400
SMALL = dict(data="unused.hdf5", obs_keys=("state",), down_dims=(16, 32), kernel_size=3, n_groups=4,
             time_embed_dim=16, action_horizon=8, action_exec=4, batch_size=64, learning_rate=1e-3)
# |a - b| allowed between two float32 programs compiled apart that sample the same chunk: each may order a
# sum differently, and a sum of n unit-size terms then rounds differently by about sqrt(n) eps. A chunk is
# 10 DDIM steps of a U-Net 16 convs deep whose widest sums have 3 taps x 32 channels = 96 terms, and each
# DDIM step passes its input's error on (its weight on x is about 1): 10 x 16 x sqrt(96) x eps = 1.9e-4,
# in the units of actions in [-1, 1]. A wrong memory (a stale plan, another env's history) moves them by
# tenths.
SAMPLER_ATOL = 10 * 16 * np.sqrt(3 * 32) * np.finfo(np.float32).eps


def circling_demos(num_episodes=12, length=24, seed=0) -> demo_data.DemoSet:
    """Points circling at their own speed: obs (cos, sin) of the phase and the speed; the action is the
    (cos, sin) a radian ahead, so the whole chunk of future actions follows from the observation."""
    rng = np.random.default_rng(seed)
    speed = rng.uniform(0.1, 0.3, (num_episodes, 1))
    phase = rng.uniform(0, 2 * np.pi, (num_episodes, 1)) + speed * np.arange(length)
    obs = np.stack([np.cos(phase), np.sin(phase), np.broadcast_to(speed, phase.shape)], axis=-1)
    actions = 0.8 * np.stack([np.cos(phase + 1), np.sin(phase + 1)], axis=-1)
    return demo_data.make_demo_set(obs.reshape(-1, 3), actions.reshape(-1, 2), np.full(num_episodes, length),
                                   val_fraction=0.25)


@pytest.fixture(scope="module")
def setup():
    """(cfg, demos, jitted training scan of TRAIN_STEPS steps, validation metrics as floats)."""
    cfg = diffusion.Config(**SMALL)
    demos = circling_demos()
    train = jax.jit(lambda state: jax.lax.scan(
        lambda s, _: diffusion.train_step(s, FlatEnv(), cfg, demos), state, None, length=TRAIN_STEPS))
    compiled_validation = jax.jit(lambda state: diffusion.validation_metrics(state, cfg, demos))

    def validation(state) -> dict[str, float]:
        return {key: float(value) for key, value in compiled_validation(state).items()}

    return cfg, demos, train, validation


@pytest.fixture(scope="module")
def trained(setup):
    """(state before, state after TRAIN_STEPS, their training metrics)."""
    cfg, demos, train, _ = setup
    state = diffusion.init(jax.random.PRNGKey(0), FlatEnv(), cfg, demos)
    trained_state, metrics = train(state)
    return state, trained_state, metrics


def params_distance(a, b) -> float:
    """Euclidean distance between two parameter trees of the same structure."""
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return float(jnp.sqrt(sum(jnp.sum(jnp.square(x - y)) for x, y in pairs)))


def test_training_fits_held_out_chunks_and_the_ema_trails_the_weights(setup, trained):
    _, _, _, validation = setup
    before, after, metrics = trained
    losses = np.asarray(metrics["loss/diffusion"])
    assert np.isfinite(losses).all() and losses[-50:].mean() < 0.5 * losses[:50].mean()
    val_before, val_after = validation(before), validation(after)
    assert val_after["val/loss"] < 0.5 * val_before["val/loss"]
    assert val_after["val/action_mse"] < 0.25 * val_before["val/action_mse"]
    assert validation(after) == val_after  # fixed noise: a deterministic figure to rank checkpoints by
    distance = params_distance(after.params, after.ema_params)
    assert 0.0 < distance < params_distance(after.params, before.params)


def test_the_ema_decay_warms_up(setup, trained):
    cfg = setup[0]
    decays = np.asarray(trained[2]["ema_decay"])
    steps = np.arange(TRAIN_STEPS)
    warming = (1 + steps) / (diffusion.EMA_WARMUP + steps)
    # The first update keeps a tenth of the initial weights, not cfg.ema_decay of them: the init fades fast.
    np.testing.assert_allclose(decays, np.minimum(cfg.ema_decay, warming), rtol=1e-6)
    assert float(diffusion.ema_decay(cfg, jnp.asarray(10_000))) == pytest.approx(cfg.ema_decay)


def test_sampled_actions_are_valid_and_the_plain_policy_is_deterministic(setup, trained):
    _, demos, _, _ = setup
    params = diffusion.policy_params(trained[1])
    obs = demos.obs[:6]
    memory = diffusion.initial_memory(params, obs)
    act = jax.jit(diffusion.act)
    for step in range(5):
        action, memory = act(params, obs, memory, jax.random.PRNGKey(step))
        assert action.shape == (6, 2) and bool(jnp.all(jnp.abs(action) <= 1.0))

    @jax.jit
    def policies(params, obs, key):  # one compilation for the three calls
        return (diffusion.policy(params, obs), diffusion.policy(params, obs[2]),
                diffusion.policy(params, obs, key))

    plain, alone, sampled = policies(params, obs, jax.random.PRNGKey(3))
    assert bool(jnp.all(jnp.abs(plain) <= 1.0)) and np.isfinite(np.asarray(plain)).all()
    np.testing.assert_array_equal(policies(params, obs, jax.random.PRNGKey(4))[0], plain)
    # The same observation gets the same action in any batch, and alone.
    assert alone.shape == (2,)
    np.testing.assert_allclose(alone, plain[2], atol=1e-5)
    assert bool(jnp.all(jnp.abs(sampled) <= 1.0)) and not np.allclose(sampled, plain)


def test_a_chunk_is_sampled_every_action_exec_steps_and_executed_in_order(setup, trained, monkeypatch):
    cfg, _, _, _ = setup
    # Raw observations (no statistics yet) and a sampler whose chunk k-th action is 100 * obs + k:
    # each action tells which observation its chunk was planned from and where in the chunk it lies.
    params = diffusion.policy_params(trained[0]).replace(obs_stats=normalize.init(jnp.zeros(3)))
    monkeypatch.setattr(diffusion, "sample_chunks", lambda params, history, noise: (
        100 * history[:, -1, :1, None] + jnp.arange(noise.shape[1])[None, :, None]
        + jnp.zeros_like(noise)))
    envs = 3

    def observation(step):  # env b at step s sees 10 s + b
        return jnp.broadcast_to(10.0 * step + jnp.arange(envs)[:, None], (envs, 3))

    memory = diffusion.initial_memory(params, observation(0))
    for step in range(3 * cfg.action_exec + 1):
        action, memory = diffusion.act(params, observation(step), memory, jax.random.PRNGKey(step))
        planned_at = step - step % cfg.action_exec
        expected = 100 * observation(planned_at)[:, :1] + step % cfg.action_exec
        np.testing.assert_array_equal(action, jnp.broadcast_to(expected, (envs, 2)))
        previous = observation(max(step - 1, 0))  # the first observation fills the history at the start
        np.testing.assert_array_equal(memory.history, jnp.stack([previous, observation(step)], axis=1))
        assert memory.plan.shape == (envs, cfg.action_exec, 2) and int(memory.step) == step + 1


def test_the_exported_fn_is_act_without_a_key_and_each_env_starts_from_zero_memory(setup, trained):
    """fn(x, memory) from zero memory over demo episodes gives act's actions (fixed noise) step by step,
    across several plans; an env whose memory row is zeroed mid-way starts a new episode on its own."""
    cfg, demos, _, _ = setup
    params = diffusion.policy_params(trained[1])
    fn = jax.jit(diffusion.export_policy(params))
    act = jax.jit(diffusion.act)
    steps, envs = 3 * cfg.action_exec + 2, 3
    obs = demos.obs[:steps * envs].reshape(envs, steps, 3).swapaxes(0, 1)  # [T, B, 3]: runs of demo rows
    memory = jnp.zeros((envs, diffusion.export_memory_size(params)))
    assert memory.shape[1] == cfg.obs_history * 3 + cfg.action_exec * 2 + 1
    reference = diffusion.initial_memory(params, obs[0])
    restart = 5  # env 1 starts a new episode here: its memory row is zeroed
    late = diffusion.initial_memory(params, obs[restart])
    for t in range(steps):
        if t == restart:
            memory = memory.at[1].set(0.0)
        action, memory = fn(obs[t], memory)
        expected, reference = act(params, obs[t], reference)
        if t >= restart:
            expected_late, late = act(params, obs[t], late)
            expected = expected.at[1].set(expected_late[1])
        np.testing.assert_allclose(action, expected, atol=SAMPLER_ATOL, err_msg=f"step {t}")
    # The first step from zero memory is the memoryless policy's action (same history, same noise).
    first, _ = fn(obs[0], jnp.zeros_like(memory))
    np.testing.assert_allclose(first, diffusion.policy(params, obs[0]), atol=SAMPLER_ATOL)


def test_the_same_seed_gives_the_same_numbers(setup, trained):
    cfg, demos, train, _ = setup
    again, _ = train(diffusion.init(jax.random.PRNGKey(0), FlatEnv(), cfg, demos))
    for a, b in zip(jax.tree.leaves(trained[1]), jax.tree.leaves(again), strict=True):
        np.testing.assert_array_equal(a, b)


def test_settings_that_cannot_run_are_refused(tmp_path, capsys):
    assert cli.main(["train", "grasp-lift-cube", "diffusion", f"run_dir={tmp_path / 'a'}"]) == cli.EXIT_USAGE
    assert "pass data=FILE.hdf5" in capsys.readouterr().out
    assert cli.main(["train", "grasp-lift-cube", "diffusion", "data=demos.hdf5", "algo.action_exec=17",
                     f"run_dir={tmp_path / 'b'}"]) == cli.EXIT_USAGE
    assert "action_exec must be in [1, action_horizon=16]" in capsys.readouterr().out
    with pytest.raises(config.ConfigError, match="divisible by 4"):
        config.load("grasp-lift-cube", "diffusion", overrides=["data=demos.hdf5", "algo.action_horizon=10",
                                                               "algo.action_exec=4"])
    assert not any(tmp_path.iterdir())


def random_grasp_demos(path, num_demos=4, steps=30, seed=0):
    """A demo file of grasp-lift-cube's observation layout holding random numbers: enough to check the
    plumbing without collecting (learning the grasp takes minutes on the CPU; see the recipe)."""
    env = envs_mjx.make("grasp-lift-cube")
    shapes = offline.env_obs_shapes(env)
    rng = np.random.default_rng(seed)
    with DemoWriter(path, "grasp-lift-cube", config.as_dict(env.config), env.dt) as writer:
        for _ in range(num_demos):
            obs = {key: rng.normal(size=(steps, *shape)) for key, shape in shapes.items()}
            writer.add(obs, obs, rng.uniform(-1, 1, (steps, env.action_size)), np.zeros(steps),
                       np.eye(steps)[-1], success=True)
    return path


def test_a_run_trains_evaluates_with_memory_and_restores_without_the_data(tmp_path):
    grasp_demos = random_grasp_demos(tmp_path / "demos.hdf5")
    cfg = config.load("grasp-lift-cube", "diffusion", preset="cpu", overrides=[
        f"data={grasp_demos}", "algo.down_dims=[16,32]", "algo.kernel_size=3", "algo.n_groups=4",
        "algo.time_embed_dim=16", "algo.action_horizon=8", "algo.action_exec=4", "algo.batch_size=16",
        "env.episode_length=20", "train.num_timesteps=4", "train.iterations_per_call=2", "train.eval_every=4",
        "train.checkpoint_every=4", "train.num_eval_envs=4", "train.tensorboard=false"])
    result = train(cfg, tmp_path / "run")
    assert result.steps == 4 and {"eval/success", "val/loss", "val/action_mse"} <= set(result.final_eval)
    grasp_demos.unlink()
    run = restore_run(tmp_path / "run", "best")
    obs = {key: jnp.zeros(shape) for key, shape in offline.env_obs_shapes(run.eval_env).items()}
    action = jax.jit(run.algo.policy)(run.params, obs)
    assert action.shape == (4,) and bool(jnp.all(jnp.abs(action) <= 1.0))
    assert run.params.spec.obs_keys == tuple(run.cfg.algo.obs_keys) != ()


def test_an_interrupted_run_resumes_to_the_unbroken_runs_numbers(tmp_path):
    cfg = cartpole_offline_config("diffusion", cartpole_demo_file(tmp_path / "demos.hdf5"))
    resumed_run_matches_unbroken_run(cfg, tmp_path)
