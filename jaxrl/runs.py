"""A trained run restored from its directory: config, envs, algorithm and a checkpoint's state."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import jax

from jaxrl import algos, config
from jaxrl.checkpoint import Checkpointer
from jaxrl.train import make_envs


class Run(NamedTuple):
    """A trained run restored from its directory."""

    cfg: Any  # config.RunConfig
    algo: Any  # the algorithm's module
    train_env: Any
    eval_env: Any
    state: Any  # the algorithm's TrainState
    meta: dict  # the checkpoint's bookkeeping (env_steps ...)


def restore_run(run_dir: Path, checkpoint: str | int, env_name: str | None = None) -> Run:
    """RUN_DIR's config, envs and `checkpoint` ("best", "latest" or env steps); `env_name`: the env
    it must be of."""
    path = run_dir / "config.yaml"
    if not path.exists():
        raise config.ConfigError(f"{run_dir} is not a run directory (no config.yaml in it)")
    cfg = config.load_saved(path)
    if env_name is not None and cfg.env_name != env_name:
        raise config.ConfigError(f"{run_dir} was trained on {cfg.env_name}, not {env_name}")
    algo = algos.get(cfg.algo_name)
    train_env, eval_env = make_envs(cfg)
    abstract = jax.eval_shape(lambda key: algo.init(key, train_env, cfg.algo), jax.random.PRNGKey(0))
    checkpointer = Checkpointer(run_dir / "checkpoints")
    try:
        state, meta = checkpointer.restore(abstract, checkpoint)
    finally:
        checkpointer.close()
    return Run(cfg, algo, train_env, eval_env, state, meta)
