"""`jaxrl export`: a learner's deterministic policy as one self-contained, self-verified ONNX file.

The graph is the learner's `export_policy` (normalization and network) followed
by the env's control affine when it has one, converted by jax2onnx with a
symbolic batch size. Before the file appears at its destination it is written
beside it, loaded back with onnxruntime (`OnnxPolicy`) and run on recorded
observations; unless it matches the JAX policy within the tolerance it is
deleted and ExportError says by how much it differed.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import onnx
from jax2onnx import to_onnx

import jaxrl
from jaxrl import config
from jaxrl.export import ExportError
from jaxrl.export.onnx_policy import FORMAT, INPUT_NAME, OUTPUT_NAME, OnnxPolicy, PolicyMetadata

TOLERANCE = 1e-5  # largest |ONNX - JAX| accepted, in the output's units
# Opset 17 (with its IR version, 8) holds every operator an MLP policy needs and
# is read by runtimes older than the jax2onnx default (23), as embedded ones often are.
OPSET = 17
QPOS_WIDTH = {mujoco.mjtJoint.mjJNT_HINGE: 1, mujoco.mjtJoint.mjJNT_SLIDE: 1, mujoco.mjtJoint.mjJNT_BALL: 4}


@dataclasses.dataclass(frozen=True)
class Provenance:
    """Where a policy comes from: written into the file's metadata."""

    env_name: str
    algo: str
    checkpoint: str  # "best", "final" or the env steps asked for
    training_step: int  # env steps trained


@dataclasses.dataclass(frozen=True)
class ExportResult:
    path: Path
    size_bytes: int
    max_error: float  # largest |ONNX - JAX| over the recorded observations
    metadata: PolicyMetadata


def policy_input(obs):
    """The flat vector a policy reads (env.state_layout): obs["state"] of dict observations."""
    return obs["state"] if isinstance(obs, Mapping) else obs


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


def policy_metadata(env, provenance: Provenance) -> PolicyMetadata:
    """The metadata of a policy for (unwrapped) `env`."""
    affine = env.control_affine
    offset, scale = (None, None) if affine is None else (tuple(map(float, part)) for part in affine)
    return PolicyMetadata(
        jaxrl_format=FORMAT, jaxrl_version=jaxrl.__version__, env_name=provenance.env_name,
        algo=provenance.algo, checkpoint=provenance.checkpoint, training_step=int(provenance.training_step),
        obs_layout=tuple((name, int(size)) for name, size in env.state_layout),
        action_names=tuple(env.action_names), control_dt=float(env.dt), action_offset=offset,
        action_scale=scale, default_joint_pose=default_joint_pose(env.mj_model),
        env_config=config.as_dict(env.config))


def in_control_units(act: Callable, metadata: PolicyMetadata) -> Callable:
    """`act` (actions in [-1, 1]) followed by the metadata's affine, when it has one."""
    if metadata.action_offset is None:
        return act
    offset = jnp.asarray(metadata.action_offset, jnp.float32)
    scale = jnp.asarray(metadata.action_scale, jnp.float32)
    return lambda *inputs: offset + scale * act(*inputs)


def to_model(act: Callable, metadata: PolicyMetadata) -> onnx.ModelProto:
    """`act` (x[B, n] -> action[B, a]) as an ONNX model carrying `metadata`."""
    model = to_onnx(act, inputs=[("B", metadata.obs_size)], input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME], model_name=f"{metadata.env_name}-{metadata.algo}",
                    opset=OPSET)
    model.ir_version = onnx.helper.find_min_ir_version_for(model.opset_import)
    model.producer_name, model.producer_version = "jaxrl", jaxrl.__version__
    onnx.helper.set_model_props(model, metadata.to_props())
    return model


def _verified(path: Path, expected: np.ndarray, flat_obs: np.ndarray, tolerance: float) -> float:
    """Largest |ONNX - expected| of the file at `path`; ExportError beyond `tolerance`."""
    error = float(np.max(np.abs(OnnxPolicy(path)(flat_obs) - expected)))
    if not error <= tolerance:  # also catches NaN
        raise ExportError(f"the ONNX policy differs from the JAX policy by up to {error:.3g} on "
                          f"{len(flat_obs)} recorded observations (tolerance {tolerance:g}); nothing "
                          f"was written")
    return error


def export_onnx(algo, params, env, recorded_obs, out: str | Path, provenance: Provenance,
                tolerance: float = TOLERANCE) -> ExportResult:
    """Write `algo`'s deterministic policy with `params` for (unwrapped) `env` to `out`, verified.

    `recorded_obs`: a batch of the env's observations (dict observations whole);
    the file's output on them must match algo.policy's within `tolerance`.
    """
    out = Path(out)
    metadata = policy_metadata(env, provenance)
    model = to_model(in_control_units(algo.export_policy(params), metadata), metadata)
    expected = np.asarray(jax.jit(in_control_units(algo.policy, metadata))(params, recorded_obs))
    flat_obs = np.asarray(policy_input(recorded_obs), np.float32)

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.{os.getpid()}.tmp")  # same directory: the rename is atomic
    try:
        staging.write_bytes(model.SerializeToString())
        max_error = _verified(staging, expected, flat_obs, tolerance)
        os.replace(staging, out)
    finally:
        staging.unlink(missing_ok=True)
    return ExportResult(out, out.stat().st_size, max_error, metadata)


def export_run(run, checkpoint: str, out: str | Path) -> ExportResult:
    """Export a restored run's policy (`jaxrl.runs.restore_run`) to `out`, verified.

    `checkpoint` is the name the user gave it ("best", "final" or env steps), for
    the metadata. The observations to verify on are the training envs' ones
    saved with the checkpoint: real inputs.
    """
    provenance = Provenance(run.cfg.env_name, run.cfg.algo_name, checkpoint, run.steps)
    return export_onnx(run.algo, run.algo.policy_params(run.state), run.train_env.unwrapped,
                       run.state.env_state.obs, out, provenance)
