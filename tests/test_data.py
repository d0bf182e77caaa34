"""Demonstration files: the HDF5 format, its checks, reading, collecting with an env, the CLI."""

import contextlib
import signal

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_demos import cartpole_demo_file, cartpole_offline_config

import envs_mjx
from envs_mjx.classic.cartpole import CartpoleBalance, CartpoleConfig
from jaxrl import algos, cli, config
from jaxrl.checkpoint import Checkpointer
from jaxrl.data import reader
from jaxrl.data.collect import CollectError, collect, memoryless
from jaxrl.data.inspect import inspect
from jaxrl.data.reader import load
from jaxrl.data.validate import DatasetError, validate
from jaxrl.data.writer import DemoWriter
from jaxrl.runs import restore_run
from jaxrl.train import train

EPISODE_LENGTH = 50
NUM_ENVS = 8
CART_LIMIT = 0.3  # metres from the centre where the test envs below end an episode
ENV_ARGS = {"env_name": "cartpole-balance", "env_config": {"episode_length": EPISODE_LENGTH},
            "control_dt": 0.01}


# --- synthetic demos for the format -------------------------------------------------------------

def synthetic_demo(steps: int, seed: int, success: bool = True) -> dict:
    rng = np.random.default_rng(seed)
    observations = {"a": rng.normal(size=(steps + 1, 3)), "b": rng.normal(size=(steps + 1, 2, 2))}
    return {"obs": {k: v[:-1] for k, v in observations.items()},
            "next_obs": {k: v[1:] for k, v in observations.items()},
            "actions": rng.uniform(-1, 1, size=(steps, 2)), "rewards": rng.normal(size=steps),
            "dones": np.eye(steps)[-1], "success": success}


def write_file(path, demos, env_name="cartpole-balance"):
    with DemoWriter(path, env_name, ENV_ARGS["env_config"], ENV_ARGS["control_dt"]) as writer:
        for demo in demos:
            writer.add(**demo)
    return path


DEMOS = [synthetic_demo(5, 0, True), synthetic_demo(7, 1, False), synthetic_demo(4, 2, True)]


@pytest.fixture
def good_file(tmp_path):
    return write_file(tmp_path / "demos.hdf5", DEMOS)


def test_written_demos_read_back_identical(good_file):
    with h5py.File(good_file) as file:
        assert sorted(file["data"]) == ["demo_0", "demo_1", "demo_2"]
        assert file["data"].attrs["total"] == 16
        assert [file["data"][f"demo_{i}"].attrs["num_samples"] for i in range(3)] == [5, 7, 4]
        assert file["data/demo_0/actions"].compression == "gzip"
    data = load(good_file)
    assert isinstance(data.actions, jax.Array)  # on the (CPU) device
    for key in ("a", "b"):
        np.testing.assert_array_equal(data.obs[key], np.concatenate([d["obs"][key] for d in DEMOS]).astype(
            np.float32))
        np.testing.assert_array_equal(data.next_obs[key], np.concatenate([d["next_obs"][key] for d in DEMOS])
                                      .astype(np.float32))
    for key in ("actions", "rewards", "dones"):
        np.testing.assert_array_equal(getattr(data, key),
                                      np.concatenate([d[key] for d in DEMOS]).astype(np.float32))
    np.testing.assert_array_equal(data.episode_starts, [0, 5, 12])
    np.testing.assert_array_equal(data.episode_lengths, [5, 7, 4])
    np.testing.assert_array_equal(data.episode_success, [True, False, True])
    assert (data.num_samples, data.num_episodes) == (16, 3)


def test_only_success_and_obs_keys_select(good_file):
    data = load(good_file, obs_keys=["b"], only_success=True)
    assert list(data.obs) == list(data.next_obs) == ["b"]
    np.testing.assert_array_equal(data.episode_lengths, [5, 4])
    np.testing.assert_array_equal(data.episode_starts, [0, 5])
    np.testing.assert_array_equal(data.actions[5:], DEMOS[2]["actions"].astype(np.float32))
    with pytest.raises(DatasetError, match=r"demos.hdf5: data/demo_0 has no observation 'c'; its observation "
                                           r"keys are: a, b"):
        load(good_file, obs_keys=["a", "c"])


def test_files_are_concatenated_and_must_agree(good_file, tmp_path):
    other = write_file(tmp_path / "more.hdf5", [synthetic_demo(6, 3, True)])
    data = load([good_file, other])
    np.testing.assert_array_equal(data.episode_starts, [0, 5, 12, 16])
    np.testing.assert_array_equal(data.actions[16:], synthetic_demo(6, 3)["actions"].astype(np.float32))
    wider = synthetic_demo(3, 4)
    wider["actions"] = np.zeros((3, 5))
    odd = write_file(tmp_path / "odd.hdf5", [wider])
    with pytest.raises(DatasetError, match=r"odd.hdf5: actions has samples of shape \(5,\) but "
                                           r".*demos.hdf5's have \(2,\)"):
        load([good_file, odd])


def test_large_dataset_stays_on_the_host(good_file, monkeypatch):
    monkeypatch.setattr(reader, "_device_memory_stats", lambda: {"bytes_limit": 1000, "bytes_in_use": 0})
    data = load(good_file)  # ~500 bytes: more than half of the free 1000
    assert isinstance(data.actions, np.ndarray) and isinstance(data.obs["a"], np.ndarray)
    assert reader.fits_on_device(400, {"bytes_limit": 1000, "bytes_in_use": 100})
    assert not reader.fits_on_device(500, {"bytes_limit": 1000, "bytes_in_use": 100})


def test_append_continues_numbering_and_rejects_another_env(good_file):
    with DemoWriter(good_file, "cartpole-balance", {}, 0.01, append=True) as writer:
        assert writer.add(**synthetic_demo(3, 5)) == "demo_3"
        assert writer.add(**synthetic_demo(2, 6)) == "demo_4"
    validate(good_file)
    with h5py.File(good_file) as file:
        assert file["data"].attrs["total"] == 16 + 5
    with pytest.raises(DatasetError, match="holds demos of env 'cartpole-balance', not 'pendulum-swingup'"):
        DemoWriter(good_file, "pendulum-swingup", {}, 0.01, append=True)
    with pytest.raises(DatasetError, match="already exists"):
        DemoWriter(good_file, "cartpole-balance", {}, 0.01)
    with DemoWriter(good_file, "cartpole-balance", {}, 0.01, append=True) as writer:
        narrower = synthetic_demo(3, 7)
        del narrower["obs"]["b"], narrower["next_obs"]["b"]
        with pytest.raises(DatasetError, match=r"observation keys \['a'\] but the file's demos have "
                                               r"\['a', 'b'\]"):
            writer.add(**narrower)
        assert writer.num_added == 0


@pytest.fixture
def ctrl_c_raises():
    """SIGINT raises KeyboardInterrupt, as in a terminal: a shell starts background jobs ignoring it."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_demo_is_written_whole_or_not_at_all(tmp_path, monkeypatch, ctrl_c_raises):
    path = write_file(tmp_path / "demos.hdf5", DEMOS[:1])
    create_dataset = h5py.Group.create_dataset
    calls = []

    def interrupted_midway(group, name, **options):  # Ctrl-C arrives between two arrays of a demo
        calls.append(name)
        if len(calls) == 2:
            signal.raise_signal(signal.SIGINT)
        return create_dataset(group, name, **options)

    monkeypatch.setattr(h5py.Group, "create_dataset", interrupted_midway)
    with DemoWriter(path, "cartpole-balance", {}, 0.01, append=True) as writer:
        with pytest.raises(KeyboardInterrupt):
            writer.add(**DEMOS[1])
    assert len(calls) == 7  # every array of the demo was written before the interrupt was delivered
    assert load(path).num_episodes == 2

    def disk_full(group, name, **options):
        if name == "actions":
            raise OSError("no space left on device")
        return create_dataset(group, name, **options)

    monkeypatch.setattr(h5py.Group, "create_dataset", disk_full)
    with DemoWriter(path, "cartpole-balance", {}, 0.01, append=True) as writer:
        with pytest.raises(OSError, match="no space"):
            writer.add(**DEMOS[2])
    with h5py.File(path) as file:
        assert sorted(file["data"]) == ["demo_0", "demo_1"]  # the half-written demo_2 was removed
    validate(path)


def _delete(path, key):
    del path[key]


def _truncate_obs(file):
    values = file["data/demo_3/obs/a"][:-1]
    del file["data/demo_3/obs/a"]
    file["data/demo_3/obs/a"] = values


def _nan_action(file):
    file["data/demo_0/actions"][2, 1] = np.nan


def _integer_obs(file):
    values = file["data/demo_2/obs/b"][()]
    del file["data/demo_2/obs/b"]
    file["data/demo_2/obs/b"] = values.astype(np.int32)


MALFORMED = [
    (lambda f: _delete(f, "data/demo_1/actions"),
     r"demos.hdf5: data/demo_1 has no 'actions'; a robomimic demo needs obs/"),
    (_truncate_obs, r"demos.hdf5: data/demo_3/obs/a has 5 rows but actions has 6"),
    (_nan_action, r"demos.hdf5: data/demo_0/actions has NaN at row 2"),
    (_integer_obs, r"data/demo_2/obs/b has dtype int32; observations must be floats"),
    (lambda f: _delete(f, "data"), r"demos.hdf5: no 'data' group"),
    (lambda f: f["data"].attrs.__setitem__("total", 3), r"data says total=3 but its demos hold 22 samples"),
]


@pytest.mark.parametrize("damage, message", MALFORMED)
def test_malformed_files_are_rejected_naming_demo_and_key(tmp_path, damage, message):
    path = write_file(tmp_path / "demos.hdf5", DEMOS + [synthetic_demo(6, 9)])
    validate(path)  # intact
    with h5py.File(path, "a") as file:
        damage(file)
    for check in (validate, load, inspect):
        with pytest.raises(DatasetError, match=message):
            check(path)


def test_a_file_that_is_not_hdf5_is_rejected(tmp_path):
    path = tmp_path / "notes.hdf5"
    path.write_text("not a dataset")
    with pytest.raises(DatasetError, match="notes.hdf5: not a readable HDF5 file"):
        load(path)
    with pytest.raises(DatasetError, match="missing.hdf5: no such file"):
        validate(tmp_path / "missing.hdf5")


def test_cli_inspect_reports_a_good_file_and_rejects_a_bad_one(good_file, tmp_path, capsys):
    assert cli.main(["data", "inspect", str(good_file)]) == 0
    out = capsys.readouterr().out
    assert "3 demos, 16 samples, success 66.7%" in out
    assert "episode length: min 4, mean 5.3, max 7" in out
    assert "obs/b" in out and "(2, 2)" in out and "cartpole-balance" in out
    report = inspect(good_file)
    assert report["keys"]["actions"]["max"] == pytest.approx(max(d["actions"].max() for d in DEMOS), abs=1e-6)
    bad = write_file(tmp_path / "bad.hdf5", DEMOS)
    with h5py.File(bad, "a") as file:
        _nan_action(file)
    assert cli.main(["data", "inspect", str(bad)]) == cli.EXIT_USAGE
    out = capsys.readouterr().out
    assert "error:" in out and "data/demo_0/actions has NaN at row 2" in out and "Traceback" not in out


# --- collecting in an env -----------------------------------------------------------------------

class CartLeavesCentre(CartpoleBalance):
    """Cart-pole whose episode ends (a failure) once the cart is CART_LIMIT from the centre."""

    def step(self, state, action):
        state = super().step(state, action)
        return state.replace(done=(jnp.abs(state.data.qpos[0]) > CART_LIMIT).astype(jnp.float32))


class CartReachesRight(CartpoleBalance):
    """Succeeds when the cart passes +CART_LIMIT, ends (failed) past -CART_LIMIT; dict observations."""

    obs_parts = ("state",)  # "privileged" is left out of the demos

    def reset(self, key):
        state = super().reset(key)
        return state.replace(metrics=dict(state.metrics, success=jnp.zeros(())))

    def step(self, state, action):
        state = super().step(state, action)
        cart = state.data.qpos[0]
        return state.replace(done=(cart < -CART_LIMIT).astype(jnp.float32),
                             metrics=dict(state.metrics, success=(cart > CART_LIMIT).astype(jnp.float32)))

    def observe(self, data):
        return {"state": super().observe(data), "privileged": data.qvel}


def balance(obs):
    return jnp.clip(-obs[:1] - 0.5 * obs[3:4], -1.0, 1.0)


def push_away(obs):
    """Push the cart further from the centre on the side it starts."""
    return jnp.where(obs[:1] >= 0, 1.0, -1.0)


def push_away_dict(obs):
    return push_away(obs["state"])


ENV_CONFIG = CartpoleConfig(episode_length=EPISODE_LENGTH)


@pytest.fixture(scope="module")
def envs():
    """The same env objects for every test, so each collection compiles once (make_round is cached)."""
    return {"cartpole": envs_mjx.make("cartpole-balance", ENV_CONFIG), "leaves": CartLeavesCentre(ENV_CONFIG),
            "right": CartReachesRight(ENV_CONFIG)}


def collect_into(path, env, per_env_policy, episodes, seed=0, append=False, **options):
    with DemoWriter(path, "cartpole-balance", config.as_dict(env.config), env.dt, append=append) as writer:
        stats = collect(env, memoryless(per_env_policy), episodes, writer, num_envs=NUM_ENVS,
                        key=jax.random.PRNGKey(seed), **options)
    return stats


def read_demos(path) -> list[dict]:
    with h5py.File(path) as file:
        names = sorted(file["data"], key=lambda name: int(name.split("_")[1]))
        return [{"name": name, "obs": {k: v[()] for k, v in file["data"][name]["obs"].items()},
                 "next_obs": {k: v[()] for k, v in file["data"][name]["next_obs"].items()},
                 **{k: file["data"][name][k][()] for k in ("actions", "rewards", "dones")},
                 "success": bool(file["data"][name].attrs["success"])} for name in names]


@pytest.fixture(scope="module")
def cartpole_demos(envs, tmp_path_factory):
    path = tmp_path_factory.mktemp("collect") / "cartpole.hdf5"
    stats = collect_into(path, envs["cartpole"], balance, 12, noise=0.1)
    return path, stats


def test_collect_writes_whole_episodes_with_consistent_steps(cartpole_demos):
    path, stats = cartpole_demos
    assert (stats.demos_written, stats.episodes_run) == (12, 16)  # two rounds of 8, the last one cut short
    assert stats.env_steps == 2 * NUM_ENVS * EPISODE_LENGTH and stats.steps_per_second > 0
    validate(path)
    demos = read_demos(path)
    assert [d["name"] for d in demos] == [f"demo_{i}" for i in range(12)]
    for demo in demos:
        states, next_states = demo["obs"]["state"], demo["next_obs"]["state"]
        assert states.shape == (EPISODE_LENGTH, 5) and demo["actions"].shape == (EPISODE_LENGTH, 1)
        np.testing.assert_array_equal(next_states[:-1], states[1:])
        assert demo["success"]  # cart-pole never ends an episode itself: all reach the time limit
        np.testing.assert_array_equal(demo["dones"], np.eye(EPISODE_LENGTH)[-1])
        # The recorded action is the noisy one: near the policy's, never equal, within [-1, 1].
        clean = np.asarray(jax.vmap(balance)(jnp.asarray(states)))
        difference = demo["actions"] - clean
        assert 0.03 < difference.std() < 0.2 and np.abs(demo["actions"]).max() <= 1.0
    with h5py.File(path) as file:
        assert file["data"].attrs["total"] == 12 * EPISODE_LENGTH
        assert '"obs_keys": ["state"]' in file["data"].attrs["env_args"]


def test_same_seed_same_demos_other_seed_other_demos(envs, cartpole_demos, tmp_path):
    path, _ = cartpole_demos
    collect_into(tmp_path / "again.hdf5", envs["cartpole"], balance, 12, noise=0.1)
    collect_into(tmp_path / "other.hdf5", envs["cartpole"], balance, 12, seed=1, noise=0.1)
    first, again, other = (load(p) for p in (path, tmp_path / "again.hdf5", tmp_path / "other.hdf5"))
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(again), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first.obs["state"], other.obs["state"])


def test_episodes_are_cut_where_the_env_ends_them(envs, tmp_path):
    path = tmp_path / "leaves.hdf5"
    stats = collect_into(path, envs["leaves"], push_away, 8)
    assert stats.successes == 0
    lengths = set()
    for demo in read_demos(path):
        carts = np.abs(demo["next_obs"]["state"][:, 0])
        assert carts[-1] > CART_LIMIT and (carts[:-1] <= CART_LIMIT).all()  # ends at the first done
        assert not demo["success"] and demo["dones"][-1] == 1 and demo["dones"][:-1].sum() == 0
        lengths.add(len(demo["actions"]))
    assert len(lengths) > 1 and max(lengths) < EPISODE_LENGTH


def test_only_success_gives_up_when_nothing_succeeds(envs, tmp_path):
    path = tmp_path / "none.hdf5"
    with pytest.raises(CollectError,
                       match=r"no episode succeeded in 3 rounds \(24 episodes, success rate 0%\)"):
        collect_into(path, envs["leaves"], push_away, 4, only_success=True)
    assert inspect(path)["num_demos"] == 0  # still a valid, empty file


def test_success_metric_ends_demos_and_only_success_keeps_successes(envs, tmp_path):
    stats = collect_into(tmp_path / "mixed.hdf5", envs["right"], push_away_dict, 8)
    mixed = read_demos(tmp_path / "mixed.hdf5")
    # Every episode ended early, and so did the round: it simulated only as long as the longest.
    longest = max(len(demo["actions"]) for demo in mixed)
    assert stats.env_steps == NUM_ENVS * longest < NUM_ENVS * EPISODE_LENGTH
    assert {d["success"] for d in mixed} == {True, False}
    for demo in mixed:
        assert list(demo["obs"]) == ["state"]  # obs_parts: "privileged" is not written
        carts = demo["next_obs"]["state"][:, 0]
        if demo["success"]:  # cut right after the first successful step
            assert carts[-1] > CART_LIMIT and (carts[:-1] <= CART_LIMIT).all()
        else:  # cut where the env ended it
            assert carts[-1] < -CART_LIMIT and (carts[:-1] >= -CART_LIMIT).all()
        assert len(demo["actions"]) < EPISODE_LENGTH and demo["dones"][-1] == 1
    path = tmp_path / "successes.hdf5"
    stats = collect_into(path, envs["right"], push_away_dict, 7, only_success=True)
    demos = read_demos(path)
    assert len(demos) == 7 and all(d["success"] for d in demos)
    assert stats.episodes_run > 7 and stats.successes >= 7
    assert load(path, only_success=True).num_episodes == 7


def test_interrupted_collection_leaves_a_readable_file(envs, tmp_path):
    path = tmp_path / "interrupted.hdf5"

    def interrupt(stats):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        collect_into(path, envs["cartpole"], balance, 20, noise=0.1, progress=interrupt)
    validate(path)
    data = load(path)
    assert data.num_episodes == NUM_ENVS and data.num_samples == NUM_ENVS * EPISODE_LENGTH
    # Appending continues the numbering after the demos of the interrupted run.
    collect_into(path, envs["cartpole"], balance, 3, seed=1, append=True, noise=0.1)
    assert [d["name"] for d in read_demos(path)][-4:] == ["demo_7", "demo_8", "demo_9", "demo_10"]
    assert inspect(path)["total_samples"] == (NUM_ENVS + 3) * EPISODE_LENGTH


def test_cli_collects_a_policy_with_memory_as_evaluation_runs_it(tmp_path, capsys):
    """A bc run with an observation history and action chunks: the demos' actions are `act`'s over the
    demos' observations, its memory started at their first step, and not the memoryless `policy`'s."""
    run_dir, out = tmp_path / "run", tmp_path / "bc.hdf5"
    train(cartpole_offline_config("bc", cartpole_demo_file(tmp_path / "demos.hdf5"), "algo.obs_history=3",
                                  "algo.action_horizon=4", "algo.ensemble_decay=0.5"), run_dir)
    assert cli.main(["collect", "cartpole-balance", "--policy", str(run_dir), "--episodes", "3",
                     "--num-envs", "3", "--out", str(out)]) == 0
    assert "bc policy of" in capsys.readouterr().out
    demos = read_demos(out)
    obs = np.stack([demo["obs"]["state"] for demo in demos], axis=1)  # [T, 3, 5]: in lockstep, no early end
    actions = np.stack([demo["actions"] for demo in demos], axis=1)
    run = restore_run(run_dir, "best")
    params, act = run.params, jax.jit(run.algo.act)
    memory = run.algo.initial_memory(params, obs[0])
    replayed = []
    for step_obs in obs:
        action, memory = act(params, step_obs, memory)
        replayed.append(action)
    # Equal up to float32 rounding of differently compiled programs (exactly equal seen); the memoryless
    # policy's actions differ by far more (0.09 seen).
    np.testing.assert_allclose(actions, np.stack(replayed), atol=1e-6)
    assert np.abs(actions - run.algo.policy(params, obs)).max() > 1e-2


def test_cli_collect_names_what_is_wrong_before_creating_a_file(tmp_path, capsys):
    out = tmp_path / "demos.hdf5"
    assert cli.main(["collect", "cartpole-balance", "--episodes", "2", "--out", str(out)]) == cli.EXIT_USAGE
    assert "'cartpole-balance' has no scripted expert" in capsys.readouterr().out
    assert cli.main(["collect", "cartpole-balanse", "--episodes", "2", "--out", str(out)]) == cli.EXIT_USAGE
    assert "did you mean 'cartpole-balance'" in capsys.readouterr().out
    assert cli.main(["collect", "cartpole-balance", "--episodes", "0", "--out", str(out)]) == cli.EXIT_USAGE
    assert "--episodes and --num-envs must be >= 1" in capsys.readouterr().out
    assert not out.exists()


@pytest.fixture
def untrained_run(tiny_config, tmp_path):
    """A run directory whose best checkpoint is the freshly initialized PPO state."""
    run_dir = tmp_path / "run"
    algo = algos.get("ppo")
    train_env = envs_mjx.wrap_for_training(envs_mjx.make("cartpole-balance", tiny_config.env), EPISODE_LENGTH)
    state = jax.jit(lambda key: algo.init(key, train_env, tiny_config.algo))(jax.random.PRNGKey(0))
    run_dir.mkdir()
    config.save(tiny_config, run_dir / "config.yaml")
    checkpointer = Checkpointer(run_dir / "checkpoints")
    checkpointer.save_best(0, state, {"call": 0, "env_steps": 0, "best_score": None})
    checkpointer.close()
    return run_dir


def test_cli_collects_with_a_trained_policy_appends_and_stops_on_ctrl_c(untrained_run, tmp_path, capsys,
                                                                         monkeypatch):
    out = tmp_path / "ppo.hdf5"
    argv = ["collect", "cartpole-balance", "--policy", str(untrained_run), "--episodes", "3",
            "--num-envs", "3", "--out", str(out)]
    assert cli.main(argv) == 0
    assert "wrote 3 demos" in capsys.readouterr().out

    @contextlib.contextmanager
    def ctrl_c_after_a_round(console, demos_wanted):
        def interrupt(stats):
            raise KeyboardInterrupt
        yield interrupt

    monkeypatch.setattr(cli, "_collect_progress", ctrl_c_after_a_round)
    assert cli.main(argv + ["--append", "--episodes", "5"]) == cli.EXIT_INTERRUPTED
    assert "interrupted: 3 demos written" in capsys.readouterr().out
    validate(out)
    demos = read_demos(out)
    assert [d["name"] for d in demos] == [f"demo_{i}" for i in range(6)]
    assert not np.array_equal(demos[0]["obs"]["state"], demos[3]["obs"]["state"])  # new episodes
    assert cli.main(["collect", "pendulum-swingup", "--policy", str(untrained_run), "--episodes", "1",
                     "--out", str(tmp_path / "p.hdf5")]) == cli.EXIT_USAGE
    assert "was trained on cartpole-balance, not pendulum-swingup" in capsys.readouterr().out
