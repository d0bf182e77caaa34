"""`jaxrl export`: ONNX files that match the JAX policy, carry their metadata and fail clearly."""

import dataclasses
import json
import shutil

import jax
import mujoco
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import SMALL_RUN_OVERRIDES
from test_diffusion import random_grasp_demos

import envs_mjx
from jaxrl import __version__, algos, cli, config
from jaxrl.algos import ppo
from jaxrl.checkpoint import Checkpointer
from jaxrl.export import ExportError, PolicyFileError, PolicyMismatchError, state_vector
from jaxrl.export.onnx import Provenance, export_onnx, export_tolerance, policy_input
from jaxrl.export.onnx_policy import OnnxPolicy
from jaxrl.runs import Run, restore_run
from jaxrl.train import learner_env, make_envs

EXPORTED_ENVS = ["cartpole-balance", "go1-joystick", "grasp-lift-cube"]


# Envs whose checks need a policy's shapes and metadata, not trained weights: a freshly initialised
# PPO state stands in for a run and spares the suite compiling a training step of the grasp env.
UNTRAINED_ENVS = ("grasp-lift-cube",)


def untrained_run(env_name: str) -> Run:
    cfg = config.load(env_name, "ppo", overrides=SMALL_RUN_OVERRIDES[env_name], preset="cpu")
    train_env, eval_env = make_envs(cfg)
    state = jax.jit(lambda key: ppo.init(key, train_env, cfg.algo))(jax.random.PRNGKey(0))
    return Run(cfg, ppo, train_env, eval_env, ppo.policy_params(state), state.env_state.obs, {"env_steps": 0})


@pytest.fixture(scope="module")
def restored(small_run):
    """restored(env_name) -> the small run's best checkpoint, restored (cached)."""
    runs = {}

    def get(env_name):
        if env_name not in runs:
            runs[env_name] = (untrained_run(env_name) if env_name in UNTRAINED_ENVS
                              else restore_run(small_run(env_name), "best"))
        return runs[env_name]

    return get


def export_run(run, out, **kwargs):
    provenance = Provenance(run.cfg.env_name, run.cfg.algo_name, "best", run.meta["env_steps"])
    return export_onnx(run.algo, run.params, run.train_env.unwrapped,
                       run.observations, out, provenance, **kwargs)


@pytest.fixture(scope="module")
def exported(restored, tmp_path_factory):
    """exported(env_name) -> (restored run, ExportResult) of its best checkpoint (cached)."""
    results = {}

    def get(env_name):
        if env_name not in results:
            run = restored(env_name)
            results[env_name] = run, export_run(run, tmp_path_factory.mktemp("onnx") / "policy.onnx")
        return results[env_name]

    return get


@pytest.mark.parametrize("env_name", EXPORTED_ENVS)
def test_onnx_output_is_the_jax_policy_in_the_envs_action_range(env_name, exported):
    run, result = exported(env_name)
    env = run.train_env.unwrapped
    obs = run.observations
    action = np.asarray(run.algo.policy(run.params, obs))  # [-1, 1]
    affine = env.control_affine
    expected = action if affine is None else affine[0] + affine[1] * action

    # A plain onnxruntime session: the file alone is enough.
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    flat = np.asarray(policy_input(obs), np.float32)
    got = session.run(["action"], {"obs": flat})[0]
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    assert result.max_error <= 1e-5
    np.testing.assert_allclose(OnnxPolicy(result.path)(flat[0]), expected[0], atol=1e-5, rtol=0)
    if affine is None:  # relative control: the output stays the policy's [-1, 1] action
        assert np.all(np.abs(got) <= 1.0)


def test_graph_has_a_symbolic_batch_and_named_input_and_output(exported):
    _, result = exported("cartpole-balance")
    model = onnx.load(str(result.path))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 17 and model.ir_version == 8  # readable by older runtimes
    (obs,), (action,) = model.graph.input, model.graph.output
    assert obs.name == "obs" and action.name == "action"
    batch, width = obs.type.tensor_type.shape.dim
    assert batch.dim_param and not batch.dim_value and width.dim_value == 5


def test_metadata_describes_env_and_training(exported):
    run, result = exported("go1-joystick")
    env = run.train_env.unwrapped
    props = {p.key: json.loads(p.value) for p in onnx.load(str(result.path)).metadata_props}
    assert props["env_name"] == "go1-joystick" and props["algo"] == "ppo"
    assert props["jaxrl_version"] == __version__
    assert props["checkpoint"] == "best" and props["training_step"] == run.meta["env_steps"] > 0
    assert [(item["name"], item["size"]) for item in props["obs_layout"]] == list(env.state_layout)
    assert props["action_names"] == list(env.action_names) and len(props["action_names"]) == 12
    assert props["control_dt"] == pytest.approx(env.dt)
    home = env.mj_model.key("home").qpos[7:]  # after the trunk's free joint
    np.testing.assert_allclose(props["action_offset"], home, atol=1e-6)
    assert props["action_scale"] == [env.config.action_scale] * 12
    assert list(props["default_joint_pose"]) == list(env.action_names)  # one per actuated joint, no root
    np.testing.assert_allclose(list(props["default_joint_pose"].values()), home, atol=1e-6)
    assert props["env_config"] == json.loads(json.dumps(config.as_dict(env.config)))

    typed = OnnxPolicy(result.path).metadata
    assert typed.obs_size == 45 and typed.action_size == 12 and typed.obs_layout == tuple(env.state_layout)


def test_relative_control_has_no_affine_and_qpos0_stands_in_for_a_missing_home(exported):
    _, result = exported("grasp-lift-cube")
    meta = OnnxPolicy(result.path).metadata
    assert meta.action_offset is None and meta.action_scale is None
    assert "cube" not in meta.default_joint_pose  # its free joint
    cartpole = OnnxPolicy(exported("cartpole-balance")[1].path).metadata  # no keyframe in its MJCF
    assert cartpole.default_joint_pose == {"slider": 0.0, "hinge": 0.0}


@pytest.mark.parametrize("choice, checkpoint, env_steps", [
    ("best", "best", None), ("latest", "latest", 1024), ("512", "512", 512)])
def test_cli_exports_the_chosen_checkpoint(choice, checkpoint, env_steps, small_run, tmp_path, capsys):
    out = tmp_path / "policy.onnx"
    assert cli.main(["export", str(small_run("cartpole-balance")), "--checkpoint", choice,
                     "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "max |ONNX - JAX|" in printed and "cart_pos[1]" in printed
    meta = OnnxPolicy(out).metadata
    assert meta.checkpoint == checkpoint
    assert env_steps is None or meta.training_step == env_steps
    assert [p.name for p in tmp_path.iterdir()] == ["policy.onnx"]  # no staging file left behind


def test_cli_names_the_available_steps_for_an_absent_one(small_run, tmp_path, capsys):
    out = tmp_path / "policy.onnx"
    assert cli.main(["export", str(small_run("cartpole-balance")), "--checkpoint", "500",
                     "--out", str(out)]) == cli.EXIT_USAGE
    printed = capsys.readouterr().out
    assert "no checkpoint at 500 env steps" in printed and "512, 1,024" in printed
    assert not out.exists()


def test_a_verification_failure_says_by_how_much_and_writes_nothing(restored, monkeypatch, tmp_path):
    out = tmp_path / "policy.onnx"
    out.write_bytes(b"the previous export")
    exact = ppo.export_policy
    monkeypatch.setattr(ppo, "export_policy", lambda params: lambda x: exact(params)(x) + 1e-3)
    with pytest.raises(ExportError, match=r"differs from the JAX policy by up to 0\.001"):
        export_run(restored("cartpole-balance"), out)
    assert out.read_bytes() == b"the previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["policy.onnx"]


def test_missing_corrupt_and_foreign_files_are_refused_naming_the_fix(tmp_path):
    with pytest.raises(PolicyFileError, match="no such file.*jaxrl export"):
        OnnxPolicy(tmp_path / "absent.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07garbage" * 10)
    with pytest.raises(PolicyFileError, match="not a readable ONNX file.*re-export it with `jaxrl export"):
        OnnxPolicy(corrupt)
    foreign = tmp_path / "foreign.onnx"
    node = onnx.helper.make_node("Identity", ["x"], ["y"])
    value = lambda name: onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, [1])  # noqa: E731
    graph = onnx.helper.make_graph([node], "g", [value("x")], [value("y")])
    onnx.save(onnx.helper.make_model(graph, ir_version=8, opset_imports=[onnx.helper.make_opsetid("", 17)]),
              str(foreign))
    with pytest.raises(PolicyFileError, match="not a jaxrl policy.*jaxrl export"):
        OnnxPolicy(foreign)


def test_a_policy_refuses_another_envs_observations(exported):
    policy = OnnxPolicy(exported("cartpole-balance")[1].path)
    policy.check_env(envs_mjx.make("cartpole-balance"), "cartpole-balance")
    with pytest.raises(PolicyMismatchError, match="size 5 .*this env gives size 3"):
        policy.check_env(envs_mjx.make("pendulum-swingup"))
    with pytest.raises(PolicyMismatchError, match="for cartpole-balance, not pendulum-swingup"):
        policy.check_env(envs_mjx.make("cartpole-balance"), "pendulum-swingup")
    with pytest.raises(PolicyMismatchError, match=r"shape \(2, 3\).*reads \[5\] or \[B, 5\]"):
        policy(np.zeros((2, 3)))


def test_default_pose_reads_ball_joints_as_quaternions():
    from jaxrl.export.onnx import default_joint_pose

    model = mujoco.MjModel.from_xml_string("""
        <mujoco><worldbody><body><joint name="ball" type="ball"/><geom size="0.1"/>
        <body><joint name="hinge"/><geom size="0.1"/></body></body></worldbody>
        <keyframe><key name="home" qpos="0 1 0 0 0.5"/></keyframe></mujoco>""")
    assert default_joint_pose(model) == {"ball": [0.0, 1.0, 0.0, 0.0], "hinge": 0.5}


def test_a_format_1_file_reads_as_a_stateless_policy(exported, tmp_path):
    """Files written before policies had memory (format 1, no memory_size) still load and act."""
    model = onnx.load(str(exported("cartpole-balance")[1].path))
    props = {p.key: p.value for p in model.metadata_props if p.key != "memory_size"}
    props["jaxrl_format"] = "1"
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, props)
    old = tmp_path / "format1.onnx"
    onnx.save(model, str(old))
    policy = OnnxPolicy(old)
    assert policy.metadata.memory_size == 0 and policy.metadata.jaxrl_format == 1
    policy.reset()  # nothing to reset: harmless
    assert policy(np.zeros(5)).shape == (1,)


def test_a_policy_takes_its_entries_out_of_the_envs_vector_in_its_own_order():
    layout = (("a", 2), ("b", 3))
    x = np.arange(10.0).reshape(2, 5)
    np.testing.assert_array_equal(state_vector.select(x, layout, ("b", "a")), x[:, [2, 3, 4, 0, 1]])
    np.testing.assert_array_equal(state_vector.select(x, layout, ("state",)), x)  # the whole vector
    with pytest.raises(ExportError, match=r"reads 'privileged'.*holds a\[2\] b\[3\]"):
        state_vector.select(x, layout, ("a", "privileged"))


# --- learners from demonstrations: no recorded observations, and policies with memory ---------------

# Alphabetical, as an HDF5 file lists them: not the order of the env's policy vector.
GRASP_PARTS = ("cube_pos", "cube_quat", "cube_rel_pos", "finger_opening", "gripper_pos", "gripper_vel",
               "tactile_left", "tactile_right")
OFFLINE_RUNS = {  # name -> (algorithm, small settings: what is checked is the plumbing, not the policy)
    "diffusion": ("diffusion", ["algo.down_dims=[16]", "algo.kernel_size=3", "algo.n_groups=4",
                                "algo.time_embed_dim=16", "algo.action_horizon=4", "algo.action_exec=3",
                                "algo.num_inference_steps=4"]),
    "bc": ("bc", ["algo.hidden_layer_sizes=[16,16]"]),
    "bc-memory": ("bc", ["algo.hidden_layer_sizes=[16,16]", "algo.obs_history=2", "algo.lstm_size=8",
                         "algo.action_horizon=3"]),
}


@pytest.fixture(scope="module")
def grasp_demos(tmp_path_factory):
    return random_grasp_demos(tmp_path_factory.mktemp("demos") / "demos.hdf5")


def untrained_offline_run(run_dir, name: str, demos_file) -> Run:
    """The grasp-lift-cube run OFFLINE_RUNS[name] on a copy of `demos_file`, saved at `run_dir` without
    training (its initial state as the best checkpoint, normalization from the demos); the copy is
    deleted."""
    algo_name, overrides = OFFLINE_RUNS[name]
    demos_path = run_dir.parent / f"{run_dir.name}-demos.hdf5"
    shutil.copyfile(demos_file, demos_path)
    cfg = config.load("grasp-lift-cube", algo_name, preset="cpu", overrides=[
        f"data={demos_path}", f"algo.obs_keys=[{','.join(GRASP_PARTS)}]", "env.episode_length=10",
        *overrides])
    algo = algos.get(algo_name)
    train_env, eval_env = make_envs(cfg)
    demos = algo.load_data(cfg.algo, eval_env)
    cfg = dataclasses.replace(cfg, algo=algo.resolved_config(cfg.algo, demos))
    source = learner_env(algo, train_env, eval_env)
    state = jax.jit(lambda key: algo.init(key, source, cfg.algo, demos))(jax.random.PRNGKey(0))
    run_dir.mkdir()
    config.save(cfg, run_dir / "config.yaml")
    checkpointer = Checkpointer(run_dir / "checkpoints")
    checkpointer.save_best(0, state, {"call": 0, "grad_steps": 0, "best_score": None, "best_call": 0})
    checkpointer.close()
    demos_path.unlink()
    return Run(cfg, algo, train_env, eval_env, algo.policy_params(state), None, {"grad_steps": 0})


def random_observations(env, shape, seed=0) -> tuple[dict, np.ndarray]:
    """(dict observations, their policy vectors [*shape, n]) of the grasp env's layout, random values."""
    rng = np.random.default_rng(seed)
    obs = {name: rng.normal(size=(*shape, *part)).astype(np.float32) for name, part in env.obs_layout}
    flat = np.concatenate([obs[name].reshape(*shape, -1) for name, _ in env.state_layout], axis=-1)
    return {**obs, "state": flat}, flat


@pytest.mark.parametrize("name", list(OFFLINE_RUNS))
def test_an_offline_run_exports_without_its_data_and_acts_as_in_jax(name, grasp_demos, tmp_path, capsys):
    """`jaxrl export` of a run from demonstrations (data file gone), checked as it is written; the file
    then acts as the learner does on dict observations (its alphabetical keys): `policy`, or `act` over
    several steps with the memory kept per env; reset() starts over. `jaxrl play` plays an episode."""
    run_dir, out = tmp_path / "run", tmp_path / "policy.onnx"
    run = untrained_offline_run(run_dir, name, grasp_demos)
    capsys.readouterr()
    assert cli.main(["export", str(run_dir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    params = run.params
    memory_size = algos.export_memory_size(run.algo, params)
    policy = OnnxPolicy(out)
    assert policy.metadata.memory_size == memory_size and policy.metadata.algo == run.cfg.algo_name
    assert "(0 gradient steps)" in printed, printed
    checked_on = "in plain MuJoCo, memory fed back" if memory_size else "16 env starts"
    assert checked_on in printed and (f"memory [B, {memory_size}]" in printed) == (memory_size > 0), printed

    steps = 7
    obs, flat = random_observations(run.train_env.unwrapped, (steps, 2))
    if memory_size:
        act = jax.jit(run.algo.act)
        memory = run.algo.initial_memory(params, jax.tree.map(lambda part: part[0], obs))
    else:
        act = jax.jit(lambda params, obs, memory: (run.algo.policy(params, obs), memory))
        memory = None
    outputs, tolerance = [], export_tolerance(run.algo)
    for t in range(steps):
        expected, memory = act(params, jax.tree.map(lambda part, t=t: part[t], obs), memory)
        outputs.append(policy(flat[t]))
        # Within what the export's own check promises (ONNX Runtime and XLA order float32 sums apart).
        np.testing.assert_allclose(outputs[-1], expected, atol=tolerance, err_msg=f"step {t}")
    assert np.abs(outputs).max() <= 1.0 and not np.allclose(outputs[0], outputs[1])
    if not memory_size:
        assert policy.memory is None
        return

    graph = onnx.load(str(out)).graph
    assert [i.name for i in graph.input] == ["obs", "memory"]
    assert [o.name for o in graph.output] == ["action", "next_memory"]
    batch, width = graph.input[1].type.tensor_type.shape.dim
    assert batch.dim_param and width.dim_value == memory_size

    # Memory is per env and starts over on reset(): all of it, or the envs whose episode starts.
    assert policy.memory.shape == (2, memory_size) and np.any(policy.memory)
    with pytest.raises(PolicyMismatchError, match="memory of 2 envs.*reset"):
        policy(flat[0, :1])
    policy.reset([False, True])
    assert np.any(policy.memory[0]) and not np.any(policy.memory[1])
    policy.reset()
    np.testing.assert_allclose(policy(flat[0]), outputs[0], atol=1e-6)
    np.testing.assert_allclose(policy(flat[1]), outputs[1], atol=1e-6)
    if name == "diffusion":  # playback is the same for any file with memory: one learner's is enough
        capsys.readouterr()
        assert cli.main(["play", str(out), "--steps", "10"]) == 0
        printed = capsys.readouterr().out
        assert "episode 1: return" in printed and "0 gradient steps" in printed, printed
