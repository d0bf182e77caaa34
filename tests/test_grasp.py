"""grasp-lift-cube / grasp-place-cube: model, tactile pads, success metric, scripted expert."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import RUNS_LONG

import envs_mjx
from envs_mjx.grasp.expert import ExpertConfig, make_expert
from envs_mjx.grasp.lift_cube import OBS_PARTS, PLACE_OBS_PARTS, LiftCubeConfig
from envs_mjx.grasp.randomize import RandomizationConfig

EXPERT_EPISODES = 224  # of the lift expert, in the same rollout as LOW_EPISODES of the one told to stop low
LOW_EPISODES = 32


def rollout(env, policy, num_envs: int, seed: int = 0, steps: int | None = None) -> dict:
    """Host arrays [T + 1, num_envs, ...] of obs, metrics, done and the gripper actuator force; `policy`
    acts on a batch of observations."""
    steps = steps or env.config.episode_length
    batched = envs_mjx.wrap_for_eval(env, env.config.episode_length)

    def record(state):
        return {"obs": state.obs, "metrics": state.metrics, "done": state.done,
                "finger_force": state.data.actuator_force[:, 3:], "half_size": state.info["cube"].half_size}

    def run(key):
        state = batched.reset(jax.random.split(key, num_envs))

        def step(state, _):
            state = batched.step(state, policy(state.obs))
            return state, record(state)

        _, trace = jax.lax.scan(step, state, None, length=steps)
        return jax.tree.map(lambda first, rest: jnp.concatenate([first[None], rest]), record(state), trace)

    return jax.device_get(jax.jit(run, compiler_options=RUNS_LONG)(jax.random.PRNGKey(seed)))


@pytest.fixture(scope="module")
def lift_env():
    return envs_mjx.make("grasp-lift-cube")


RESTING = 32  # envs of `lift_batch`'s tests


@pytest.fixture(scope="module")
def lift_batch(lift_env):
    """(jitted reset of a batch of keys, jitted step of a batch): one compile of the grasp physics for the
    tests that step a few envs by hand."""
    return jax.jit(jax.vmap(lift_env.reset)), jax.jit(jax.vmap(lift_env.step))


def side_by_side(first, second, count: int):
    """A policy of a batch of observations: `first` drives its first `count` envs, `second` the rest."""
    def policy(obs):
        first_ones = jnp.arange(jax.tree.leaves(obs)[0].shape[0]) < count
        return jnp.where(first_ones[:, None], jax.vmap(first)(obs), jax.vmap(second)(obs))

    return policy


def of_envs(trace: dict, envs: slice) -> dict:
    return jax.tree.map(lambda x: x[:, envs], trace)


@pytest.fixture(scope="module")
def lift_episodes(lift_env):
    """Lift episodes recorded step by step, all in one program (a grasp rollout compiles for about 20
    s): the expert's in the first EXPERT_EPISODES envs, then LOW_EPISODES of the expert told to stop
    6 cm up (its cube's underside at most 0.07 m up)."""
    low = make_expert(lift_env, ExpertConfig(lift_to=0.09))
    return rollout(lift_env, side_by_side(make_expert(lift_env), low, EXPERT_EPISODES),
                   EXPERT_EPISODES + LOW_EPISODES)


@pytest.fixture(scope="module")
def expert_lift(lift_episodes):
    return of_envs(lift_episodes, slice(0, EXPERT_EPISODES))


def test_model_and_observation_layout(lift_env, lift_batch):
    model = lift_env.mj_model
    assert model.nu == 5 and lift_env.action_size == 4 and lift_env.dt == pytest.approx(0.02)
    reset, _ = lift_batch
    state = jax.tree.map(lambda x: x[0], reset(jax.random.split(jax.random.PRNGKey(0), RESTING)))
    assert lift_env.obs_parts == tuple(name for name, _ in OBS_PARTS)
    for name, shape in OBS_PARTS:
        assert state.obs[name].shape == shape, name
    assert state.obs["state"].shape == (sum(int(np.prod(shape)) for _, shape in OBS_PARTS),)
    np.testing.assert_allclose(state.obs["cube_rel_pos"], state.obs["cube_pos"] - state.obs["gripper_pos"])
    place = envs_mjx.make("grasp-place-cube")
    assert place.obs_parts == tuple(name for name, _ in PLACE_OBS_PARTS)
    assert place.observation_size["state"] == (48,)


def test_cube_randomization_is_applied_to_the_physics(lift_batch):
    """Each episode's cube rests on the table at its own half-size: the collision box follows the draw."""
    reset, step = lift_batch
    states = reset(jax.random.split(jax.random.PRNGKey(3), RESTING))
    half = np.asarray(states.info["cube"].half_size)
    mass = np.asarray(states.info["cube"].mass)
    dr = RandomizationConfig()
    assert dr.cube_half_size[0] <= half.min() < half.max() <= dr.cube_half_size[1]
    assert dr.cube_mass[0] <= mass.min() < mass.max() <= dr.cube_mass[1]
    hold_open = jnp.tile(jnp.array([0.0, 0.0, 0.0, 1.0]), (RESTING, 1))
    for _ in range(25):
        states = step(states, hold_open)
    np.testing.assert_allclose(np.asarray(states.obs["cube_pos"][:, 2]), half, atol=1.5e-3)


def test_tactile_pads_zero_without_contact(lift_batch, expert_lift):
    tactile = np.concatenate([expert_lift["obs"]["tactile_left"], expert_lift["obs"]["tactile_right"]], -1)
    assert np.all(tactile[0] == 0.0)  # at reset the gripper is far above the cube
    assert np.all(tactile >= 0.0)
    # Fingers closed on nothing: the cube is 10+ cm away, the pads feel nothing.
    reset, step = lift_batch
    state = reset(jax.random.split(jax.random.PRNGKey(0), RESTING))
    close = jnp.tile(jnp.array([0.0, 0.0, 0.0, -1.0]), (RESTING, 1))
    for _ in range(15):
        state = step(state, close)
    assert float(jnp.max(state.obs["finger_opening"])) < 0.005  # fully closed, in every env
    assert float(jnp.sum(state.obs["tactile_left"]) + jnp.sum(state.obs["tactile_right"])) == 0.0


def test_tactile_pads_feel_the_squeeze(expert_lift):
    """While the expert holds the cube up, each pad's taxels add up to its finger's actuator force."""
    lifted = expert_lift["metrics"]["cube_height"] > 0.05
    assert lifted.sum() > 1000
    left = expert_lift["obs"]["tactile_left"].sum(axis=(-2, -1))[lifted]
    right = expert_lift["obs"]["tactile_right"].sum(axis=(-2, -1))[lifted]
    squeeze = np.abs(expert_lift["finger_force"][lifted])
    assert np.mean((left > 1.0) & (right > 1.0)) > 0.99
    # Static balance: each finger's servo force is what its pad presses on the cube with.
    np.testing.assert_allclose(np.median(left / squeeze[:, 0]), 1.0, atol=0.1)
    np.testing.assert_allclose(np.median(right / squeeze[:, 1]), 1.0, atol=0.1)
    # Only touching taxels read a force: some lie off the cube's face when it is turned.
    per_taxel = expert_lift["obs"]["tactile_left"][lifted].reshape(-1, 12)
    assert np.mean(per_taxel == 0.0) > 0.05


def test_expert_lifts_the_cube(expert_lift):
    successes = expert_lift["metrics"]["success"].sum(axis=0)
    assert set(np.unique(successes)) <= {0.0, 1.0}  # success fires once per episode
    assert successes.mean() >= 0.97


def test_success_fires_only_after_the_cube_is_lifted_and_held(lift_env, expert_lift):
    hold_steps, lift_height = lift_env.config.hold_steps, lift_env.config.lift_height
    fired_step, fired_env = np.nonzero(expert_lift["metrics"]["success"])
    assert len(fired_env) > 0
    height = expert_lift["metrics"]["cube_height"]
    for step, env_index in zip(fired_step, fired_env, strict=True):
        window = slice(step - hold_steps + 1, step + 1)
        assert np.all(height[window, env_index] >= lift_height)
        for pad in ("tactile_left", "tactile_right"):
            assert np.all(expert_lift["obs"][pad][window, env_index].sum(axis=(-2, -1)) > 0)


def test_no_success_below_the_lift_height(lift_env, lift_episodes):
    """The expert told to stop 6 cm up holds the cube all episode, and never succeeds."""
    trace = of_envs(lift_episodes, slice(EXPERT_EPISODES, None))
    force = lift_env.config.grasp_force
    held = (trace["obs"]["tactile_left"].sum(axis=(-2, -1)) >= force) & (
        trace["obs"]["tactile_right"].sum(axis=(-2, -1)) >= force)
    assert held[-1].mean() > 0.9
    assert trace["metrics"]["cube_height"][-1].max() < lift_env.config.lift_height
    assert trace["metrics"]["success"].sum() == 0.0


def test_expert_places_the_cube():
    env = envs_mjx.make("grasp-place-cube")
    trace = rollout(env, jax.vmap(make_expert(env)), 64, seed=1)
    assert trace["metrics"]["success"].sum(axis=0).mean() >= 0.95
    distance = np.linalg.norm(trace["obs"]["cube_to_target"], axis=-1)
    fired_step, fired_env = np.nonzero(trace["metrics"]["success"])
    assert np.all(distance[fired_step, fired_env] < env.config.place_tolerance)


def test_expert_rejects_other_envs():
    with pytest.raises(envs_mjx.registry.NoExpertError, match="no scripted expert"):
        envs_mjx.make_expert("cartpole-balance", envs_mjx.make("cartpole-balance"))
    with pytest.raises(TypeError, match="LiftCube"):
        make_expert(envs_mjx.make("cartpole-balance"))


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="task must be one of"):
        envs_mjx.make("grasp-lift-cube", dataclasses.replace(LiftCubeConfig(), task="push"))


def test_cli_collects_expert_demos_with_tactile_observations(tmp_path, capsys):
    """`jaxrl collect` -> HDF5 -> `jaxrl data inspect` and the reader, on the grasp env end to end."""
    from jaxrl import cli
    from jaxrl.data.reader import load

    out = tmp_path / "demos.hdf5"
    argv = ["collect", "grasp-lift-cube", "--episodes", "6", "--num-envs", "6", "--out", str(out),
            "--noise", "0.05", "--only-success"]
    assert cli.main(argv) == 0
    assert "wrote 6 demos" in capsys.readouterr().out
    assert cli.main(["data", "inspect", str(out)]) == 0
    report = capsys.readouterr().out
    assert "tactile_left" in report and "(3, 4)" in report
    data = load([out])
    assert data.num_episodes == 6 and bool(np.all(np.asarray(data.episode_success)))
    assert set(data.obs) == {name for name, _ in OBS_PARTS}
    starts, lengths = np.asarray(data.episode_starts), np.asarray(data.episode_lengths)
    # Each demo ends on the step its success fired: the cube is up and the pads press it.
    last = starts + lengths - 1
    assert np.all(np.asarray(data.next_obs["cube_pos"])[last, 2] > 0.1 + 0.02)
    assert np.all(np.asarray(data.next_obs["tactile_left"])[last].sum(axis=(-2, -1)) > 0.5)
    assert np.all(np.abs(np.asarray(data.actions)) <= 1.0)
