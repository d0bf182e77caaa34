"""The env contract, the classic envs and the wrappers."""

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from conftest import ENV_NAMES, EPISODE_LENGTH, NUM_ENVS

import envs_mjx
from envs_mjx.core import PhysicsOptions
from envs_mjx.plain import PlainEnv
from envs_mjx.registry import UnknownEnvError
from envs_mjx.wrappers import AutoResetWrapper, EpisodeWrapper, VmapWrapper
from jaxrl import config, train


def signature(tree):
    return [(x.shape, x.dtype) for x in jax.tree.leaves(tree)]


@pytest.mark.parametrize("name", ENV_NAMES)
def test_random_actions_run_past_two_time_limits_without_nan_with_static_shapes(name, batched_envs):
    env, reset, step = batched_envs[name]
    state = reset(jax.random.split(jax.random.PRNGKey(0), NUM_ENVS))
    shapes = signature(state)
    key = jax.random.PRNGKey(1)
    for _ in range(2 * EPISODE_LENGTH + 10):  # auto-resets happen on the way, twice
        key, key_action = jax.random.split(key)
        state = step(state, jax.random.uniform(key_action, (NUM_ENVS, env.action_size), minval=-1, maxval=1))
        assert signature(state) == shapes
    for leaf in jax.tree.leaves((state.obs, state.reward, state.metrics)):
        assert np.all(np.isfinite(leaf))
    obs_size = env.observation_size
    expected = {k: (NUM_ENVS, *v) for k, v in obs_size.items()} if isinstance(obs_size, dict) else (
        NUM_ENVS, obs_size)
    assert jax.tree.map(lambda x: x.shape, state.obs) == expected


@pytest.mark.parametrize("name", ENV_NAMES)
def test_reset_and_step_are_deterministic_for_a_key(name, batched_envs):
    env, reset, step = batched_envs[name]
    keys = jax.random.split(jax.random.PRNGKey(3), NUM_ENVS)
    # float32, not a weak-typed 0.5: the step compiled for random actions serves this one too.
    action = jnp.full((NUM_ENVS, env.action_size), 0.5, jnp.float32)
    a, b = step(reset(keys), action), step(reset(keys), action)
    jax.tree.map(np.testing.assert_array_equal, (a.obs, a.reward, a.info), (b.obs, b.reward, b.info))
    other = reset(jax.random.split(jax.random.PRNGKey(4), NUM_ENVS))
    assert not np.array_equal(jax.tree.leaves(other.obs)[0], jax.tree.leaves(a.obs)[0])


def test_cartpole_reward_prefers_upright_and_ends_each_step_undone():
    env = envs_mjx.make("cartpole-balance")
    state = jax.jit(env.reset)(jax.random.PRNGKey(0))
    step = jax.jit(env.step)
    upright = step(state, jnp.zeros(1))
    hanging_data = jax.jit(env.init_data)(jnp.array([0.0, jnp.pi]), jnp.zeros(2))
    hanging = step(state.replace(data=hanging_data), jnp.zeros(1))
    assert float(upright.reward) > 0.95
    assert float(hanging.reward) < 0.05
    assert float(upright.done) == 0.0


def test_episode_wrapper_truncates_at_the_limit_and_sums_the_episode():
    env = EpisodeWrapper(envs_mjx.make("cartpole-balance"), episode_length=5)
    state = jax.jit(env.reset)(jax.random.PRNGKey(0))
    step = jax.jit(env.step)
    rewards = []
    for _ in range(5):
        state = step(state, jnp.zeros(1))
        rewards.append(float(state.reward))
    assert float(state.done) == 1.0 and float(state.info["truncation"]) == 1.0
    assert float(state.info["episode_metrics"]["length"]) == 5
    np.testing.assert_allclose(float(state.info["episode_metrics"]["return"]), sum(rewards), rtol=1e-5)


def test_auto_reset_keeps_final_obs_and_totals_then_starts_afresh():
    env = AutoResetWrapper(VmapWrapper(EpisodeWrapper(envs_mjx.make("cartpole-balance"), episode_length=3)))
    step = jax.jit(env.step)
    state = jax.jit(env.reset)(jax.random.split(jax.random.PRNGKey(0), 2))
    push = jnp.ones((2, 1))
    for _ in range(2):
        state = step(state, push)
        assert np.all(state.done == 0.0)
        np.testing.assert_allclose(state.info["final_obs"], state.obs)  # nothing reset: the same
    state = step(state, push)
    assert np.all(state.done == 1.0)
    # The final observation is kept; obs is a new episode's first observation.
    assert not np.allclose(state.info["final_obs"], state.obs)
    assert np.all(np.abs(state.obs[:, 0]) <= 0.1)  # carts back inside their initial range
    assert np.all(state.info["episode_metrics"]["length"] == 3)
    state = step(state, push)
    assert np.all(state.done == 0.0)
    assert np.all(state.info["episode_metrics"]["length"] == 1)
    assert np.all(state.info["steps"] == 1)
    np.testing.assert_allclose(state.info["final_obs"], state.obs)


def test_auto_reset_restarts_only_the_envs_that_finished():
    env = AutoResetWrapper(VmapWrapper(EpisodeWrapper(envs_mjx.make("cartpole-balance"), episode_length=3)))
    step = jax.jit(env.step)
    state = jax.jit(env.reset)(jax.random.split(jax.random.PRNGKey(0), 2))
    state = step(state, jnp.ones((2, 1)))
    # Pretend env 1 was already 2 steps in: it finishes one step before env 0.
    state = state.replace(info=dict(state.info, steps=state.info["steps"].at[1].set(2.0)))
    state = step(state, jnp.ones((2, 1)))
    np.testing.assert_array_equal(state.done, [0.0, 1.0])
    np.testing.assert_allclose(state.info["final_obs"][0], state.obs[0])
    assert not np.allclose(state.info["final_obs"][1], state.obs[1])
    assert float(state.info["steps"][0]) == 2.0


def test_physics_options_replace_the_solver_settings_of_the_mjcf_in_mjx_and_plain_mujoco():
    def solver_settings(opt):
        return opt.solver, opt.iterations, opt.ls_iterations

    newton, cg = mujoco.mjtSolver.mjSOL_NEWTON, mujoco.mjtSolver.mjSOL_CG
    file_opt = envs_mjx.make("cartpole-balance").mj_model.opt
    assert solver_settings(file_opt) == (newton, 1, 4)  # cartpole.xml's
    assert file_opt.tolerance == 1e-8  # MuJoCo's default
    options = PhysicsOptions(solver="cg", iterations=3, ls_iterations=2, tolerance=1e-4)
    env = envs_mjx.make("cartpole-balance", physics=options)
    for opt in (env.mj_model.opt, env.mjx_model.opt, PlainEnv(env).model.opt):
        assert solver_settings(opt) == (cg, 3, 2)
        assert float(opt.tolerance) == pytest.approx(1e-4)  # float32 in MJX
    env = envs_mjx.make("cartpole-balance", physics=PhysicsOptions(ls_iterations=2))
    assert solver_settings(env.mjx_model.opt) == (newton, 1, 2)  # what is not set keeps the file's value
    assert float(env.mjx_model.opt.tolerance) == pytest.approx(1e-8)


def test_an_unknown_solver_or_a_negative_tolerance_is_refused_as_a_setting_with_the_fix():
    cfg = config.load("cartpole-balance", "ppo", overrides=["env.physics.solver=pgs"])
    refused = r"physics.solver must be 'mjcf' \(the model file's\) or one of \('newton', 'cg'\), got 'pgs'"
    with pytest.raises(config.ConfigError, match=refused):
        train.make_envs(cfg)
    cfg = config.load("cartpole-balance", "ppo", overrides=["env.physics.tolerance=-1e-5"])
    with pytest.raises(config.ConfigError, match=r"physics.tolerance must be > 0, or 0 for the model file's"):
        train.make_envs(cfg)


def test_registry_errors_name_the_closest_env_and_field():
    with pytest.raises(UnknownEnvError, match="did you mean 'cartpole-balance'"):
        envs_mjx.make("cartpole-balanse")
    with pytest.raises(TypeError, match="did you mean 'episode_length'"):
        envs_mjx.make("cartpole-balance", episode_lenght=10)
    assert envs_mjx.make("pendulum-swingup", episode_length=7).config.episode_length == 7


@pytest.mark.parametrize("name", ["cartpole-balance", "pendulum-swingup"])
def test_a_classic_control_step_of_k_physics_steps_holds_the_action_and_earns_k_times_the_rate(name):
    fine, coarse = envs_mjx.make(name), envs_mjx.make(name, physics_steps=4)
    assert coarse.dt == pytest.approx(4 * fine.dt)
    state = jax.jit(fine.reset)(jax.random.PRNGKey(2))
    fine_step, action = jax.jit(fine.step), jnp.full(fine.action_size, 0.7, jnp.float32)
    held = state
    for _ in range(4):
        held = fine_step(held, action)
    coarse_step = jax.jit(coarse.step)(state, action)
    np.testing.assert_allclose(coarse_step.obs, held.obs, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(coarse_step.reward, 4 * held.reward, rtol=1e-6)
    with pytest.raises(ValueError, match="physics_steps must be >= 1"):
        envs_mjx.make(name, physics_steps=0)


@pytest.mark.parametrize("name", ["cartpole-balance", "pendulum-swingup"])
def test_a_classic_env_with_pixels_observes_its_depth_image_beside_the_same_state(name):
    plain, seeing = envs_mjx.make(name), envs_mjx.make(name, pixels=16)
    assert seeing.observation_size == {"state": (plain.observation_size,), "pixels": (16, 16, 1)}
    states = jax.jit(jax.vmap(seeing.reset))(jax.random.split(jax.random.PRNGKey(3), 2))
    stepped = jax.jit(jax.vmap(seeing.step))(states, jnp.full((2, 1), 0.5, jnp.float32))
    images = np.asarray(stepped.obs["pixels"])
    assert images.dtype == np.uint8 and 0 < images.min() < 255 == images.max()  # something near, sky far
    assert not np.array_equal(images[0], images[1])  # two episodes, two pictures
    want = jax.jit(jax.vmap(plain.step))(states.replace(obs=states.obs["state"]), jnp.full((2, 1), 0.5))
    np.testing.assert_array_equal(stepped.obs["state"], want.obs)
    with pytest.raises(ValueError, match="pixels must be >= 0"):
        envs_mjx.make(name, pixels=-1)
