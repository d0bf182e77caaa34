"""A trained run restored from its directory: config, envs, algorithm and a checkpoint's state."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import jax

from jaxrl import algos, config
from jaxrl.checkpoint import Checkpointer
from jaxrl.train import initializer, learner_env, make_envs


class Run(NamedTuple):
    """A trained run restored from its directory: what evaluating, exporting or collecting with its policy
    needs, and not the rest of its TrainState (a replay buffer can be gigabytes)."""

    cfg: Any  # config.RunConfig
    algo: Any  # the algorithm's module
    train_env: Any
    eval_env: Any
    params: Any  # the checkpoint's policy parameters: algo.policy_params of its TrainState
    observations: Any  # the training envs' last observations [num_envs, ...]; None for offline learners
    meta: dict  # the checkpoint's bookkeeping (env_steps or grad_steps, call ...)

    @property
    def steps(self) -> int:
        """Training done at the checkpoint: env steps, or gradient steps for learners from demos."""
        return self.meta["grad_steps"] if "grad_steps" in self.meta else self.meta["env_steps"]

    @property
    def steps_text(self) -> str:
        """`steps` with its unit, for messages."""
        return f"{self.steps:,} {'gradient' if 'grad_steps' in self.meta else 'env'} steps"


def policy_part(algo):
    """state -> (policy parameters, the training envs' last observations or None): what a Run holds.

    algo.policy_params only selects fields of the state (the contract), so the
    checkpoint's other leaves are never read.
    """
    def part(state):
        env_state = getattr(state, "env_state", None)
        return algo.policy_params(state), None if env_state is None else env_state.obs

    return part


def restore_run(run_dir: Path, checkpoint: str | int, env_name: str | None = None) -> Run:
    """RUN_DIR's config, envs and the policy of `checkpoint` ("best", "latest" or steps in the run's
    unit); `env_name`: the env it must be of."""
    path = run_dir / "config.yaml"
    if not path.exists():
        raise config.ConfigError(f"{run_dir} is not a run directory (no config.yaml in it)")
    cfg = config.load_saved(path)
    if env_name is not None and cfg.env_name != env_name:
        raise config.ConfigError(f"{run_dir} was trained on {cfg.env_name}, not {env_name}")
    algo = algos.get(cfg.algo_name)
    train_env, eval_env = make_envs(cfg)
    # An offline learner's state is shaped by its data's sizes, which the env and config give: the
    # demonstration files need not be at hand to restore, export or evaluate its checkpoints.
    demos = algo.abstract_data(cfg.algo, eval_env) if algos.is_offline(algo) else None
    source = learner_env(algo, train_env, eval_env)
    abstract = jax.eval_shape(initializer(algo, source, cfg.algo), jax.random.PRNGKey(0), demos)
    checkpointer = Checkpointer(run_dir / "checkpoints")
    try:
        (params, observations), meta = checkpointer.restore_part(abstract, policy_part(algo), checkpoint)
    finally:
        checkpointer.close()
    return Run(cfg, algo, train_env, eval_env, params, observations, meta)
