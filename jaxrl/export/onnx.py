"""`jaxrl export`: a learner's deterministic policy as one self-contained, self-verified ONNX file.

The graph is the learner's `export_policy` (normalization and network, and the
memory of a policy that has one) followed by the env's control affine when it
has one, converted by jax2onnx with a symbolic batch size. Before the file
appears at its destination it is written beside it, loaded back with
onnxruntime (`OnnxPolicy`) and checked against JAX; unless it matches within
the tolerance it is deleted and ExportError says by how much it differed.

What it is checked on: a stateless policy, on observations the checkpoint holds
(the training envs' last ones) or, for a run that never stepped an env (an
offline learner), on a batch of the env's starts, against the learner's
`policy`. A policy with memory, on sequences: the file plays a few episodes in
the env's plain MuJoCo twin (memory fed back) and the JAX fn must give the same
actions over the same observations.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import onnx
from jax2onnx import to_onnx

import jaxrl
from jaxrl import algos, config
from jaxrl.export import ExportError
from jaxrl.export.onnx_policy import FORMAT, OnnxPolicy, PolicyMetadata
from jaxrl.export.play import episode_key, record_episodes
from jaxrl.export.state_vector import policy_input

TOLERANCE = 1e-5  # largest |ONNX - JAX| accepted, in the output's units, unless the learner sets its own
VERIFY_ENVS = 16  # env starts (episodes) a policy is checked on when the checkpoint holds no observations
VERIFY_STEPS = 24  # control steps of each such episode a policy with memory is checked over
# Opset 17 (with its IR version, 8) holds every operator an MLP policy needs and
# is read by runtimes older than the jax2onnx default (23), as embedded ones often are.
OPSET = 17
QPOS_WIDTH = {mujoco.mjtJoint.mjJNT_HINGE: 1, mujoco.mjtJoint.mjJNT_SLIDE: 1, mujoco.mjtJoint.mjJNT_BALL: 4}


@dataclasses.dataclass(frozen=True)
class Provenance:
    """Where a policy comes from: written into the file's metadata."""

    env_name: str
    algo: str
    checkpoint: str  # "best", "latest" or the steps asked for (env steps; gradient steps offline)
    training_step: int  # env steps trained (gradient steps for offline learners)


@dataclasses.dataclass(frozen=True)
class ExportResult:
    path: Path
    size_bytes: int
    max_error: float  # largest |ONNX - JAX| over the observations checked
    metadata: PolicyMetadata
    checked_on: str  # what the observations were, for messages ("256 recorded observations")


def default_joint_pose(mj_model: mujoco.MjModel) -> dict[str, float | list[float]]:
    """{joint: position} at the "home" keyframe, else at qpos0.

    Free joints are left out (a deployment does not set them); ball joints are quaternions.
    """
    home = mujoco.mj_name2id(mj_model, mujoco.mjtObj.mjOBJ_KEY, "home")
    qpos = mj_model.key_qpos[home] if home >= 0 else mj_model.qpos0
    pose = {}
    for joint in range(mj_model.njnt):
        width = QPOS_WIDTH.get(mujoco.mjtJoint(mj_model.jnt_type[joint]))
        if width is None:
            continue
        start = mj_model.jnt_qposadr[joint]
        values = [float(v) for v in qpos[start:start + width]]
        pose[mj_model.joint(joint).name or f"joint_{joint}"] = values[0] if width == 1 else values
    return pose


def policy_metadata(env, provenance: Provenance, memory_size: int = 0) -> PolicyMetadata:
    """The metadata of a policy for (unwrapped) `env`, with `memory_size` floats of memory per env."""
    affine = env.control_affine
    offset, scale = (None, None) if affine is None else (tuple(map(float, part)) for part in affine)
    return PolicyMetadata(
        jaxrl_format=FORMAT, jaxrl_version=jaxrl.__version__, env_name=provenance.env_name,
        algo=provenance.algo, checkpoint=provenance.checkpoint, training_step=int(provenance.training_step),
        obs_layout=tuple((name, int(size)) for name, size in env.state_layout),
        action_names=tuple(env.action_names), control_dt=float(env.dt), action_offset=offset,
        action_scale=scale, default_joint_pose=default_joint_pose(env.mj_model),
        env_config=config.as_dict(env.config), memory_size=int(memory_size))


def in_control_units(act: Callable, metadata: PolicyMetadata) -> Callable:
    """`act` (actions in [-1, 1]; with memory, (action, memory)) followed by the metadata's affine, when
    it has one."""
    if metadata.action_offset is None:
        return act
    offset = jnp.asarray(metadata.action_offset, jnp.float32)
    scale = jnp.asarray(metadata.action_scale, jnp.float32)
    if not metadata.memory_size:
        return lambda *inputs: offset + scale * act(*inputs)

    def with_memory(x, memory):
        action, memory = act(x, memory)
        return offset + scale * action, memory

    return with_memory


def _drop_unused_initializers(graph: onnx.GraphProto) -> set[str]:
    """Remove the constants no node reads from `graph` and its subgraphs (jax2onnx leaves some in the
    branches of an If, and onnxruntime warns about each when it loads the file); the names read."""
    read = {output.name for output in graph.output}
    for node in graph.node:
        read.update(node.input)
        for attribute in node.attribute:
            subgraphs = [attribute.g] if attribute.HasField("g") else []
            for subgraph in [*subgraphs, *attribute.graphs]:
                read |= _drop_unused_initializers(subgraph)  # a subgraph may read this graph's values
    kept = [init for init in graph.initializer if init.name in read]
    if len(kept) < len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(kept)
    return read


def to_model(act: Callable, metadata: PolicyMetadata) -> onnx.ModelProto:
    """`act` (x[B, n] -> action[B, a]; with memory, (x, memory[B, m]) -> (action, memory)) as an ONNX
    model carrying `metadata`."""
    inputs = [("B", metadata.obs_size)] + ([("B", metadata.memory_size)] if metadata.memory_size else [])
    serde_log = logging.getLogger("onnx_ir.serde")  # notes on value types it leaves out: not our concern
    level = serde_log.level
    serde_log.setLevel(logging.ERROR)
    try:
        model = to_onnx(act, inputs=inputs, input_names=metadata.input_names,
                        output_names=metadata.output_names, model_name=f"{metadata.env_name}-{metadata.algo}",
                        opset=OPSET)
    finally:
        serde_log.setLevel(level)
    _drop_unused_initializers(model.graph)
    model.ir_version = onnx.helper.find_min_ir_version_for(model.opset_import)
    model.producer_name, model.producer_version = "jaxrl", jaxrl.__version__
    onnx.helper.set_model_props(model, metadata.to_props())
    return model


_STARTS: dict = {}  # (env class, env config, count) -> env_starts: tracing an MJX reset takes seconds


def env_starts(env, count: int):
    """The batched MJX states (on the host) that episodes 0 .. count-1 of a playback with seed 0 start
    from; remembered per env config, for a process that exports several policies of one env."""
    cache_key = (type(env), env.config, count)
    if cache_key not in _STARTS:
        # One env's reset, as playback compiles it (the compilation cache then serves both), in a loop.
        reset = jax.jit(env.reset)
        starts = [jax.device_get(reset(episode_key(0, episode))) for episode in range(count)]
        _STARTS.clear()  # one env's at a time: the states hold the env's whole physics data
        _STARTS[cache_key] = jax.tree.map(lambda *leaves: np.stack(leaves), *starts)
    return _STARTS[cache_key]


def sequence_outputs(act: Callable, memory_size: int, obs: np.ndarray) -> np.ndarray:
    """[T, B, a]: what `act` (x, memory) -> (action, memory) outputs over obs [T, B, n], from zero memory."""

    def step(memory, x):
        action, memory = act(x, memory)
        return memory, action

    memory = jnp.zeros((obs.shape[1], memory_size), jnp.float32)
    return np.asarray(jax.jit(lambda obs: jax.lax.scan(step, memory, obs)[1])(obs))


def _checked(path: Path, algo, params, act: Callable, metadata: PolicyMetadata, env,
             recorded_obs) -> tuple[float, str]:
    """(largest |ONNX - JAX| of the file at `path`, what it was checked on); see the module's docstring."""
    policy = OnnxPolicy(path)
    if not metadata.memory_size:
        if recorded_obs is None:
            recorded_obs, what = env_starts(env, VERIFY_ENVS).obs, "env starts"
        else:
            what = "recorded observations"
        expected = jax.jit(in_control_units(algo.policy, metadata))(params, recorded_obs)
        flat_obs = np.asarray(policy_input(recorded_obs), np.float32)
        error = np.max(np.abs(policy(flat_obs) - expected))
        return float(error), f"{len(flat_obs)} {what}"
    obs, outputs = record_episodes(policy, env, metadata.env_name, env_starts(env, VERIFY_ENVS), VERIFY_STEPS)
    error = np.max(np.abs(outputs - sequence_outputs(act, metadata.memory_size, obs)))
    return float(error), (f"{obs.shape[1]} episodes x {obs.shape[0]} steps in plain MuJoCo, memory fed "
                          f"back")


def export_tolerance(algo) -> float:
    """Largest |ONNX - JAX| an export of `algo`'s policy may show: the learner's EXPORT_TOLERANCE, else
    TOLERANCE."""
    return getattr(algo, "EXPORT_TOLERANCE", TOLERANCE)


def export_onnx(algo, params, env, recorded_obs, out: str | Path, provenance: Provenance,
                tolerance: float | None = None) -> ExportResult:
    """Write `algo`'s deterministic policy with `params` for (unwrapped) `env` to `out`, verified.

    `recorded_obs`: a batch of the env's observations (dict observations whole), or None for a
    run that has none (then the env's starts stand in, or episodes for a policy with memory); the
    file's output must match JAX's within `tolerance` (None: `export_tolerance(algo)`).
    """
    out = Path(out)
    if tolerance is None:
        tolerance = export_tolerance(algo)
    metadata = policy_metadata(env, provenance, algos.export_memory_size(algo, params))
    try:
        act = in_control_units(algo.export_policy(params), metadata)
    except ValueError as error:  # a policy the file format cannot carry; the message says which and why
        raise ExportError(str(error)) from None
    model = to_model(act, metadata)

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.{os.getpid()}.tmp")  # same directory: the rename is atomic
    try:
        staging.write_bytes(model.SerializeToString())
        max_error, checked_on = _checked(staging, algo, params, act, metadata, env, recorded_obs)
        if not max_error <= tolerance:  # also catches NaN
            raise ExportError(f"the ONNX policy differs from the JAX policy by up to {max_error:.3g} on "
                              f"{checked_on} (tolerance {tolerance:g}); nothing was written")
        os.replace(staging, out)
    finally:
        staging.unlink(missing_ok=True)
    return ExportResult(out, out.stat().st_size, max_error, metadata, checked_on)


def export_run(run, checkpoint: str, out: str | Path) -> ExportResult:
    """Export a restored run's policy (`jaxrl.runs.restore_run`) to `out`, verified.

    `checkpoint` is the name the user gave it ("best", "latest" or steps), for the
    metadata. The observations to check on are the training envs' ones saved
    with the checkpoint, real inputs; a run from demonstrations has none.
    """
    provenance = Provenance(run.cfg.env_name, run.cfg.algo_name, checkpoint, run.steps)
    return export_onnx(run.algo, run.params, run.train_env.unwrapped, run.observations, out, provenance)
