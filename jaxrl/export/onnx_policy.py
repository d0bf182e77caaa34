"""Run an exported policy with onnxruntime and numpy alone: `OnnxPolicy("policy.onnx")(obs)`.

The file's graph maps the raw flat observation `obs` [B, n] to the action
`action` [B, a] (in control units when the env has an affine control, else in
[-1, 1]). A policy with memory (metadata memory_size m > 0: an observation
history, a plan of actions being executed) has a second input `memory` [B, m]
and a second output `next_memory` [B, m]: zeros at an episode's start, then
each call's `next_memory` fed back as the next call's `memory`. `OnnxPolicy`
does that itself. Everything else a deployment needs is in the ONNX
metadata_props, one JSON value per key; `PolicyMetadata` lists them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from jaxrl.export import PolicyFileError, PolicyMismatchError

FORMAT = 2  # metadata layout version; a reader refuses files from a newer one. 2 added memory_size
INPUT_NAME, OUTPUT_NAME = "obs", "action"
MEMORY_INPUT_NAME, MEMORY_OUTPUT_NAME = "memory", "next_memory"  # only in files of policies with memory
REEXPORT = "re-export it with `jaxrl export RUN_DIR --out FILE`"


@dataclasses.dataclass(frozen=True)
class PolicyMetadata:
    """What an exported policy file says about itself (metadata key = field name)."""

    jaxrl_format: int  # FORMAT of the writer
    jaxrl_version: str
    env_name: str
    algo: str
    checkpoint: str  # "best", "final" or the env steps asked for
    training_step: int  # env steps of training behind the checkpoint
    obs_layout: tuple[tuple[str, int], ...]  # (name, size) slices of `obs`, in order
    action_names: tuple[str, ...]
    control_dt: float  # seconds between actions
    action_offset: tuple[float, ...] | None  # action = offset + scale * a, a in [-1, 1]; None: action = a
    action_scale: tuple[float, ...] | None
    default_joint_pose: dict[str, Any]  # joint -> position at "home" (else qpos0); no free joints
    env_config: dict[str, Any]  # the env's full config (jaxrl.config.as_dict), to rebuild the same env
    memory_size: int = 0  # m of the memory input and output; 0: stateless (as every format-1 file is)

    @property
    def obs_size(self) -> int:
        return sum(size for _, size in self.obs_layout)

    @property
    def action_size(self) -> int:
        return len(self.action_names)

    @property
    def input_names(self) -> list[str]:
        return [INPUT_NAME, MEMORY_INPUT_NAME] if self.memory_size else [INPUT_NAME]

    @property
    def output_names(self) -> list[str]:
        return [OUTPUT_NAME, MEMORY_OUTPUT_NAME] if self.memory_size else [OUTPUT_NAME]

    def to_props(self) -> dict[str, str]:
        """ONNX metadata_props: every field JSON-encoded; the layout as [{"name", "size"}, ...]."""
        values = dataclasses.asdict(self)
        values["obs_layout"] = [{"name": name, "size": size} for name, size in self.obs_layout]
        return {key: json.dumps(value) for key, value in values.items()}

    @classmethod
    def from_props(cls, props: Mapping[str, str], source: Path) -> PolicyMetadata:
        """Inverse of `to_props`; PolicyFileError for a file that is not a (readable) jaxrl export."""
        if "jaxrl_format" not in props:
            raise PolicyFileError(f"{source} is an ONNX file but not a jaxrl policy (no jaxrl metadata); "
                                  f"{REEXPORT}")
        optional = {"memory_size"}  # absent from format-1 files: their default applies
        names = [field.name for field in dataclasses.fields(cls)
                 if field.name not in optional or field.name in props]
        try:
            values = {name: json.loads(props[name]) for name in names}
        except (KeyError, json.JSONDecodeError) as error:
            raise PolicyFileError(f"{source} has incomplete or damaged jaxrl metadata ({error!r}); "
                                  f"{REEXPORT}") from None
        if values["jaxrl_format"] > FORMAT:
            raise PolicyFileError(f"{source} was written by a newer jaxrl ({values['jaxrl_version']}, format "
                                  f"{values['jaxrl_format']}); upgrade jaxrl or {REEXPORT}")
        values["obs_layout"] = tuple((item["name"], item["size"]) for item in values["obs_layout"])
        values["action_names"] = tuple(values["action_names"])
        for name in ("action_offset", "action_scale"):
            values[name] = None if values[name] is None else tuple(values[name])
        return cls(**values)


def _layout_text(layout) -> str:
    return " ".join(f"{name}[{size}]" for name, size in layout)


class OnnxPolicy:
    """A policy.onnx with its metadata: call it on observations [n] or [B, n].

    A policy with memory keeps it here, one row per env: zeros until the first call and after
    `reset()`, then advanced by every call. Call `reset()` at every episode start (`reset(done)` for
    the envs whose episode starts); a stateless policy ignores it.
    """

    def __init__(self, path: str | Path, threads: int = 1):
        """`threads`: onnxruntime's intra-op threads; 1 is fastest for one observation at a time
        (benchmarks/results/onnx_inference_cpu.json), 0 lets it use every core for big batches."""
        self.path = Path(path)
        if not self.path.is_file():
            raise PolicyFileError(f"{self.path}: no such file; export a policy with "
                                  f"`jaxrl export RUN_DIR --out {self.path}`")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1  # a policy graph is one chain of ops: nothing to overlap
        try:
            self._session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises several types; all mean "cannot load"
            raise PolicyFileError(f"{self.path} is not a readable ONNX file ({type(error).__name__}: "
                                  f"{error}); {REEXPORT}") from None
        self.metadata = PolicyMetadata.from_props(self._session.get_modelmeta().custom_metadata_map,
                                                  self.path)
        inputs = [i.name for i in self._session.get_inputs()]
        outputs = [o.name for o in self._session.get_outputs()]
        meta = self.metadata
        if inputs != meta.input_names or outputs != meta.output_names:
            raise PolicyFileError(f"{self.path} has inputs {inputs} and outputs {outputs}, not "
                                  f"{meta.input_names} and {meta.output_names}; {REEXPORT}")
        self.memory: np.ndarray | None = None  # [B, memory_size] once called; None: zeros for any B

    def reset(self, done=None) -> None:
        """Start new episodes: every env's (done None) or those where `done` [B] is true."""
        if done is None or self.memory is None:
            self.memory = None
        else:
            self.memory = np.where(np.asarray(done, bool).reshape(-1, 1), 0.0, self.memory).astype(np.float32)

    def __call__(self, obs) -> np.ndarray:
        """Actions [a] for one observation [n], or [B, a] for a batch [B, n]."""
        x = np.asarray(obs, np.float32)
        batch = x[None] if x.ndim == 1 else x
        if batch.ndim != 2 or batch.shape[1] != self.metadata.obs_size:
            raise PolicyMismatchError(
                f"observations of shape {x.shape}, but {self.path} reads [{self.metadata.obs_size}] or "
                f"[B, {self.metadata.obs_size}]: {_layout_text(self.metadata.obs_layout)}")
        if not self.metadata.memory_size:
            actions = self._session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]
        else:
            if self.memory is None:
                self.memory = np.zeros((len(batch), self.metadata.memory_size), np.float32)
            elif len(self.memory) != len(batch):
                raise PolicyMismatchError(
                    f"{self.path} holds the memory of {len(self.memory)} envs but got {len(batch)} "
                    f"observations; call reset() to start episodes with another number of envs")
            actions, self.memory = self._session.run(
                self.metadata.output_names, {INPUT_NAME: batch, MEMORY_INPUT_NAME: self.memory})
        return actions[0] if x.ndim == 1 else actions

    def check_env(self, env, env_name: str | None = None) -> None:
        """PolicyMismatchError unless `env` (named `env_name`, if given) is the one the policy is for."""
        meta = self.metadata
        if env_name is not None and env_name != meta.env_name:
            raise PolicyMismatchError(f"{self.path} is a policy for {meta.env_name}, not {env_name}")
        layout = tuple((name, int(size)) for name, size in env.state_layout)
        if layout != meta.obs_layout:
            raise PolicyMismatchError(
                f"{self.path} reads observations of size {meta.obs_size} "
                f"({_layout_text(meta.obs_layout)}) but this env gives size {sum(s for _, s in layout)} "
                f"({_layout_text(layout)}); export the policy from a run of this env")
        if env.action_size != meta.action_size:
            raise PolicyMismatchError(
                f"{self.path} outputs {meta.action_size} actions ({', '.join(meta.action_names)}) but this "
                f"env takes {env.action_size}; export the policy from a run of this env")
