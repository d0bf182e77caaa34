"""Peers' envs under our learners (envs_mjx.peers): brax's and MuJoCo Playground's own env code, stepped
through our contract, trained, exported, and refused where they cannot go."""

# isort: off
import envs_mjx  # before brax and Playground: our quiet import of MJX is the one cached
# isort: on

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from brax import envs as brax_envs
from conftest import jaxrl_process
from mujoco_playground._src import mjx_env as playground_mjx_env
from mujoco_playground._src import registry as playground_registry

from envs_mjx.registry import NoPlainTwinError, UnknownEnvError
from jaxrl import cli, config
from jaxrl.logger import read_metrics

EPISODE = 6  # control steps: one time-out inside the rollout below
ACTIONS = jnp.linspace(-0.6, 0.6, 9)[:, None]


def _their_env(name):
    if name.startswith("brax:"):
        return brax_envs.get_environment(name.removeprefix("brax:"))
    return playground_registry.load(name.removeprefix("playground:"), config_overrides={"impl": "jax"})


@pytest.mark.parametrize("name", ["brax:inverted_pendulum", "playground:CartpoleBalance"])
def test_a_peer_env_steps_as_its_own_code_steps_it(name):
    ours, theirs = envs_mjx.make(name), _their_env(name)

    @jax.jit
    def both(key):
        def step(carry, action):
            mine, their_state = carry
            mine, their_state = ours.step(mine, action), theirs.step(their_state, action)
            return (mine, their_state), (mine.obs, mine.reward, mine.done, their_state.obs,
                                         their_state.reward, their_state.done)
        return jax.lax.scan(step, (ours.reset(key), theirs.reset(key)), ACTIONS)[1]

    # One program computes both, but XLA may fuse the two copies differently: float32 rounding apart.
    obs, reward, done, their_obs, their_reward, their_done = both(jax.random.PRNGKey(3))
    np.testing.assert_allclose(obs, their_obs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(reward, their_reward, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(done, their_done)


def test_our_wrappers_end_a_peer_envs_episodes_with_truncation_final_obs_and_its_metrics_summed():
    env = envs_mjx.make("brax:inverted_pendulum")
    wrapped = envs_mjx.wrap_for_training(env, EPISODE)
    state = wrapped.reset(jax.random.PRNGKey(3)[None])
    rewards, step = [], jax.jit(wrapped.step)
    for action in ACTIONS[:EPISODE]:
        before = state
        state = step(state, action[None])
        rewards.append(float(state.reward[0]))
        if state.done[0]:
            break
    assert float(state.done[0]) == 1.0
    # A time-out is truncation; an episode the env ends (the pendulum falls) is not.
    assert float(state.info["truncation"][0]) == (1.0 if len(rewards) == EPISODE else 0.0)
    assert state.info["episode_metrics"]["return"][0] == pytest.approx(sum(rewards), rel=1e-5)
    assert set(state.info["episode_metrics"]) >= set(before.metrics)  # brax's own metrics, summed
    expected_final = env.step(jax.tree.map(lambda x: x[0], before), ACTIONS[len(rewards) - 1]).obs
    np.testing.assert_allclose(state.info["final_obs"][0], expected_final, rtol=1e-5, atol=1e-6)


def test_env_settings_reach_the_peers_constructor_and_are_checked():
    cfg = config.load("brax:ant", "ppo",
                      overrides=["env.ctrl_cost_weight=0.1", "env.healthy_z_range=[0.3, 1]"])
    env = envs_mjx.make("brax:ant", cfg.env)
    assert env.peer_env._ctrl_cost_weight == 0.1 and env.peer_env._healthy_z_range == (0.3, 1.0)
    assert cfg.env.episode_length == 1000 and cfg.env.backend == "generalized"  # brax's own default
    with pytest.raises(config.ConfigError, match="did you mean 'ctrl_cost_weight'"):
        config.load("brax:ant", "ppo", overrides=["env.ctrl_cost_weigth=0.1"])
    assert config.load("playground:CartpoleBalance", "sac").env.impl == "jax"  # Playground's default: warp


@pytest.mark.parametrize("name, words", [
    ("brax:antt", "did you mean 'brax:ant'"),
    ("bax:ant", "did you mean 'brax'"),
    ("playground:CartpoleBalanse", "did you mean 'playground:CartpoleBalance'"),
])
def test_an_unknown_peer_env_is_named_with_the_closest(name, words):
    with pytest.raises(UnknownEnvError, match=words):
        envs_mjx.config_class(name)


def test_a_playground_robot_without_its_meshes_says_how_to_fetch_them(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(playground_mjx_env, "MENAGERIE_PATH", tmp_path / "mujoco_menagerie")
    with pytest.raises(UnknownEnvError, match="git clone https://github.com/google-deepmind/mujoco_menagerie"):
        envs_mjx.make("playground:Go1JoystickFlatTerrain")
    assert not (tmp_path / "mujoco_menagerie").exists()  # Playground's own clone never started
    assert cli.main(["train", "playground:Go1JoystickFlatTerrain", "ppo"]) == cli.EXIT_USAGE
    out = capsys.readouterr().out
    assert "dm_control suite" in out and "Traceback" not in out


# The settings benchmarks/peer_envs.py compares with brax's PPO: there ours reached the maximum eval
# return, 1000, at 102,400 env steps with seeds 0-2 (from 3-16 untrained; 64-496 at half of it).
PPO_SETTINGS = ["algo.num_envs=128", "algo.unroll_length=20", "algo.num_minibatches=4",
                "algo.discounting=0.97", "algo.vf_loss_coefficient=0.5", "train.iterations_per_call=20",
                "train.eval_every=51200", "train.num_eval_envs=16", "train.tensorboard=false",
                "train.num_timesteps=102400"]


@pytest.fixture(scope="module")
def brax_run(tmp_path_factory):
    """`jaxrl train brax:inverted_pendulum ppo`, as a user runs it."""
    run_dir = tmp_path_factory.mktemp("brax-ppo") / "run"
    jaxrl_process("train", "brax:inverted_pendulum", "ppo", *PPO_SETTINGS, f"train.run_dir={run_dir}")
    return run_dir


@pytest.mark.slow
def test_ppo_balances_brax_inverted_pendulum(brax_run):
    records = read_metrics(brax_run / "metrics.jsonl")
    evals = {r["env_steps"]: r["eval/episode_return"] for r in records if "eval/episode_return" in r}
    assert sorted(evals) == [0, 51_200, 102_400]
    assert evals[0] < 100 and evals[102_400] > 900


def test_a_peer_envs_policy_exports_but_play_says_it_has_no_twin(brax_run, tmp_path, capsys):
    """Export restores the run from its config.yaml (the peer's settings class made anew) and checkpoint."""
    out = tmp_path / "policy.onnx"
    assert cli.main(["export", str(brax_run), "--out", str(out)]) == 0
    assert out.stat().st_size > 0
    assert cli.main(["play", str(out), "--steps", "10"]) == cli.EXIT_USAGE
    printed = capsys.readouterr().out
    assert "brax:inverted_pendulum is a peer's env: it has no twin on plain MuJoCo" in printed
    with pytest.raises(NoPlainTwinError):
        envs_mjx.plain_class("playground:CartpoleBalance")
