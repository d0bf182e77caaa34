"""Learners by name. Each module exposes the same contract:

  Config                                  frozen dataclass; defaults are a sound recipe
  validate(cfg)                           ValueError for settings that cannot run
  steps_per_iteration(cfg) -> int         env steps one train_step consumes
  init(key, env, cfg) -> TrainState       env is the batched training env
  train_step(state, env, cfg) -> (state, metrics)     pure; jit-compiled once
  policy_params(state) -> params          what `policy` and export need
  policy(params, obs, key=None) -> action deterministic without a key
  export_policy(params) -> fn             fn(x[B, n]) -> action[B, a] in [-1, 1]: the deterministic
                                          policy of the flat vector the actor reads (env.state_layout),
                                          normalization inside; `jaxrl export` converts it to ONNX

Offline learners (OFFLINE = True) learn from demonstrations, not from env
steps; they add and change:

  load_data(cfg, env) -> demos            host side, once: read, check, split, normalize, put on the device
  resolved_config(cfg, demos) -> cfg      cfg with what the data decided filled in (e.g. obs_keys), saved
                                          with the run so a checkpoint restores without the data files
  abstract_data(cfg, env) -> demos        shapes only (jax.ShapeDtypeStruct leaves): what restoring needs
  init(key, env, cfg, demos), train_step(state, env, cfg, demos)
                                          env is the evaluation env (its spaces); demos a jit argument
  steps_per_iteration(cfg) -> int         gradient steps, the loop's unit for these learners
  validation_metrics(state, cfg, demos)   {"val/loss": ...} on held-out episodes, at each evaluation
  BEST_BY                                 record keys the best checkpoint ranks by (see train.best_score)

A TrainState is a pytree with at least `params` (what the loop checks for
NaN) and `iteration` (an int32 count of train_step calls), and reports
finished episodes as metrics "episode_sum/<name>" and "episode_count".

`export_policy`'s fn must trace with a symbolic batch size (jax2onnx): no
Python branching on shapes, no library that reads concrete shapes (distrax
does). `jaxrl export` checks it against `policy` on the observations the
checkpoint holds (TrainState.env_state.obs). Planned extensions, so later
learners slot in: a policy with memory (recurrent BC) passes it explicitly,
fn(x, *memory) -> (action, *memory), each memory [B, m] and zeros at an
episode start, its sizes named by export_memory(params) -> {name: m}, and the
ONNX file gets those names as extra inputs and outputs; a sampling policy
(diffusion) fixes its noise inside fn, so the file is a function of its inputs.
"""

from __future__ import annotations

import difflib
import importlib
from types import ModuleType

_ALGORITHMS = {
    "ppo": ("jaxrl.algos.ppo", "on-policy PPO with GAE, clipped surrogate, observation normalization"),
    "sac": ("jaxrl.algos.sac", "off-policy SAC: twin critics, automatic temperature, replay on the device"),
    "bc": ("jaxrl.algos.bc", "behavioural cloning from HDF5 demonstrations: MLP, MSE or Gaussian NLL"),
    "diffusion": ("jaxrl.algos.diffusion", "diffusion policy from HDF5 demonstrations: U-Net, DDIM chunks"),
}


# What a best checkpoint ranks by unless the learner names its own BEST_BY: keys compared in order,
# larger first; "-name" ranks by the negated value (a tie-breaker such as validation loss).
BEST_BY = ("eval/episode_return",)


class UnknownAlgorithmError(ValueError):
    pass


def is_offline(algo: ModuleType) -> bool:
    return getattr(algo, "OFFLINE", False)


def data_args(demos) -> tuple:
    """The trailing arguments of an offline learner's init and train_step: (demos,), or none."""
    return () if demos is None else (demos,)


def list_algorithms() -> dict[str, str]:
    return {name: summary for name, (_, summary) in _ALGORITHMS.items()}


def get(name: str) -> ModuleType:
    if name not in _ALGORITHMS:
        close = difflib.get_close_matches(name, _ALGORITHMS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UnknownAlgorithmError(
            f"unknown algorithm {name!r}{hint} Available: {', '.join(_ALGORITHMS)}")
    return importlib.import_module(_ALGORITHMS[name][0])
