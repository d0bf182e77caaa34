"""Learners by name. Each module exposes the same contract:

  Config                                  frozen dataclass; defaults are a sound recipe
  validate(cfg)                           ValueError for settings that cannot run; the loop calls it
                                          for every sweep point (init must not: in a population, a
                                          swept float reaches init and train_step as a traced array)
  steps_per_iteration(cfg) -> int         env steps one train_step consumes
  init(key, env, cfg) -> TrainState       env is the batched training env
  train_step(state, env, cfg) -> (state, metrics)     pure; jit-compiled once
  policy_params(state) -> params          what `policy` and export need; it only selects fields of the
                                          state (a restore reads just those from a checkpoint)
  policy(params, obs, key=None) -> action deterministic without a key
  export_policy(params) -> fn             fn(x[B, n]) -> action[B, a] in [-1, 1]: the deterministic
                                          policy of the flat vector the actor reads (env.state_layout),
                                          normalization inside; `jaxrl export` converts it to ONNX
                                          (a policy with memory: see "Memory" below); ValueError,
                                          which `jaxrl export` reports, for a policy the file cannot
                                          carry (Dreamer's from images)

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
  BEST_BY                                 record keys the best checkpoint ranks by (see schedule.best_score)

A learner without a policy (POLICY = False: the world model, trained alone)
defines neither `policy` nor `export_policy`; its `policy_params` select what
other runs start from, its evaluations are its validation metrics alone, and
`jaxrl eval`, `export`, `play` and `collect --policy RUN_DIR` refuse its runs.

A learner that can start from what another run learned defines

  start_from(state, params) -> state      a fresh state with the other run's policy_params put in
                                          (Dreamer: a world_model or Dreamer run's world model); ValueError
                                          when they do not fit. The loop restores them from
                                          `train.init_from`'s best checkpoint; a resumed run ignores it

and a learner whose replay can start with recorded episodes defines

  prefill(state, steps) -> state          a fresh state whose replay holds `steps` (a stream of
                                          jaxrl.data.sequences.STEP_FIELDS); ValueError when they do
                                          not fit. The loop reads them from `train.prefill`'s files;
                                          a resumed run finds them in its checkpoint

A TrainState is a pytree with at least `params` (what the loop checks for
NaN) and `iteration` (an int32 count of train_step calls), and reports
finished episodes as metrics "episode_sum/<name>" and "episode_count". Its
`env_state`, and the `policy_memory` an online learner keeps of each training
env where its acting has memory (Dreamer's latent states, SAC's correlated
noise), have a leading [num_envs] axis that a run splits
over its devices (jaxrl.parallel).

`export_policy`'s fn must trace with a symbolic batch size (jax2onnx): no
Python branching on shapes, no library that reads concrete shapes (distrax
does), no jax.random (its bits do not convert: a sampling policy, such as
diffusion's, fixes its noise as a constant of the graph), and neither `%` on
arrays nor jnp.full with the batch size (jax2onnx 0.17 fails on both;
jnp.where and jnp.broadcast_to do the same). lax.scan and lax.cond convert.
x is the env's flat policy vector (obs["state"] of a dict observation, in the
slices env.state_layout names); a policy that reads other entries of a dict
observation (an offline learner's `obs_keys`, e.g. alphabetical from an HDF5
file) takes them out of x by that layout and flattens them in its own order
(jaxrl.export.state_vector).

Memory. A policy that carries state between steps (an observation history,
a plan of actions) also defines

  export_memory_size(params) -> int       m, floats of memory per env; 0 (or no such function): stateless

and its fn is fn(x[B, n], memory[B, m]) -> (action[B, a], memory[B, m]): one
flat float32 vector per env, ALL ZEROS at an episode's start (fn tells the
start from it itself, per env, so envs need not start together), and the
memory fn returned at the env's previous step after. The ONNX file then has a
second input "memory" and a second output "next_memory" and its metadata
names m; OnnxPolicy keeps the memory per env and `reset()` zeroes it.

`jaxrl export` checks the file against JAX before writing it: a stateless
policy against `policy` on the observations the checkpoint holds
(TrainState.env_state.obs) or, for a learner that never steps an env, on a
batch of the env's starts; a policy with memory over episodes in the env's
plain MuJoCo twin, the file's actions (its memory fed back) against fn's over
the same observations, within 1e-5 unless the learner's EXPORT_TOLERANCE
says otherwise (diffusion's, whose chunks are 10 U-Net calls deep).
"""

from __future__ import annotations

import difflib
import importlib
from types import ModuleType

_ALGORITHMS = {
    "ppo": ("jaxrl.algos.ppo", "on-policy PPO with GAE, clipped surrogate, observation normalization"),
    "sac": ("jaxrl.algos.sac", "off-policy SAC: twin critics, automatic temperature, replay on the device"),
    "dreamer": ("jaxrl.algos.dreamer", "Dreamer: RSSM world model; actor and critic learn in imagination"),
    "bc": ("jaxrl.algos.bc", "behavioural cloning from HDF5 demonstrations: MLP or LSTM, MSE or NLL, chunks"),
    "diffusion": ("jaxrl.algos.diffusion", "diffusion policy from HDF5 demonstrations: U-Net, DDIM chunks"),
    "world_model": ("jaxrl.algos.world_model", "Dreamer's world model alone, from recorded HDF5 episodes"),
}


# What a best checkpoint ranks by unless the learner names its own BEST_BY: keys compared in order,
# larger first; "-name" ranks by the negated value (a tie-breaker such as validation loss).
BEST_BY = ("eval/episode_return",)


class UnknownAlgorithmError(ValueError):
    pass


def is_offline(algo: ModuleType) -> bool:
    return getattr(algo, "OFFLINE", False)


def has_policy(algo: ModuleType) -> bool:
    """Whether the learner's runs hold a policy to evaluate, export and play (POLICY = False: not)."""
    return getattr(algo, "POLICY", True)


def export_memory_size(algo: ModuleType, params) -> int:
    """Floats of memory per env of `algo`'s exported policy with `params`; 0: stateless."""
    size = getattr(algo, "export_memory_size", None)
    return 0 if size is None else int(size(params))


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
