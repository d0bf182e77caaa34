"""Our envs under Gymnasium's API (envs_mjx.gym), checked by Gymnasium's own code."""

import warnings

import gymnasium
import jax
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

import envs_mjx
import envs_mjx.gym as gym_envs


def test_every_registered_env_has_a_gymnasium_id():
    ids = {gym_envs.gym_id(name) for name in envs_mjx.list_envs()}
    assert {"jaxrl/Go1Joystick-v0", "jaxrl/CartpoleBalance-v0", "jaxrl/GraspLiftCube-v0"} <= ids
    assert ids <= set(gymnasium.registry)


@pytest.mark.parametrize("gym_id", ["jaxrl/CartpoleBalance-v0", "jaxrl/Go1Joystick-v0"])
def test_gymnasiums_env_checker_passes(gym_id):
    env = gymnasium.make(gym_id, render_mode="rgb_array", width=64, height=48)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    # Unbounded observations are the one remark, as for Gymnasium's own MuJoCo envs.
    assert all("infinity" in str(warning.message) for warning in caught), [str(w.message) for w in caught]
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8 and frame.std() > 0
    env.close()


def test_episodes_are_truncated_at_the_limit_and_start_as_the_mjx_env_starts():
    env = gymnasium.make("envs_mjx.gym:jaxrl/CartpoleBalance-v0", episode_length=5)
    obs, _ = env.reset(seed=7)
    again, _ = env.reset(seed=7)
    np.testing.assert_array_equal(obs, again)
    assert not np.array_equal(obs, env.reset(seed=8)[0])
    mjx_env = envs_mjx.make("cartpole-balance", episode_length=5)
    start = jax.jit(mjx_env.reset)(jax.random.PRNGKey(0))
    np.testing.assert_allclose(env.unwrapped.twin.reset(start), start.obs, atol=1e-6)

    env.reset(seed=0)
    endings = []
    for _ in range(5):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        endings.append((terminated, truncated))
        assert 0.0 <= reward <= 1.0 and obs.dtype == np.float32
    assert endings == [(False, False)] * 4 + [(False, True)]
    assert info  # the reward terms and metrics of the step


def test_a_go1_fall_terminates_and_is_not_a_truncation():
    env = gymnasium.make("jaxrl/Go1Joystick-v0")
    env.reset(seed=0)
    for _ in range(200):
        _, _, terminated, truncated, info = env.step(np.ones(12, np.float32))  # every joint to its limit
        if terminated or truncated:
            break
    assert terminated and not truncated, "no fall within 200 steps"
    assert {"lin_vel_error", "ang_vel_error"} <= set(info)


def test_image_observations_are_refused_by_the_plain_env_and_served_by_the_vector_env():
    with pytest.raises(ValueError, match="observes images.*make_vec"):
        gymnasium.make("jaxrl/CartpoleBalance-v0", pixels=8)
    vector = gym_envs.make_vec("cartpole-balance", num_envs=2, pixels=8)
    pixels = vector.single_observation_space["pixels"]
    assert pixels.shape == (8, 8, 1) and pixels.dtype == np.uint8
    obs, _ = vector.reset(seed=0)
    assert obs["pixels"].shape == (2, 8, 8, 1) and obs["pixels"] in vector.observation_space["pixels"]


EPISODE_LENGTH, NUM_ENVS = 100, 64


@pytest.fixture(scope="module")
def cartpoles():
    """One vector env for the tests below: compiling its step is most of their time."""
    return gymnasium.make_vec("jaxrl/CartpoleBalance-v0", num_envs=NUM_ENVS, episode_length=EPISODE_LENGTH)


def test_the_vector_env_resets_in_the_same_step_and_reports_final_observations(cartpoles):
    assert isinstance(cartpoles, gym_envs.MjxVectorEnv)
    assert cartpoles.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    obs, _ = cartpoles.reset(seed=1)
    assert obs.shape == (NUM_ENVS, 5) and obs in cartpoles.observation_space
    actions = np.linspace(-1, 1, NUM_ENVS, dtype=np.float32)[:, None]
    total = np.zeros(NUM_ENVS)
    for step in range(EPISODE_LENGTH):
        obs, reward, terminated, truncated, info = cartpoles.step(actions)
        total += reward
        assert not terminated.any()
        assert truncated.all() == (step == EPISODE_LENGTH - 1)
        assert "_final_obs" in info and info["_final_obs"].any() == (step == EPISODE_LENGTH - 1)
    # The last step's observations are the next episodes' first; the finished ones' are in final_obs.
    assert info["_final_obs"].all() and info["_episode"].all()
    assert not np.allclose(info["final_obs"], obs)
    np.testing.assert_allclose(info["episode"]["r"], total, rtol=1e-5)
    np.testing.assert_array_equal(info["episode"]["l"], EPISODE_LENGTH)

    # Same seed, same start; the episodes are the MJX env's own.
    first, _ = cartpoles.reset(seed=1)
    np.testing.assert_array_equal(first, cartpoles.reset(seed=1)[0])
    key = jax.random.PRNGKey(int(np.random.default_rng(1).integers(2**31)))
    first_env_key = jax.random.split(jax.random.split(key, NUM_ENVS)[0])[1]  # as AutoResetWrapper splits it
    start = jax.jit(envs_mjx.make("cartpole-balance").reset)(first_env_key)
    np.testing.assert_array_equal(first[0], start.obs)


def test_a_linear_policy_learns_to_balance_through_the_vector_api(cartpoles):
    """A real learning run through Gymnasium's vector API alone: the cross-entropy method on a linear
    policy, one candidate per env, all of them in one jitted step."""
    elite = 8
    rng = np.random.default_rng(0)
    size = cartpoles.single_observation_space.shape[0]
    mean, std = np.zeros(size + 1), np.ones(size + 1)

    def returns(weights):
        obs, _ = cartpoles.reset(seed=int(rng.integers(2**31)))
        total = np.zeros(NUM_ENVS)
        for _ in range(EPISODE_LENGTH):
            actions = np.tanh(np.einsum("bi,bi->b", weights[:, :-1], obs) + weights[:, -1])[:, None]
            obs, reward, *_ = cartpoles.step(actions.astype(np.float32))
            total += reward
        return total

    first = None
    for _ in range(6):
        weights = mean + std * rng.standard_normal((NUM_ENVS, size + 1))
        scores = returns(weights)
        first = scores.mean() if first is None else first
        best = weights[np.argsort(scores)[-elite:]]
        mean, std = best.mean(axis=0), best.std(axis=0) + 0.05
    final = returns(np.tile(mean, (NUM_ENVS, 1)))
    # Untrained, the candidates earn about 44 of 100 on average; the learned mean policy about 99.
    assert final.mean() > 0.9 * EPISODE_LENGTH > first, (first, final.mean())


def test_the_viewer_is_refused_in_one_line_where_no_window_can_open(monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "egl")  # offscreen only: MuJoCo's viewer cannot open a window
    with pytest.raises(ValueError, match="needs a display.*render_mode='rgb_array'"):
        gymnasium.make("jaxrl/CartpoleBalance-v0", render_mode="human")
    # The modes listed are the ones this machine has: the env checker tries each.
    assert gymnasium.make("jaxrl/CartpoleBalance-v0").unwrapped.metadata["render_modes"] == ["rgb_array"]
