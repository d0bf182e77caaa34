"""Offline-learning data (jaxrl.data.demos): sources, filters, combining files, split, statistics, windows."""

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl import cli, config, normalize
from jaxrl.data.demos import flatten_obs, load_demos, make_demo_set, parse_sources, windows
from jaxrl.data.validate import DatasetError, validate
from jaxrl.data.writer import DemoWriter

# --- small files ------------------------------------------------------------------------------------

def episode(steps: int, tag: float, success: bool = True) -> dict:
    """A demo whose values say where they come from: obs/a[t] = tag + t (x3), actions[t] = -(tag + t)/1000."""
    t = np.arange(steps, dtype=np.float64)[:, None]
    obs = {"b": (tag + t + np.arange(4) / 10).reshape(steps, 2, 2), "a": np.repeat(tag + t, 3, axis=1)}
    return {"obs": obs, "next_obs": {k: v + 1 for k, v in obs.items()},
            "actions": np.repeat(-(tag + t), 2, axis=1) / 1000, "rewards": np.zeros(steps),
            "dones": np.eye(steps)[-1], "success": success}


def write_demos(path, demos):
    """A file in this package's full layout (obs keys listed b, a in env_args)."""
    with DemoWriter(path, "cartpole-balance", {}, 0.01) as writer:
        for demo in demos:
            writer.add(**demo)
    return path


def write_raw(path, demos, data_attrs=None):
    """A file as other robomimic-style tools write it: data/demo_i/obs/<keys>, actions and whatever else
    each demo dict holds ("attrs": demo attributes; any other key: a dataset)."""
    with h5py.File(path, "w") as file:
        data = file.create_group("data")
        data.attrs.update(data_attrs or {})
        for i, demo in enumerate(demos):
            group = data.create_group(f"demo_{i}")
            group.attrs.update(demo.get("attrs", {}))
            for key, values in demo.items():
                if key == "obs":
                    for name, array in values.items():
                        group[f"obs/{name}"] = array
                elif key != "attrs":
                    group[key] = values
    return path


def cartpole_demo_file(path, num_demos: int = 6, steps: int = 30, seed: int = 0):
    """A demo file of cartpole-balance's observation ("state" [5]) and action ([1]) holding random numbers:
    data an offline learner of that env trains on in seconds (what it learns does not matter)."""
    rng = np.random.default_rng(seed)
    with DemoWriter(path, "cartpole-balance", {"episode_length": steps}, 0.01) as writer:
        for _ in range(num_demos):
            obs = rng.normal(size=(steps + 1, 5))
            writer.add({"state": obs[:-1]}, {"state": obs[1:]}, rng.uniform(-1, 1, (steps, 1)),
                       np.zeros(steps), np.eye(steps)[-1], success=True)
    return path


def cartpole_offline_config(algo_name: str, data, *overrides) -> config.RunConfig:
    """A bc or diffusion run of cartpole-balance on `data` (see cartpole_demo_file) that compiles and
    trains in seconds: 4 calls of 10 gradient steps, evaluated and checkpointed every other call, on 4
    episodes of 30 steps. Small networks (diffusion: a one-level U-Net of 8 channels, 4-step chunks)."""
    small = {"bc": ["algo.hidden_layer_sizes=[16,16]", "algo.batch_size=32"],
             "diffusion": ["algo.down_dims=[8]", "algo.n_groups=4", "algo.kernel_size=3",
                           "algo.time_embed_dim=8", "algo.action_horizon=4", "algo.action_exec=2",
                           "algo.num_train_steps=10", "algo.num_inference_steps=3", "algo.batch_size=16"]}
    return config.load("cartpole-balance", algo_name, preset="cpu", overrides=[
        f"data={data}", *small[algo_name], "env.episode_length=30", "train.num_timesteps=40",
        "train.iterations_per_call=10", "train.eval_every=20", "train.checkpoint_every=20",
        "train.num_eval_envs=4", "train.tensorboard=false", *overrides])


def raw_demo(steps: int, tag: float, **extra) -> dict:
    t = np.arange(steps, dtype=np.float64)[:, None]
    obs = {"pos": np.repeat(tag + t, 3, axis=1), "grip": tag + t}
    return {"obs": obs, "actions": np.repeat(-(tag + t), 7, axis=1) / 1000, **extra}


THREE = [episode(5, 0.0, True), episode(7, 100.0, False), episode(4, 200.0, True)]


@pytest.fixture
def demos_file(tmp_path):
    return write_demos(tmp_path / "demos.hdf5", THREE)


def flat(demo: dict, keys=("b", "a")) -> np.ndarray:
    return np.concatenate([demo["obs"][k].reshape(len(demo["actions"]), -1) for k in keys], axis=1)


# --- naming the files -----------------------------------------------------------------------------------

def test_parse_sources_reads_per_file_filters_and_suggests_the_closest():
    assert parse_sources("a.hdf5,b.hdf5:corrections", "success") == [("a.hdf5", "success"),
                                                                      ("b.hdf5", "corrections")]
    assert parse_sources(" dir/a.hdf5:all , ,b.hdf5", "all") == [("dir/a.hdf5", "all"), ("b.hdf5", "all")]
    assert parse_sources(r"C:\data\a.hdf5", "all") == [(r"C:\data\a.hdf5", "all")]  # a drive is no filter
    with pytest.raises(ValueError, match=r"b.hdf5:correction: unknown filter 'correction'; the filters are "
                                         r"all, success, corrections; did you mean 'corrections'\?"):
        parse_sources("a.hdf5,b.hdf5:correction", "all")
    for empty in ("", " , "):
        with pytest.raises(ValueError, match="pass data=FILE.hdf5"):
            parse_sources(empty, "all")
    with pytest.raises(ValueError, match="unknown filter 'sucess'.*did you mean 'success'"):
        parse_sources("a.hdf5", "sucess")


# --- filters --------------------------------------------------------------------------------------------

def test_success_filter_keeps_only_successful_demos(demos_file, tmp_path):
    everything = load_demos([(str(demos_file), "all")], val_fraction=0)
    assert (everything.num_samples, everything.num_episodes) == (16, 3)
    kept = load_demos([(str(demos_file), "success")], val_fraction=0)
    assert (kept.num_samples, kept.num_episodes, kept.num_train_episodes) == (9, 2, 2)
    np.testing.assert_array_equal(kept.actions, np.concatenate([THREE[0]["actions"], THREE[2]["actions"]])
                                  .astype(np.float32))
    np.testing.assert_array_equal(kept.train_index, np.arange(9))
    no_attribute = write_raw(tmp_path / "raw.hdf5", [raw_demo(3, 0.0)])
    with pytest.raises(DatasetError, match=r"raw.hdf5: data/demo_0 has no 'success' attribute.*'all'"):
        load_demos([(str(no_attribute), "success")])


def test_corrections_keep_flagged_steps_and_whole_episodes(tmp_path):
    path = write_raw(tmp_path / "hg.hdf5", [
        raw_demo(6, 0.0, intervention=np.array([0, 0, 1, 1, 0, 1], np.uint8)),
        raw_demo(4, 100.0, intervention=np.zeros(4, bool)),  # never corrected: dropped
        raw_demo(5, 200.0, interventions=np.array([[True], [False], [False], [False], [False]])),  # [T, 1]
    ])
    demos = load_demos([(str(path), "corrections")], val_fraction=0)
    assert (demos.num_samples, demos.num_episodes) == (11, 2)
    np.testing.assert_array_equal(demos.train_index, [2, 3, 5, 6])
    np.testing.assert_array_equal(demos.episode_start, [0] * 6 + [6] * 5)  # the episodes stay whole
    np.testing.assert_array_equal(demos.episode_end, [5] * 6 + [10] * 5)
    np.testing.assert_array_equal(demos.obs[6], [200.0, 200, 200, 200])  # "grip" sorts before "pos"
    np.testing.assert_allclose(demos.obs_stats.mean, [52.5] * 4, rtol=1e-6)  # of 2, 3, 5 and 200
    split = load_demos([(str(path), "corrections")], val_fraction=0.5)
    assert sorted(np.concatenate([split.train_index, split.val_index]).tolist()) == [2, 3, 5, 6]
    assert len(split.train_index) and len(split.val_index)
    # All of the file's demos are read under "all", intervention flags or not.
    assert load_demos([(str(path), "all")], val_fraction=0).num_samples == 15


def test_corrections_by_source_attribute_and_what_a_correction_file_needs(tmp_path):
    path = write_raw(tmp_path / "sourced.hdf5", [
        raw_demo(3, 0.0, attrs={"source": "human"}), raw_demo(4, 100.0, attrs={"source": "policy"}),
        raw_demo(2, 200.0, attrs={"source": np.bytes_(b"Correction")})])
    demos = load_demos([(str(path), "corrections")], val_fraction=0)
    assert (demos.num_samples, demos.num_episodes) == (5, 2)
    np.testing.assert_array_equal(demos.train_index, np.arange(5))
    np.testing.assert_allclose(demos.actions[3:, 0], [-0.2, -0.201], rtol=1e-6)
    unmarked = write_raw(tmp_path / "unmarked.hdf5", [raw_demo(3, 0.0, attrs={"source": "human"}),
                                                       raw_demo(3, 1.0)])
    with pytest.raises(DatasetError, match=r"unmarked.hdf5: data/demo_1 has neither per-step 'intervention' "
                                           r"flags nor a 'source' attribute; a correction dataset marks"):
        load_demos([(str(unmarked), "corrections")])
    short = write_raw(tmp_path / "short.hdf5", [raw_demo(6, 0.0, intervention=np.ones(5))])
    with pytest.raises(DatasetError, match=r"short.hdf5: data/demo_0/intervention has shape \(5,\) but "
                                           r"actions has 6 rows"):
        load_demos([(str(short), "corrections")])


# --- combining files, choosing keys -------------------------------------------------------------------

def test_files_combine_with_episode_bounds_across_the_boundary(demos_file, tmp_path):
    more = write_demos(tmp_path / "more.hdf5", [episode(3, 300.0), episode(6, 400.0)])
    demos = load_demos([(str(demos_file), "success"), (str(more), "all")], val_fraction=0)
    # demos_file keeps its demos 0 and 2 (5 + 4 samples), then more's 3 + 6.
    assert (demos.num_samples, demos.num_episodes) == (18, 4)
    lengths = [5, 4, 3, 6]
    starts = np.repeat([0, 5, 9, 12], lengths)
    np.testing.assert_array_equal(demos.episode_start, starts)
    np.testing.assert_array_equal(demos.episode_end, starts + np.repeat(lengths, lengths) - 1)
    expected = np.concatenate([flat(d) for d in (THREE[0], THREE[2], episode(3, 300.0), episode(6, 400.0))])
    np.testing.assert_array_equal(demos.obs, expected.astype(np.float32))
    assert demos.obs.dtype == jnp.float32 and demos.episode_start.dtype == jnp.int32


def test_files_must_agree_on_shapes_naming_both(demos_file, tmp_path):
    wide = episode(3, 0.0)
    wide["actions"] = np.zeros((3, 5))
    odd = write_demos(tmp_path / "odd.hdf5", [wide])
    with pytest.raises(DatasetError, match=r"odd.hdf5: actions has samples of shape \(5,\) but "
                                           r".*demos.hdf5's have \(2,\)"):
        load_demos([(str(demos_file), "all"), (str(odd), "all")])
    flat_b = episode(3, 0.0)
    flat_b["obs"]["b"] = np.zeros((3, 4))
    flat_b["next_obs"]["b"] = np.zeros((3, 4))
    other = write_demos(tmp_path / "other.hdf5", [flat_b])
    with pytest.raises(DatasetError, match=r"other.hdf5: obs/b has samples of shape \(4,\) but "
                                           r".*demos.hdf5's have \(2, 2\)"):
        load_demos([(str(demos_file), "all"), (str(other), "all")])


def test_obs_keys_choose_and_order_the_flattened_observation(demos_file):
    default = load_demos([(str(demos_file), "all")], val_fraction=0)
    assert default.obs_keys == ("b", "a")  # env_args' order, not sorted
    assert (default.obs_sizes, default.obs_shapes) == ((4, 3), ((2, 2), (3,)))
    chosen = load_demos([(str(demos_file), "all")], obs_keys=("a", "b"), val_fraction=0)
    assert chosen.obs_keys == ("a", "b")
    np.testing.assert_array_equal(chosen.obs, np.concatenate([flat(d, ("a", "b")) for d in THREE])
                                  .astype(np.float32))
    only_a = load_demos([(str(demos_file), "all")], obs_keys=("a",), val_fraction=0)
    assert only_a.obs.shape == (16, 3)


def test_a_robomimic_style_file_with_only_obs_and_actions_loads(tmp_path):
    demos = [raw_demo(4, 0.0), raw_demo(3, 100.0)]
    for demo in demos:
        demo["obs"]["image"] = np.zeros((len(demo["actions"]), 2, 2, 3), np.uint8)  # images are integers
    path = write_raw(tmp_path / "robomimic.hdf5", demos,
                     data_attrs={"env_args": '{"env_name": "Lift", "type": 1, "env_kwargs": {}}'})
    with pytest.raises(DatasetError, match="has no 'next_obs'"):
        validate(path)  # `jaxrl data inspect` stays strict
    loaded = load_demos([(str(path), "all")], obs_keys=("pos", "grip"), val_fraction=0)
    assert loaded.obs.shape == (7, 4) and loaded.actions.shape == (7, 7)
    np.testing.assert_array_equal(loaded.obs[4], [100.0, 100, 100, 100])
    everything = load_demos([(str(path), "all")], val_fraction=0)
    assert everything.obs_keys == ("grip", "image", "pos")  # sorted where env_args does not list them
    assert everything.obs_sizes == (1, 12, 3)


# --- rejected files -------------------------------------------------------------------------------------

def _delete(key):
    return lambda file: file.__delitem__(key)


def _truncate(key):
    def damage(file):
        values = file[key][:-1]
        del file[key]
        file[key] = values
    return damage


def _set(key, row, value):
    def damage(file):
        file[key][row] = value
    return damage


REJECTED = [
    (_delete("data/demo_1/actions"), r"demos.hdf5: data/demo_1 has no 'actions'; training needs obs/ and "
                                     r"actions"),
    (_delete("data/demo_2/obs/a"), r"demos.hdf5: data/demo_2 has no observation 'a'; its observation keys "
                                   r"are: b"),
    (_truncate("data/demo_2/obs/a"), r"demos.hdf5: data/demo_2/obs/a has 3 rows but actions has 4"),
    (_set("data/demo_1/obs/b", 3, np.nan), r"demos.hdf5: data/demo_1/obs/b has NaN at row 3"),
    (_set("data/demo_0/actions", 2, np.inf), r"demos.hdf5: data/demo_0/actions has inf at row 2"),
    (lambda f: f["data/demo_0"].attrs.__setitem__("num_samples", 9),
     r"data/demo_0 says num_samples=9 but actions has 5 rows"),
]


@pytest.mark.parametrize("damage, message", REJECTED)
def test_rejected_files_name_file_demo_and_key(demos_file, damage, message):
    with h5py.File(demos_file, "a") as file:
        damage(file)
    with pytest.raises(DatasetError, match=message):
        load_demos([(str(demos_file), "all")], obs_keys=("b", "a"))


def test_actions_outside_the_unit_range_are_refused_naming_the_demo_and_the_range(tmp_path, capsys):
    path = cartpole_demo_file(tmp_path / "demos.hdf5")
    with h5py.File(path, "a") as file:
        file["data/demo_0/actions"][0] = np.nextafter(np.float32(1), np.float32(2))  # a float32 rounding
        file["data/demo_2/actions"][...] = 1.5
    with pytest.raises(DatasetError, match=r"demos.hdf5: data/demo_2/actions range over \[1.5, 1.5\] but "
                                           r"actions must lie in \[-1, 1\], the env's action space; rescale "
                                           r"the actions into \[-1, 1\]"):
        load_demos([(str(path), "all")])
    run_dir = tmp_path / "run"
    assert cli.main(["train", "cartpole-balance", "bc", "--preset", "cpu", f"data={path}",
                     f"run_dir={run_dir}"]) == cli.EXIT_USAGE
    last_line = capsys.readouterr().out.splitlines()[-1]  # after the line saying what is trained where
    assert last_line.startswith("error: ") and "data/demo_2/actions range over [1.5, 1.5]" in last_line
    assert not run_dir.exists()
    with h5py.File(path, "a") as file:
        file["data/demo_2/actions"][...] = 1.0
    assert load_demos([(str(path), "all")]).num_episodes == 6  # demo_0's float32 rounding past 1 is let pass


def test_data_only_an_offline_learner_does_not_read_may_be_missing(demos_file):
    with h5py.File(demos_file, "a") as file:
        del file["data"].attrs["total"]
        for name in file["data"]:
            for key in ("next_obs", "rewards", "dones"):
                del file["data"][name][key]
            del file["data"][name].attrs["num_samples"]
    assert load_demos([(str(demos_file), "all")], val_fraction=0).num_samples == 16


# --- split and statistics -------------------------------------------------------------------------------

def random_episodes(num_episodes: int, seed: int = 0, max_length: int = 9):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, max_length + 1, size=num_episodes)
    total = int(lengths.sum())
    # Each episode has its own offset, so statistics over other samples differ visibly.
    offsets = np.repeat(rng.normal(0.0, 5.0, size=(num_episodes, 1)), lengths, axis=0)
    return rng.normal(size=(total, 3)) * 2 + offsets, rng.uniform(-1, 1, size=(total, 2)), lengths


def episodes_of(demos, index) -> set[int]:
    return set(np.asarray(demos.episode_start)[np.asarray(index)].tolist())


def test_split_is_by_episode_and_deterministic_per_seed():
    obs, actions, lengths = random_episodes(20)
    first = make_demo_set(obs, actions, lengths, val_fraction=0.25, seed=0)
    train, val = episodes_of(first, first.train_index), episodes_of(first, first.val_index)
    assert len(val) == 5 and len(train) == 15 and not train & val
    assert (first.num_episodes, first.num_train_episodes) == (20, 15)
    assert len(first.train_index) + len(first.val_index) == lengths.sum()  # every step of every episode
    again = make_demo_set(obs, actions, lengths, val_fraction=0.25, seed=0)
    np.testing.assert_array_equal(again.val_index, first.val_index)
    other = make_demo_set(obs, actions, lengths, val_fraction=0.25, seed=1)
    assert episodes_of(other, other.val_index) != val
    none_held = make_demo_set(obs, actions, lengths, val_fraction=0.0)
    assert none_held.val_index.shape == (0,) and len(none_held.train_index) == lengths.sum()
    tiny = make_demo_set(obs[:lengths[0] + lengths[1]], actions[:lengths[0] + lengths[1]], lengths[:2],
                         val_fraction=0.01)
    assert len(episodes_of(tiny, tiny.val_index)) == 1 == len(episodes_of(tiny, tiny.train_index))


def test_one_episode_cannot_be_split(tmp_path):
    path = write_demos(tmp_path / "one.hdf5", [episode(4, 0.0)])
    with pytest.raises(DatasetError, match="holds out whole episodes, but the data has 1 episode after "
                                           "filtering: pass val_fraction=0"):
        load_demos([(str(path), "all")], val_fraction=0.1)
    assert load_demos([(str(path), "all")], val_fraction=0).num_train_episodes == 1


def test_statistics_are_of_training_samples_and_normalizing_round_trips():
    obs, actions, lengths = random_episodes(12, seed=3)
    demos = make_demo_set(obs, actions, lengths, val_fraction=0.3, seed=2)
    train = np.asarray(demos.train_index)
    np.testing.assert_allclose(demos.obs_stats.mean, obs[train].mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(normalize.std(demos.obs_stats), obs[train].std(0), rtol=1e-4)
    np.testing.assert_allclose(demos.action_stats.mean, actions[train].mean(0), atol=1e-6)
    assert float(demos.obs_stats.count) == len(train) < len(obs)
    assert not np.allclose(demos.obs_stats.mean, obs.mean(0), atol=1e-2)  # the held-out ones are left out
    for stats, values in ((demos.obs_stats, demos.obs), (demos.action_stats, demos.actions)):
        standardized = normalize.normalize(stats, values[demos.train_index])
        np.testing.assert_allclose(standardized.mean(0), 0.0, atol=1e-5)
        restored = stats.mean + normalize.std(stats) * standardized
        np.testing.assert_allclose(restored, values[demos.train_index], rtol=1e-5, atol=1e-5)


# --- observations and windows ---------------------------------------------------------------------------

def test_flatten_obs_takes_any_batch_axes_and_flat_observations():
    obs = {"tactile_left": jnp.arange(2 * 5 * 12.0).reshape(2, 5, 3, 4), "pos": jnp.ones((2, 5, 3)),
           "unused": jnp.zeros((2, 5, 7))}
    flat_obs = flatten_obs(obs, ("pos", "tactile_left"), ((3,), (3, 4)))
    assert flat_obs.shape == (2, 5, 15)
    np.testing.assert_array_equal(flat_obs[1, 2, 3:], obs["tactile_left"][1, 2].ravel())
    one = flatten_obs({k: v[0, 0] for k, v in obs.items()}, ("pos", "tactile_left"), {"pos": 1,
                                                                                     "tactile_left": 2})
    np.testing.assert_array_equal(one, flat_obs[0, 0])
    with pytest.raises(ValueError, match="pass each key's sample shape"):
        flatten_obs(obs, ("pos", "tactile_left"))  # without shapes the pad's (3, 4) is ambiguous
    with pytest.raises(ValueError, match=r"'pos' has shape \(2, 5, 3\), expected samples of shape \(4,\)"):
        flatten_obs(obs, ("pos",), ((4,),))
    state = jnp.ones((4, 5))
    np.testing.assert_array_equal(flatten_obs(state, ("state",), ((5,),)), state)
    assert flatten_obs(state, ("state",)).shape == (4, 5)
    with pytest.raises(ValueError, match="a flat observation is the value of a single key"):
        flatten_obs(state, ("a", "b"))
    assert isinstance(flatten_obs({"a": np.ones((2, 3))}, ("a",)), np.ndarray)  # host arrays stay on the host


def windows_example():
    """Two episodes, samples 0-2 and 3-6; obs row i is i, action row i is 10 + i."""
    rows = np.arange(7.0)[:, None]
    return make_demo_set(rows, 10 + rows, [3, 4], val_fraction=0)


def test_windows_pad_at_both_episode_edges():
    obs, actions, valid = windows(windows_example(), jnp.array([0, 2, 3, 6]), obs_history=3, action_horizon=3)
    np.testing.assert_array_equal(obs[..., 0], [[0, 0, 0], [0, 1, 2], [3, 3, 3], [4, 5, 6]])
    np.testing.assert_array_equal(actions[..., 0], [[10, 11, 12], [12, 12, 12], [13, 14, 15], [16, 16, 16]])
    np.testing.assert_array_equal(valid, [[1, 1, 1], [1, 0, 0], [1, 1, 1], [1, 0, 0]])
    obs, actions, valid = windows(windows_example(), jnp.array([4, 1]), obs_history=1, action_horizon=1)
    assert obs.shape == (2, 1, 1) and actions.shape == (2, 1, 1) and bool(valid.all())
    np.testing.assert_array_equal(actions[:, 0, 0], [14, 11])


def reference_windows(obs, actions, lengths, index, history, horizon):
    """Sample by sample, as the definition says."""
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    out_obs, out_actions, out_valid = [], [], []
    for t in index:
        episode = np.searchsorted(starts, t, side="right") - 1
        start, end = starts[episode], starts[episode] + lengths[episode] - 1
        out_obs.append([obs[max(t - h, start)] for h in range(history - 1, -1, -1)])
        out_actions.append([actions[min(t + k, end)] for k in range(horizon)])
        out_valid.append([t + k <= end for k in range(horizon)])
    return np.array(out_obs), np.array(out_actions), np.array(out_valid)


def test_windows_compile_once_and_match_a_slow_reference():
    obs, actions, lengths = random_episodes(12, seed=5)
    demos = make_demo_set(obs, actions, lengths, val_fraction=0)
    cut = jax.jit(windows, static_argnums=(2, 3))
    for seed in (0, 1):
        index = np.random.default_rng(seed).integers(0, len(obs), size=64)
        got = cut(demos, jnp.asarray(index), 4, 5)
        expected = reference_windows(obs.astype(np.float32), actions.astype(np.float32), lengths, index, 4, 5)
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_array_equal(a, b)
    assert cut._cache_size() == 1  # a new batch of indices reuses the compiled gather
