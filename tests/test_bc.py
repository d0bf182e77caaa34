"""Behavioural cloning: learns the grasp from a few expert demos, and refuses data it cannot use."""

import dataclasses
import shutil
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import jaxrl_process, reproducible
from test_demos import cartpole_demo_file, cartpole_offline_config

from jaxrl import cli, config
from jaxrl.algos import bc
from jaxrl.data import demos as demo_data
from jaxrl.evaluation import add_success_interval
from jaxrl.export import ExportError
from jaxrl.logger import read_metrics
from jaxrl.schedule import best_score
from jaxrl.train import train

NUM_DEMOS = 20


@pytest.fixture(scope="module")
def grasp_demos(tmp_path_factory):
    """20 successful expert demos of grasp-lift-cube with a little action noise.

    Collected with the settings of test_grasp's CLI test, so the compiled round is shared through
    the persistent compilation cache.
    """
    path = tmp_path_factory.mktemp("demos") / "grasp.hdf5"
    assert cli.main(["collect", "grasp-lift-cube", "--episodes", str(NUM_DEMOS), "--num-envs", "6",
                     "--out", str(path), "--noise", "0.05", "--only-success"]) == 0
    return path


# BC of the lift from the grasp_demos, in 1,000 gradient steps, evaluated on 64 episodes at the start,
# halfway and at the end.
GRASP_BC = ["env.episode_length=150", "train.num_timesteps=1000", "train.iterations_per_call=250",
            "train.eval_every=500", "train.checkpoint_every=1000", "train.num_eval_envs=64",
            "train.tensorboard=false"]


@pytest.mark.slow
def test_bc_learns_to_lift_the_cube_from_20_demos(grasp_demos, tmp_path):
    run_dir = tmp_path / "run"
    jaxrl_process("train", "grasp-lift-cube", "bc", "--preset", "cpu", f"data={grasp_demos}",
                  f"train.run_dir={run_dir}", *GRASP_BC)
    evals = [r for r in read_metrics(run_dir / "metrics.jsonl") if "eval/success" in r]
    assert evals[0]["grad_steps"] == 0 and evals[0]["eval/success"] <= 0.1  # untrained: it does not lift
    assert evals[-1]["eval/success"] >= 0.8, evals
    assert evals[-1]["eval/success_ci_low"] < evals[-1]["eval/success"] <= evals[-1]["eval/success_ci_high"]
    assert evals[-1]["val/loss"] < evals[0]["val/loss"]

    # The checkpoint carries the normalization: `jaxrl eval` restores it and acts without the demo file.
    shutil.move(grasp_demos, tmp_path / "elsewhere.hdf5")
    try:
        out = jaxrl_process("eval", str(run_dir), "--episodes", "64", "--seed", "7")
    finally:
        shutil.move(tmp_path / "elsewhere.hdf5", grasp_demos)
    assert "gradient steps, 64 episodes" in out  # a bc checkpoint counts gradient steps
    success = float(out.split("eval/success ")[1].split()[0])
    assert success >= 0.8, out


def synthetic_demos(num_episodes=12, length=20, seed=0) -> demo_data.DemoSet:
    """Episodes of a smooth nonlinear map obs [3] -> action [2] in [-1, 1]."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(num_episodes * length, 3)).astype(np.float32)
    actions = np.tanh(np.stack([obs[:, 0] * obs[:, 1], np.sin(2 * obs[:, 2])], axis=-1)).astype(np.float32)
    return demo_data.make_demo_set(obs, actions, np.full(num_episodes, length), val_fraction=0.25)


class FlatState(NamedTuple):
    obs: jax.Array


class FlatEnv:
    """The spaces of an env with a flat observation [3] and 2 actions: all an offline learner reads."""

    action_size = 2

    @property
    def unwrapped(self):
        return self

    def reset(self, key):
        return FlatState(jnp.zeros(3))


@pytest.mark.parametrize("loss, obs_noise, dropout", [
    ("mse", 0.0, 0.0), ("nll", 0.0, 0.1), ("mse", 0.1, 0.0)])
def test_each_loss_and_augmentation_fits_held_out_episodes(loss, obs_noise, dropout):
    cfg = bc.Config(data="unused.hdf5", loss=loss, obs_noise=obs_noise, dropout=dropout, obs_keys=("state",),
                    batch_size=64, hidden_layer_sizes=(64, 64))
    demos = synthetic_demos()
    state = bc.init(jax.random.PRNGKey(0), FlatEnv(), cfg, demos)
    validation = jax.jit(lambda s: bc.validation_metrics(s, cfg, demos))
    steps = jax.jit(lambda s: jax.lax.scan(lambda s, _: bc.train_step(s, FlatEnv(), cfg, demos), s, None,
                                           length=300))
    before = validation(state)
    state, metrics = steps(state)
    after = validation(state)
    assert float(after["val/action_mse"]) < 0.5 * float(before["val/action_mse"])
    assert np.isfinite(np.asarray(metrics["loss/bc"])).all()
    action = bc.policy(bc.policy_params(state), demos.obs[:5])
    assert action.shape == (5, 2) and bool(jnp.all(jnp.abs(action) <= 1.0))
    if loss == "nll":  # a key samples around the mean
        sampled = bc.policy(bc.policy_params(state), demos.obs[:5], jax.random.PRNGKey(1))
        assert not np.allclose(sampled, action)


def test_best_ranks_by_success_then_lower_validation_loss():
    keys = bc.BEST_BY
    a = best_score({"eval/success": 0.9, "val/loss": 0.5}, keys)
    b = best_score({"eval/success": 0.9, "val/loss": 0.3}, keys)
    c = best_score({"eval/success": 0.95, "val/loss": 0.9}, keys)
    assert a < b < c
    assert best_score({"val/loss": 0.3}, keys) == (-0.3,)  # an env without a success metric


def test_success_interval_is_wilsons():
    results = add_success_interval({"eval/success": 0.9}, 100)
    # Wilson score interval of 90/100 at 95%: [0.8256, 0.9448].
    assert results["eval/success_ci_low"] == pytest.approx(0.8256, abs=1e-4)
    assert results["eval/success_ci_high"] == pytest.approx(0.9448, abs=1e-4)
    assert add_success_interval({"eval/episode_return": 1.0}, 100) == {"eval/episode_return": 1.0}


def test_cli_names_the_missing_or_unusable_data(grasp_demos, tmp_path, capsys):
    assert cli.main(["train", "grasp-lift-cube", "bc", f"run_dir={tmp_path / 'a'}"]) == cli.EXIT_USAGE
    assert "pass data=FILE.hdf5" in capsys.readouterr().out
    assert cli.main(["train", "grasp-lift-cube", "bc", f"data={grasp_demos}:sucess",
                     f"run_dir={tmp_path / 'b'}"]) == cli.EXIT_USAGE
    assert "did you mean 'success'" in capsys.readouterr().out
    # Demos of one env cannot train a policy of another; nothing is written.
    assert cli.main(["train", "cartpole-balance", "bc", f"data={grasp_demos}",
                     f"run_dir={tmp_path / 'c'}"]) == cli.EXIT_USAGE
    assert "cube_pos" in capsys.readouterr().out and not (tmp_path / "c").exists()



def resumed_run_matches_unbroken_run(cfg: config.RunConfig, tmp_path, stop_after: int = 1) -> None:
    """Train `cfg` (cartpole_offline_config's 4 calls) unbroken, and again interrupted after `stop_after`
    calls (as Ctrl-C would; after 1: between checkpoints) then resumed: the two metrics.jsonl hold the
    same records, wall-clock figures aside."""
    train(cfg, tmp_path / "unbroken")

    def interrupt(record):
        if record["call"] == stop_after:
            raise KeyboardInterrupt

    assert train(cfg, tmp_path / "resumed", on_record=interrupt).status == "interrupted"
    assert train(cfg, tmp_path / "resumed", resume=True).status == "finished"
    unbroken, resumed = (reproducible(read_metrics(tmp_path / name / "metrics.jsonl"))
                         for name in ("unbroken", "resumed"))
    assert [r["grad_steps"] for r in resumed] == [0, 10, 20, 30, 40]
    assert resumed == unbroken


def test_an_interrupted_run_resumes_to_the_unbroken_runs_numbers(tmp_path):
    data = cartpole_demo_file(tmp_path / "demos.hdf5")
    cfg = cartpole_offline_config("bc", data, "algo.obs_history=2", "algo.action_horizon=4",
                                  "algo.dropout=0.1", "algo.obs_noise=0.1")  # every random draw of training
    resumed_run_matches_unbroken_run(cfg, tmp_path)


# --- the options: dropout, observation history (LSTM), action chunks with temporal ensembling ---------

def fit(cfg: bc.Config, demos: demo_data.DemoSet, env, steps: int = 200):
    """(state after `steps` gradient steps from seed 0, its validation metrics)."""
    state = bc.init(jax.random.PRNGKey(0), env, cfg, demos)
    train = jax.jit(lambda s: jax.lax.scan(lambda s, _: bc.train_step(s, env, cfg, demos), s, None,
                                           length=steps)[0])
    state = train(state)
    return state, jax.jit(lambda s: bc.validation_metrics(s, cfg, demos))(state)


def test_dropout_changes_training_outputs_but_not_the_policy():
    cfg = bc.Config(data="unused.hdf5", obs_keys=("state",), batch_size=64, hidden_layer_sizes=(64, 64),
                    dropout=0.5)
    demos = synthetic_demos()
    state = bc.init(jax.random.PRNGKey(0), FlatEnv(), cfg, demos)
    params = bc.policy_params(state)
    window = jnp.asarray(demos.obs[:8, None])

    def predict(key=None):
        return np.asarray(bc._predict(state.params, state.policy_spec, window, key)[0])

    deterministic = predict()
    assert not np.allclose(predict(jax.random.PRNGKey(1)), deterministic)
    assert not np.allclose(predict(jax.random.PRNGKey(1)), predict(jax.random.PRNGKey(2)))
    without = bc.init(jax.random.PRNGKey(0), FlatEnv(), dataclasses.replace(cfg, dropout=0.0), demos)
    without = bc.policy_params(without)
    np.testing.assert_array_equal(bc.policy(params, demos.obs[:8]), bc.policy(without, demos.obs[:8]))


def previous_obs_demos(num_episodes=16, length=16, seed=0) -> demo_data.DemoSet:
    """Random observations [3]; the action is the previous step's observation (an episode's first
    repeats, as `windows` pads): one observation alone says nothing about it."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(num_episodes, length, 3)).astype(np.float32)
    previous = np.concatenate([obs[:, :1], obs[:, :-1]], axis=1)
    actions = np.tanh(previous[..., :2])
    return demo_data.make_demo_set(obs.reshape(-1, 3), actions.reshape(-1, 2), np.full(num_episodes, length),
                                   val_fraction=0.25)


def test_a_history_fits_what_one_observation_cannot():
    demos = previous_obs_demos()
    base = bc.Config(data="unused.hdf5", obs_keys=("state",), batch_size=64, hidden_layer_sizes=(32, 32),
                     learning_rate=3e-3)
    errors = {}
    for history, lstm in [(1, 0), (2, 0), (2, 16)]:
        _, metrics = fit(dataclasses.replace(base, obs_history=history, lstm_size=lstm), demos, FlatEnv())
        errors[history, lstm] = float(metrics["val/action_mse"])
    assert errors[1, 0] > 0.6, errors  # about the variance: the best guess is the mean
    assert errors[2, 0] < 0.2 * errors[1, 0] and errors[2, 16] < 0.2 * errors[1, 0], errors


@pytest.mark.parametrize("loss", ["mse", "nll"])
def test_chunk_loss_counts_only_the_rows_within_the_episode(loss):
    cfg = bc.Config(data="unused.hdf5", obs_keys=("state",), hidden_layer_sizes=(8,), loss=loss,
                    action_horizon=3)
    state = bc.init(jax.random.PRNGKey(0), FlatEnv(), cfg, synthetic_demos())
    rng = np.random.default_rng(0)
    window = rng.normal(size=(4, 1, 3)).astype(np.float32)
    chunks = rng.normal(size=(4, 3, 2)).astype(np.float32)
    valid = np.array([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1]], bool)

    def loss_of(chunks, valid=valid):
        return float(bc._loss(state.params, state.policy_spec, window, chunks, valid)[0])

    past_end = chunks.copy()
    past_end[~valid] = 100.0
    assert loss_of(past_end) == pytest.approx(loss_of(chunks), rel=1e-6)
    within = chunks.copy()
    within[1, 1] = 100.0
    assert loss_of(within) > loss_of(chunks) + 1.0
    # With every row valid it is the plain mean over rows.
    mean, std = bc._predict(state.params, state.policy_spec, window)
    per_row = (np.square(chunks - mean).mean(-1) if std is None else
               (0.5 * np.square((chunks - mean) / std) + np.log(std)).sum(-1))
    assert loss_of(chunks, np.ones_like(valid)) == pytest.approx(float(per_row.mean()), rel=1e-5)


@pytest.mark.parametrize("decay", [0.5, -0.3])
def test_the_running_ensemble_is_acts_weighted_mean(decay):
    horizon, steps = 4, 9
    chunks = np.random.default_rng(1).normal(size=(steps, 2, horizon, 3))  # [t, B, K, A]
    # ACT's formula: at step t the predictions for t of the chunks of steps t-K+1..t, oldest first,
    # weighted exp(-m i) with i = 0 the oldest.
    expected = []
    for t in range(steps):
        made = range(max(0, t - horizon + 1), t + 1)
        predictions = np.stack([chunks[s, :, t - s] for s in made])
        weights = np.exp(-decay * np.arange(len(predictions)))
        expected.append(np.einsum("i,iba->ba", weights / weights.sum(), predictions))

    sums, weights, actions = jnp.zeros((2, horizon - 1, 3)), jnp.zeros((2, horizon - 1)), []
    for t in range(steps):
        action, sums, weights = bc.ensemble(sums, weights, jnp.asarray(chunks[t], jnp.float32), decay)
        actions.append(action)
    np.testing.assert_allclose(np.stack(actions), np.stack(expected), rtol=1e-5, atol=1e-6)


class DictEnv:
    """An env with a dict observation whose flat policy vector orders the entries a, b."""

    action_size = 2
    state_layout = (("a", 2), ("b", 1))

    @property
    def unwrapped(self):
        return self

    def reset(self, key):
        return FlatState({"a": jnp.zeros(2), "b": jnp.zeros(1), "state": jnp.zeros(3)})


# |a - b| allowed between the exported fn and act, two float32 programs compiled apart: each may order a
# sum differently, by about sqrt(n) eps for n unit-size terms. Per step an action is at most 4 sums deep
# (the LSTM's two matmuls, the hidden layer, the head) of at most 16 terms, and the LSTM carries each
# step's error into the next over the 6 steps of an episode: 6 x 4 x sqrt(16) x eps = 1.1e-5.
EXPORTED_FN_ATOL = 6 * 4 * np.sqrt(16) * np.finfo(np.float32).eps


@pytest.mark.parametrize("history, lstm, horizon, loss", [
    (1, 0, 1, "mse"), (3, 0, 1, "mse"), (1, 0, 4, "nll"), (3, 8, 4, "mse"), (2, 8, 3, "nll")])
def test_exported_fn_replays_act_from_zero_memory_each_episode(history, lstm, horizon, loss):
    demos = synthetic_demos()
    # The policy reads the entries b, a (an HDF5 file's alphabetical order is not the env's).
    demos = demo_data.make_demo_set(np.asarray(demos.obs)[:, ::-1], demos.actions, np.full(12, 20),
                                    obs_keys=("b", "a"), obs_shapes=[(1,), (2,)])
    cfg = bc.Config(data="unused.hdf5", obs_keys=("b", "a"), hidden_layer_sizes=(16,), loss=loss,
                    obs_history=history, lstm_size=lstm, action_horizon=horizon, ensemble_decay=0.2)
    params = bc.policy_params(bc.init(jax.random.PRNGKey(0), DictEnv(), cfg, demos))
    steps, batch = 6, 2
    flat = np.random.default_rng(2).normal(size=(2, steps, batch, 3)).astype(np.float32)  # [episode, t, B, 3]
    fn = jax.jit(bc.export_policy(params))
    act, policy = jax.jit(bc.act), jax.jit(bc.policy)

    def obs(x):
        return {"a": x[:, :2], "b": x[:, 2:], "state": x}

    if history == horizon == 1:  # stateless: the memoryless policy
        assert bc.export_memory_size(params) == 0
        np.testing.assert_allclose(fn(flat[0, 0]), policy(params, obs(flat[0, 0])), atol=EXPORTED_FN_ATOL)
        return
    size = bc.export_memory_size(params)
    continued = None
    for episode in flat:
        memory, flat_memory = bc.initial_memory(params, obs(episode[0])), np.zeros((batch, size), np.float32)
        for t, x in enumerate(episode):
            action, memory = act(params, obs(x), memory, jax.random.PRNGKey(t))
            exported, flat_memory = fn(x, flat_memory)
            np.testing.assert_allclose(exported, action, atol=EXPORTED_FN_ATOL)
            if t == 0:  # an episode's first step: the memoryless policy
                np.testing.assert_allclose(action, policy(params, obs(x)), atol=EXPORTED_FN_ATOL)
                if continued is not None:  # the memory of the last episode would act otherwise
                    assert not np.allclose(fn(x, continued)[0], action, atol=1e-4)
        continued = flat_memory


def test_export_names_an_entry_the_env_does_not_give():
    cfg = bc.Config(data="unused.hdf5", obs_keys=("b", "a"), hidden_layer_sizes=(8,))
    demos = demo_data.make_demo_set(np.zeros((4, 3)), np.zeros((4, 2)), [2, 2], obs_keys=("b", "a"),
                                    obs_shapes=[(1,), (2,)], val_fraction=0.0)
    params = bc.policy_params(bc.init(jax.random.PRNGKey(0), DictEnv(), cfg, demos))
    with pytest.raises(ExportError, match="'b'"):
        bc.export_policy(params.replace(spec=dataclasses.replace(params.spec, state_layout=(("a", 2),))))


@pytest.mark.parametrize("setting, message", [
    ({"dropout": 1.0}, "dropout"), ({"obs_history": 0}, "obs_history"), ({"lstm_size": -1}, "lstm_size"),
    ({"action_horizon": 0}, "action_horizon"), ({"action_horizon": 101, "ensemble_decay": 1.0}, "overflow")])
def test_settings_that_cannot_run_are_named(setting, message):
    with pytest.raises(ValueError, match=message):
        bc.validate(bc.Config(data="unused.hdf5", **setting))
