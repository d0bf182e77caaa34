"""The Go1 joystick env: the model, its readings, reward terms, termination, randomization, terrain."""

import dataclasses

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from conftest import EPISODE_LENGTH, NUM_ENVS

import envs_mjx
from envs_mjx._mjx import mjx
from envs_mjx.go1.joystick import LEGS, PRIVILEGED_LAYOUT, REWARD_TERMS, STATE_LAYOUT, Go1JoystickConfig
from envs_mjx.go1.randomize import RandomizationConfig
from jaxrl import config
from jaxrl.logger import read_metrics

NOMINAL = Go1JoystickConfig(
    randomization=RandomizationConfig(model=False, pushes=False, init_joint_noise=0.0,
                                      init_base_velocity=0.0))


@pytest.fixture(scope="session")
def nominal_go1():
    """(env, jitted reset, jitted step) of one Go1 without randomization, pushes or start noise."""
    env = envs_mjx.make("go1-joystick", NOMINAL)
    return env, jax.jit(env.reset), jax.jit(env.step)


def test_model_loads_in_mujoco_and_mjx_with_the_robots_mass():
    model = envs_mjx.make("go1-joystick").mj_model
    assert (model.nq, model.nv, model.nu) == (19, 18, 12)
    np.testing.assert_allclose(model.body_subtreemass[model.body("trunk").id], 12.74, atol=0.01)
    assert mjx.put_model(model).nq == 19
    for leg in LEGS:
        assert model.site(f"{leg}_foot").id >= 0 and model.sensor(f"{leg}_linvel").dim[0] == 3
    for name in ("gyro", "accelerometer", "local_linvel", "upvector"):
        assert model.sensor(name).dim[0] == 3


def test_home_pose_stands_still_for_two_seconds(nominal_go1):
    env, reset, step = nominal_go1
    state = reset(jax.random.PRNGKey(0))
    home_height = float(env.mj_model.key("home").qpos[2])
    heights = []
    for _ in range(int(2.0 / env.dt)):
        state = step(state, jnp.zeros(12))
        heights.append(float(state.data.qpos[2]))
        assert float(state.done) == 0.0
    assert np.max(np.abs(np.array(heights) - home_height)) < 0.02
    assert np.abs(np.asarray(state.data.qvel)).max() < 0.05  # at rest, not merely upright


def test_readings_match_mujocos_sensors(batched_envs):
    """The observation's IMU and foot readings equal the MJCF sensors' in plain MuJoCo."""
    wrapped, reset, step = batched_envs["go1-joystick"]
    env = wrapped.unwrapped
    state = reset(jax.random.split(jax.random.PRNGKey(2), NUM_ENVS))
    key = jax.random.PRNGKey(3)
    for _ in range(20):
        key, key_action = jax.random.split(key)
        state = step(state, jax.random.uniform(key_action, (NUM_ENVS, 12), minval=-1, maxval=1))
    data = jax.tree.map(lambda x: x[0], state.data)
    data = data.replace(xfrc_applied=jnp.zeros_like(data.xfrc_applied))
    # A physics step leaves positions and body velocities from before its integration, so
    # recompute them at the final qpos/qvel, as MuJoCo's mj_forward does below.
    sensed = jax.jit(lambda d: env.sense(mjx.forward(env.mjx_model, d)))(data)
    model, mj_data = env.mj_model, mujoco.MjData(env.mj_model)
    mj_data.qpos[:], mj_data.qvel[:] = np.asarray(data.qpos), np.asarray(data.qvel)
    mujoco.mj_forward(model, mj_data)

    def sensor(name):
        return mj_data.sensor(name).data

    close = dict(rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(sensed["gyro"], sensor("gyro"), **close)
    np.testing.assert_allclose(sensed["local_linvel"], sensor("local_linvel"), **close)
    np.testing.assert_allclose(sensed["gravity"], -sensor("gravity_up_in_imu"), **close)
    np.testing.assert_allclose(sensed["feet_pos"], np.stack([sensor(f"{leg}_pos") for leg in LEGS]), **close)
    np.testing.assert_allclose(sensed["feet_linvel"], np.stack([sensor(f"{leg}_linvel") for leg in LEGS]),
                               **close)


def test_observation_layouts_match_the_arrays(nominal_go1):
    env, reset, _ = nominal_go1
    obs = reset(jax.random.PRNGKey(0)).obs
    assert obs["state"].shape == (sum(size for _, size in STATE_LAYOUT),)
    assert obs["privileged_state"].shape == (sum(size for _, size in PRIVILEGED_LAYOUT),)
    assert env.observation_size == {"state": (45,), "privileged_state": (59,)}


def _with(state, command=None, qvel=None, qpos=None, **info):
    data = state.data
    if qvel is not None:
        data = data.replace(qvel=data.qvel.at[: len(qvel)].set(jnp.asarray(qvel, jnp.float32)))
    if qpos is not None:
        data = data.replace(qpos=jnp.asarray(qpos, jnp.float32))
    if command is not None:
        info["command"] = jnp.asarray(command, jnp.float32)
    return state.replace(data=data, info={**state.info, **info})


def _terms(step, state, action=None):
    after = step(state, jnp.zeros(12) if action is None else action)
    return {name: float(after.metrics[f"reward/{name}"]) for name in REWARD_TERMS}, after


TWITCH = jnp.full(12, 0.5, jnp.float32)  # not weak-typed: the step compiled for zeros(12) serves it


def test_reward_terms_respond_to_what_they_measure(nominal_go1):
    env, reset, step = nominal_go1
    standing = reset(jax.random.PRNGKey(0))
    for _ in range(25):  # settle onto the feet
        standing = step(standing, jnp.zeros(12))
    forward = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    heading = np.asarray(standing.data.xmat[env._trunk])[:, 0]  # the body's x axis in the world
    forward[:2] = heading[:2] / np.linalg.norm(heading[:2])
    matched, _ = _terms(step, _with(standing, command=[1.0, 0.0, 0.0], qvel=forward))
    opposite, _ = _terms(step, _with(standing, command=[-1.0, 0.0, 0.0], qvel=forward))
    assert matched["tracking_lin_vel"] > opposite["tracking_lin_vel"] + 0.005

    turning, _ = _terms(step, _with(standing, command=[0.0, 0.0, 1.0], qvel=[0, 0, 0, 0, 0, 1.0]))
    counter, _ = _terms(step, _with(standing, command=[0.0, 0.0, -1.0], qvel=[0, 0, 0, 0, 0, 1.0]))
    assert turning["tracking_ang_vel"] > counter["tracking_ang_vel"]

    still, _ = _terms(step, _with(standing, command=[0.0, 0.0, 0.0]))
    bouncing, _ = _terms(step, _with(standing, command=[0.0, 0.0, 0.0], qvel=[0, 0, 1.0]))
    rolling, _ = _terms(step, _with(standing, command=[0.0, 0.0, 0.0], qvel=[0, 0, 0, 2.0, 0, 0]))
    twitching, _ = _terms(step, _with(standing, command=[0.0, 0.0, 0.0]), action=TWITCH)
    assert bouncing["lin_vel_z"] < still["lin_vel_z"] <= 0.0
    assert rolling["ang_vel_xy"] < still["ang_vel_xy"] <= 0.0
    assert twitching["action_rate"] < still["action_rate"] == 0.0
    assert twitching["stand_still"] < still["stand_still"] <= 0.0
    assert still["torques"] < 0.0  # holding the body up takes torque
    walking_cmd, _ = _terms(step, _with(standing, command=[1.0, 0.0, 0.0]), action=TWITCH)
    assert walking_cmd["stand_still"] == 0.0  # only "stand still" commands ask for the home pose

    tilt = np.asarray(standing.data.qpos).copy()
    tilt[3:7] = [np.cos(0.2), np.sin(0.2), 0.0, 0.0]  # rolled 0.4 rad
    tilted, _ = _terms(step, _with(standing, qpos=tilt))
    assert tilted["orientation"] < still["orientation"]

    # The servos cannot hold a joint at its limit within the action range, so feed the term
    # a reading with the FR knee at its upper limit.
    sensed = env.sense(standing.data)
    at_limit = dict(sensed, joint_pos=sensed["joint_pos"].at[2].set(env.mj_model.jnt_range[3, 1]))
    contact, first_contact, air_time = jnp.ones(4, bool), jnp.zeros(4, bool), jnp.zeros(4)
    args = (standing.info, jnp.zeros(12), contact, first_contact, air_time, jnp.array(False))
    assert float(env._reward_terms(standing.data, at_limit, *args)["joint_limits"]) > 0.0
    assert float(env._reward_terms(standing.data, sensed, *args)["joint_limits"]) == 0.0

    sliding, _ = _terms(step, _with(standing, command=[0.0, 0.0, 0.0], qvel=[1.0, 0, 0]))
    assert sliding["foot_slip"] < still["foot_slip"]
    assert still["termination"] == 0.0


def test_feet_air_time_pays_on_touchdown_after_a_long_swing(nominal_go1):
    env, reset, step = nominal_go1
    state = reset(jax.random.PRNGKey(0))
    for _ in range(10):
        state = step(state, jnp.zeros(12))
    swung = _with(state, command=[1.0, 0.0, 0.0], feet_air_time=jnp.array([0.3, 0.0, 0.0, 0.0]))
    short = _with(state, command=[1.0, 0.0, 0.0], feet_air_time=jnp.array([0.04, 0.0, 0.0, 0.0]))
    assert _terms(step, swung)[0]["feet_air_time"] > 0.0 > _terms(step, short)[0]["feet_air_time"]


def test_a_flipped_trunk_terminates_with_the_termination_penalty(nominal_go1):
    env, reset, step = nominal_go1
    state = reset(jax.random.PRNGKey(0))
    flipped = np.asarray(state.data.qpos).copy()
    flipped[2] = 0.5
    flipped[3:7] = [0.0, 1.0, 0.0, 0.0]  # upside down
    terms, after = _terms(step, _with(state, qpos=flipped))
    assert float(after.done) == 1.0 and terms["termination"] < 0.0
    # Falling cannot pay: the terms sum below 0 here, yet no step is worth less than 0, so ending the
    # episode early never scores more than living on.
    assert sum(terms.values()) < 0.0 and float(after.reward) == 0.0
    upright, after = _terms(step, state)
    assert float(after.done) == 0.0 and upright["termination"] == 0.0


def test_randomization_differs_per_episode_and_changes_what_it_names(batched_envs):
    wrapped, reset, step = batched_envs["go1-joystick"]
    state = reset(jax.random.split(jax.random.PRNGKey(0), NUM_ENVS))
    params = state.info["model_params"]
    nominal = wrapped.unwrapped.mjx_model
    trunk, floor = 1, 0
    friction = np.asarray(params.geom_friction[:, floor, 0])
    assert len(np.unique(friction)) == NUM_ENVS and np.all((0.4 <= friction) & (friction <= 1.0))
    assert len(np.unique(np.asarray(params.body_mass[:, trunk]))) == NUM_ENVS
    for name in ("body_ipos", "dof_frictionloss", "dof_armature", "actuator_gainprm"):
        assert not np.allclose(getattr(params, name), getattr(nominal, name)[None]), name
    kp = np.asarray(params.actuator_gainprm[..., 0])
    np.testing.assert_allclose(np.asarray(params.actuator_biasprm[..., 1]), -kp)  # servo stays a servo
    ended = np.zeros(NUM_ENVS, bool)
    for _ in range(EPISODE_LENGTH):
        state = step(state, jnp.zeros((NUM_ENVS, 12)))
        ended |= np.asarray(state.done) == 1.0
    assert ended.all()  # every episode ended by the time limit at the latest: each drew anew
    new_friction = np.asarray(state.info["model_params"].geom_friction[:, floor, 0])
    assert not np.any(np.isclose(new_friction, friction))


def test_randomization_off_keeps_the_nominal_model(nominal_go1):
    env, reset, _ = nominal_go1
    params = reset(jax.random.PRNGKey(5)).info["model_params"]
    for name in ("geom_friction", "body_mass", "body_ipos", "actuator_gainprm"):
        np.testing.assert_array_equal(getattr(params, name), getattr(env.mjx_model, name))


def test_pushes_shove_the_trunk_for_their_duration():
    cfg = dataclasses.replace(NOMINAL, randomization=dataclasses.replace(
        NOMINAL.randomization, pushes=True, push_interval=(0.1, 0.1), push_force=(50.0, 50.0),
        push_duration=0.1))
    env = envs_mjx.make("go1-joystick", cfg)
    state, step = jax.jit(env.reset)(jax.random.PRNGKey(0)), jax.jit(env.step)
    forces = []
    for _ in range(12):
        state = step(state, jnp.zeros(12))
        forces.append(np.linalg.norm(np.asarray(state.obs["privileged_state"][-3:])))
    pushed = np.isclose(forces, 50.0, atol=1e-3)
    assert 5 <= pushed.sum() <= 10 and np.all(np.isclose(np.array(forces)[~pushed], 0.0))
    assert float(jnp.linalg.norm(state.data.qvel[:2])) > 0.05  # the trunk felt it


def test_rough_terrain_height_lookup_matches_the_heightfield_mujoco_collides_with():
    env = envs_mjx.make("go1-joystick-rough")
    model, data = env.mj_model, mujoco.MjData(env.mj_model)
    mujoco.mj_forward(model, data)
    rng = np.random.default_rng(0)
    xy = rng.uniform(-15, 15, (50, 2))
    looked_up = np.asarray(env.ground.height_at(jnp.asarray(xy, jnp.float32)))
    geomid = np.zeros(1, np.int32)
    cast = [mujoco.mj_ray(model, data, np.array([x, y, 5.0]), np.array([0, 0, -1.0]), None, 1, -1, geomid)
            for x, y in xy]
    ray_heights = 5.0 - np.array(cast)
    assert np.ptp(ray_heights) > 0.02  # the ground is not flat
    np.testing.assert_allclose(looked_up, ray_heights, atol=0.01)  # bilinear vs MuJoCo's triangles


def test_rough_terrain_spawns_on_the_surface_and_is_the_same_for_a_seed(batched_envs):
    wrapped, reset, _ = batched_envs["go1-joystick-rough"]
    state = reset(jax.random.split(jax.random.PRNGKey(0), NUM_ENVS))
    feet_height = np.asarray(state.obs["privileged_state"][:, 52:56])
    # The lowest foot of each robot touches the ground: the home pose presses it 1.65 cm in,
    # the initial joint noise moves it by up to about 3 cm more.
    assert np.all(np.abs(feet_height.min(axis=1)) < 0.05)
    assert len(np.unique(np.asarray(state.data.qpos[:, 0]))) == NUM_ENVS  # spread over the terrain
    again = envs_mjx.make("go1-joystick-rough")
    np.testing.assert_array_equal(again.mj_model.hfield_data, wrapped.unwrapped.mj_model.hfield_data)


def test_ppo_smoke_run_on_go1_trains_and_writes_a_checkpoint(small_run):
    """`jaxrl train go1-joystick ppo` with the CPU preset, shrunk to a few iterations (the suite's small
    Go1 run, which export and playback tests use too)."""
    run_dir = small_run("go1-joystick")
    assert any((run_dir / "checkpoints" / "latest").iterdir())
    records = read_metrics(run_dir / "metrics.jsonl")
    assert records[-1]["env_steps"] == 640
    assert all(np.isfinite(v) for record in records for v in record.values())
    assert "eval/reward/tracking_lin_vel" in records[-1] and "train/lin_vel_error" in records[-1]
    saved = config.load_saved(run_dir / "config.yaml")
    assert saved.env.rewards.feet_air_time == 0.2 and saved.env.terrain == "flat"


def test_an_unknown_physics_backend_is_named_with_the_choices():
    with pytest.raises(ValueError, match=r"impl must be one of \('jax', 'warp'\), got 'cuda'"):
        envs_mjx.make("go1-joystick", impl="cuda")
