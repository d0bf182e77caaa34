"""Dreamer's world model trained alone from recorded episodes: the steps it reads from HDF5, that it
learns to predict open loop, that its runs hold no policy, and that a Dreamer run starts from it and from
a replay holding those episodes."""

import dataclasses

import jax
import numpy as np
import pytest
import toy_envs
from conftest import jaxrl_process
from tiny_runs import TINY_DREAMER

import envs_mjx
from jaxrl import cli, config
from jaxrl.algos import dreamer
from jaxrl.data import sequences
from jaxrl.data.collect import collect, uniform_random
from jaxrl.data.writer import DemoWriter
from jaxrl.logger import read_metrics
from jaxrl.train import train

SIZES = [word for word in TINY_DREAMER if word.split("=")[0] in (
    "algo.deter", "algo.hidden", "algo.stoch", "algo.classes", "algo.layers")]


def _record(path, env, episodes: int, seed: int = 0) -> None:
    with DemoWriter(path, "step-counter", config.as_dict(env.config), env.dt) as writer:
        collect(env, uniform_random(env.action_size), episodes, writer, num_envs=episodes,
                key=jax.random.PRNGKey(seed), sample=True)


def test_recorded_episodes_become_the_steps_dreamer_stores_and_time_limits_are_not_terminations(tmp_path):
    # StepCounter's episodes end by the env at a multiple of `horizon`: 3 (before the limit of 5) or
    # never (the limit ends them).
    ended = toy_envs.StepCounter(toy_envs.StepCounterConfig(episode_length=5, horizon=3))
    limited = toy_envs.StepCounter(toy_envs.StepCounterConfig(episode_length=5, horizon=100))
    _record(tmp_path / "ended.hdf5", ended, 4)
    _record(tmp_path / "limited.hdf5", limited, 4, seed=1)
    data = sequences.load_sequences(f"{tmp_path / 'ended.hdf5'},{tmp_path / 'limited.hdf5'}", "all", "state",
                                    0.25, 0)
    assert (data.num_episodes, data.num_train_episodes) == (8, 6)
    steps = jax.tree.map(lambda *parts: np.concatenate(parts), *jax.device_get((data.train, data.val)))
    count = steps["obs"][:, 0]  # the step count arrived at: a step holds its successor observation
    first = count == 1
    np.testing.assert_array_equal(steps["is_first"], first)
    np.testing.assert_array_equal(count[1:], np.where(first[1:], 1, count[:-1] + 1))  # each step once
    episode_ends = np.r_[first[1:], True]
    np.testing.assert_array_equal(steps["is_terminal"], episode_ends & (count == 3))  # not at count 5
    assert sorted(np.unique(count[episode_ends])) == [3, 5]
    assert np.all(np.abs(steps["action"]) <= 1) and np.unique(steps["action"]).size > 20  # random actions
    np.testing.assert_array_equal(steps["reward"], 1.0)

    chunks = sequences.split_chunks(data.train, 4)
    assert chunks["obs"].shape == (sequences.num_steps(data.train) // 4, 4, 2)
    drawn = jax.device_get(sequences.sample_chunks(data.train, jax.random.PRNGKey(0), 64, 4))
    going_on = drawn["is_first"][:, 1:] == 0  # within a chunk, the count goes on until an episode starts
    np.testing.assert_array_equal(np.diff(drawn["obs"][..., 0], axis=1)[going_on], 1.0)


def test_a_prefilled_replay_holds_the_recorded_steps_in_order_and_learning_starts_at_once(tmp_path):
    env = toy_envs.StepCounter(toy_envs.StepCounterConfig(episode_length=5, horizon=100))
    _record(tmp_path / "episodes.hdf5", env, 21)  # 105 steps: 13 rows of 8 envs, one step left out
    steps = sequences.load_for_env(str(tmp_path / "episodes.hdf5"), "all", "state", 0.0, 0, env).train
    cfg = dreamer.Config(num_envs=8, unroll_length=2, batch_size=4, batch_length=8, train_ratio=4,
                         min_replay_size=104, replay_capacity=256, deter=16, hidden=16, stoch=4, classes=4,
                         layers=1, imag_horizon=5)
    batched = envs_mjx.wrap_for_training(env, episode_length=5)
    state = dreamer.prefill(dreamer.init(jax.random.PRNGKey(0), batched, cfg), steps)
    state, metrics = jax.jit(lambda s: dreamer.train_step(s, batched, cfg))(state)
    assert int(state.replay.size) == 104 + 16 and metrics["loss/reconstruction"] > 0  # learned at once
    stored = jax.tree.map(np.asarray, state.replay.data)  # [rows, envs, ...]
    recorded = jax.tree.map(np.asarray, steps)
    for name in sequences.STEP_FIELDS:  # env e's column holds recorded steps 13e .. 13e + 12
        np.testing.assert_array_equal(stored[name][:13].swapaxes(0, 1).reshape(104, *stored[name].shape[2:]),
                                      recorded[name][:104])
    np.testing.assert_array_equal(stored["is_first"][13], 1.0)  # the live episodes start after them
    np.testing.assert_array_equal(stored["obs"][13:15, :, 0], [[1.0] * 8, [2.0] * 8])
    too_many = dataclasses.replace(cfg, replay_capacity=96, min_replay_size=64)
    with pytest.raises(ValueError, match="fill 13 rows of the replay's 8 env columns, which holds 12"):
        dreamer.prefill(dreamer.init(jax.random.PRNGKey(0), batched, too_many), steps)


def _val_records(run_dir) -> list[dict]:
    return [record for record in read_metrics(run_dir / "metrics.jsonl") if "val/loss" in record]


def test_a_world_model_of_cartpole_predicts_held_out_episodes_open_loop(tmp_path, capsys):
    """Random actions tip the pole: after training, imagining 8 steps of held-out episodes from their
    actions alone beats predicting that the last observed state stays, by a wide margin (trained
    2,000 steps: 0.33 and 0.41 against 0.97 with seeds 0 and 1; untrained about 8)."""
    episodes, run_dir = tmp_path / "episodes.hdf5", tmp_path / "model"
    settings = ["env.physics_steps=4", "env.episode_length=100"]
    assert cli.main(["collect", "cartpole-balance", "--policy", "random", "--episodes", "24", "--out",
                     str(episodes), *settings]) == 0
    jaxrl_process("train", "cartpole-balance", "world_model", f"data={episodes}", *settings,
                  "algo.deter=64", "algo.hidden=32", "algo.stoch=8", "algo.classes=8", "algo.layers=1",
                  "algo.batch_length=16", "algo.imag_horizon=8", "algo.open_loop_context=4",
                  "algo.model_lr=1e-3", "train.num_timesteps=2000", "train.eval_every=1000",
                  "train.iterations_per_call=500", "train.tensorboard=false", f"train.run_dir={run_dir}")
    untrained, *_, trained = _val_records(run_dir)
    capsys.readouterr()
    at_50_hz = ["train", "cartpole-balance", "world_model", f"data={episodes}", "env.physics_steps=2"]
    assert cli.main(at_50_hz) == 2
    assert ("recorded with env.physics_steps=4, but this run's env has env.physics_steps=2: train with "
            "env.physics_steps=4") in capsys.readouterr().out
    assert cli.main(["train", "pendulum-swingup", "world_model", f"data={episodes}", *settings]) == 2
    assert "recorded in cartpole-balance, another env than this run's" in capsys.readouterr().out
    assert trained["val/reconstruction"] < 0.1 * untrained["val/reconstruction"]
    assert trained["val/open_loop_obs_error"] < 0.6 * trained["val/hold_last_obs_error"], trained
    assert trained["val/open_loop_reward_error"] < untrained["val/open_loop_reward_error"]


def test_a_dreamer_run_starts_from_a_world_model_run_of_its_sizes_which_holds_no_policy(tmp_path, monkeypatch,
                                                                                       capsys):
    name = toy_envs.register(monkeypatch, "point-mass", "PointMass")
    episodes, model_run = tmp_path / "episodes.hdf5", tmp_path / "model"
    assert cli.main(["collect", name, "--policy", "random", "--episodes", "16", "--out", str(episodes),
                     "env.episode_length=50"]) == 0
    assert cli.main(["train", name, "world_model", f"data={episodes}", "env.episode_length=50", *SIZES,
                     "algo.batch_length=16", "algo.model_lr=1e-3", "train.num_timesteps=400",
                     "train.eval_every=400", "train.iterations_per_call=200", "train.tensorboard=false",
                     f"train.run_dir={model_run}"]) == 0
    untrained = _val_records(model_run)[0]
    capsys.readouterr()
    assert cli.main(["export", str(model_run), "--out", str(tmp_path / "policy.onnx")]) == 2
    assert "holds no policy to run: start Dreamer from it" in capsys.readouterr().out

    words = [*TINY_DREAMER, "train.iterations_per_call=4", "train.num_timesteps=64", "train.eval_every=64",
             "train.num_eval_envs=4", "train.tensorboard=false", "env.episode_length=50"]
    started = [f"train.init_from={model_run}", f"train.prefill={episodes}", "algo.replay_capacity=1024"]
    assert train(config.load(name, "dreamer", overrides=[*words, *started]),
                 tmp_path / "dreamer").status == "finished"
    first_updates = read_metrics(tmp_path / "dreamer" / "metrics.jsonl")[1]
    recorded = sequences.num_steps(sequences.load_sequences(str(episodes), "all", "state", 0.0, 0).train)
    # Whole rows of them, then 16 steps an iteration: a call's record holds the mean of its 4 iterations.
    assert first_updates["replay_size"] == recorded // 8 * 8 + 16 * (1 + 2 + 3 + 4) / 4
    # Two updates of an untrained model would leave its reconstruction near the untrained one's.
    assert 0 < first_updates["loss/reconstruction"] < 0.2 * untrained["val/reconstruction"]
    with pytest.raises(config.ConfigError, match="another shape .*deter 16 there, 32 here"):
        other_size = [*words, "algo.deter=32", f"train.init_from={model_run}"]
        train(config.load(name, "dreamer", overrides=other_size), tmp_path / "other-size")
