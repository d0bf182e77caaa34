"""Playback on plain MuJoCo: twins match MJX, `jaxrl play` runs exported policies (sim-to-sim: in
test_ppo_learning, beside the training run it plays)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_video import mp4_frames

import envs_mjx
from jaxrl import cli
from jaxrl.export.onnx import policy_input
from jaxrl.export.onnx_policy import OnnxPolicy


def matched_env(name):
    """The MJX env configured the way its twin plays (no noise, nominal model, held command)."""
    env = envs_mjx.make(name)
    return envs_mjx.make(name, envs_mjx.plain_class(name).matching_config(env.config))


@pytest.mark.parametrize("name, steps, atol", [
    ("cartpole-balance", 200, 1e-5),
    ("go1-joystick", 5, 2e-2),
    ("grasp-lift-cube", 20, 1e-3),
])
def test_twin_computes_what_mjx_computes(name, steps, atol):
    """Same start, same actions: observations and rewards agree step for step (float64 vs float32
    physics; Go1 and grasp use small smooth actions, before contacts make the engines drift apart)."""
    env = matched_env(name)
    state = jax.jit(env.reset)(jax.random.PRNGKey(1))
    step = jax.jit(env.step)
    twin = envs_mjx.make_plain(name, env)
    np.testing.assert_allclose(twin.reset(state), np.asarray(policy_input(state.obs)), atol=1e-6)
    for t in range(steps):
        action = 0.2 * np.sin(0.3 * t + np.arange(env.action_size)).astype(np.float32)
        state = step(state, jnp.asarray(action))
        played = twin.step(action)
        np.testing.assert_allclose(played.obs, np.asarray(policy_input(state.obs)), atol=atol,
                                   err_msg=f"step {t}")
        np.testing.assert_allclose(played.reward, float(state.reward), atol=atol, rtol=1e-3)
        assert played.done == bool(state.done)


def test_grasp_twin_lifts_the_cube_like_mjx_under_the_expert():
    """The scripted expert, fed each engine's own observations, succeeds in both with the same return."""
    name = "grasp-lift-cube"
    env = envs_mjx.make(name)
    expert = jax.jit(envs_mjx.make_expert(name, env))
    twin = envs_mjx.make_plain(name, env)
    state = jax.jit(env.reset)(jax.random.PRNGKey(0))
    twin.reset(state)
    step, mjx_return, plain_return, successes = jax.jit(env.step), 0.0, 0.0, [0.0, 0.0]
    for _ in range(env.config.episode_length):
        state = step(state, expert(state.obs))
        obs = {k: jnp.asarray(v) for k, v in env.observe(twin.data, twin.info).items()}
        played = twin.step(np.asarray(expert(obs)))
        mjx_return, plain_return = mjx_return + float(state.reward), plain_return + played.reward
        successes[0] += float(state.metrics["success"])
        successes[1] += played.metrics["success"]
    assert successes == [1.0, 1.0]
    assert plain_return == pytest.approx(mjx_return, rel=0.02)


@pytest.fixture(scope="module")
def go1_policy(small_run, tmp_path_factory):
    path = tmp_path_factory.mktemp("go1-policy") / "go1.onnx"
    assert cli.main(["export", str(small_run("go1-joystick")), "--out", str(path)]) == 0
    return path


def test_playback_runs_go1_in_plain_mujoco(go1_policy, capsys):
    capsys.readouterr()
    assert cli.main(["play", str(go1_policy), "--env", "go1-joystick", "--steps", "200"]) == 0
    out = capsys.readouterr().out
    lengths = [int(line.split(" over ")[1].split()[0]) for line in out.splitlines() if "episode " in line]
    assert sum(lengths) == 200, out
    assert "lin_vel_error" in out and "mean return" in out


def test_video_has_one_frame_per_step(go1_policy, tmp_path):
    video = tmp_path / "go1.mp4"
    assert cli.main(["play", str(go1_policy), "--steps", "30", "--video", str(video),
                     "--width", "160", "--height", "120"]) == 0
    assert mp4_frames(video)[:3] == (30, 160, 120)


def test_a_held_command_reaches_the_observation(go1_policy):
    from jaxrl.export.play import Playback

    playback = Playback(OnnxPolicy(go1_policy), command=(0.5, -0.2, 0.3))
    observations = []
    for event in playback.run(60):
        if event is None:
            observations.append(playback.twin.observation())
    commands = np.array(observations)[:, -3:]
    np.testing.assert_allclose(commands, np.tile([0.5, -0.2, 0.3], (len(commands), 1)), atol=1e-6)


@pytest.mark.parametrize("args, message", [
    (["--env", "cartpole-balance"], "trained on go1-joystick, not cartpole-balance"),
    (["--command", "1,0"], "vx,vy,yaw (3 numbers)"),
    (["--viewer"], "needs a display"),
])
def test_play_refuses_what_it_cannot_do(go1_policy, args, message, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert cli.main(["play", str(go1_policy), "--steps", "5", *args]) != 0
    assert message in capsys.readouterr().out


def test_a_command_for_an_env_without_one_is_refused(small_run, tmp_path, capsys):
    path = tmp_path / "cartpole.onnx"
    assert cli.main(["export", str(small_run("cartpole-balance")), "--out", str(path)]) == 0
    assert cli.main(["play", str(path), "--command", "1,0,0"]) != 0
    assert "takes no command" in capsys.readouterr().out

