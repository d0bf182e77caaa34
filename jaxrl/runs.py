"""A trained run restored from its directory: config, envs, algorithm and a checkpoint's state.

Of a population (jaxrl.population), one member is restored: the one asked
for, or the member whose best evaluation ranks first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import jax

from jaxrl import algos, config, parallel
from jaxrl.checkpoint import Checkpointer, CheckpointError
from jaxrl.compile_times import Compiler
from jaxrl.population import Population, member
from jaxrl.train import compile_evaluator, initializer, learner_env, make_envs, program_cache


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
    member: int | None = None  # of a population: which member (cfg is then a separate run's of it)
    label: str = ""  # the member's name in records (seed_3, learning_rate=0.001/seed_3)

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


def restore_run(run_dir: Path, checkpoint: str | int, env_name: str | None = None,
                member_index: int | None = None, need_policy: bool = True) -> Run:
    """RUN_DIR's config, envs and the policy of `checkpoint` ("best", "latest" or steps in the run's
    unit); `env_name`: the env it must be of. Of a population, member `member_index` (None: the best).
    need_policy: refuse a run of a learner without a policy (a world model) in a few words."""
    path = run_dir / "config.yaml"
    if not path.exists():
        raise config.ConfigError(f"{run_dir} is not a run directory (no config.yaml in it)")
    cfg = config.load_saved(path)
    if env_name is not None and cfg.env_name != env_name:
        raise config.ConfigError(f"{run_dir} was trained on {cfg.env_name}, not {env_name}")
    population = Population.of(cfg)
    if population.is_single and member_index not in (None, 0):
        raise config.ConfigError(f"{run_dir} trained one run, not a population: leave out --member")
    algo = algos.get(cfg.algo_name)
    if need_policy and not algos.has_policy(algo):
        raise config.ConfigError(f"{run_dir} trained a {cfg.algo_name}, which holds no policy to run: start "
                                 f"Dreamer from it with `jaxrl train {cfg.env_name} dreamer "
                                 f"train.init_from={run_dir}`")
    train_env, eval_env = make_envs(cfg)
    # An offline learner's state is shaped by its data's sizes, which the env and config give: the
    # demonstration files need not be at hand to restore, export or evaluate its checkpoints.
    demos = algo.abstract_data(cfg.algo, eval_env) if algos.is_offline(algo) else None
    source = learner_env(algo, train_env, eval_env)
    checkpointer = Checkpointer(run_dir / "checkpoints")
    try:
        if population.is_single:
            abstract = jax.eval_shape(initializer(algo, source, cfg.algo), jax.random.PRNGKey(0), demos)
            (params, observations), meta = checkpointer.restore_part(abstract, policy_part(algo), checkpoint)
            return Run(cfg, algo, train_env, eval_env, params, observations, meta)
        return _restore_member(checkpointer, Run(cfg, algo, train_env, eval_env, None, None, {}), source,
                               demos, checkpoint, member_index)
    finally:
        checkpointer.close()


def _restore_member(checkpointer: Checkpointer, run: Run, source, demos, checkpoint: str | int,
                    member_index: int | None) -> Run:
    """`run` (a population's, its policy still to read) as member `member_index` (None: the best) of it."""
    algo, population = run.algo, Population.of(run.cfg)
    if member_index is None:
        member_index = best_member(checkpointer, population)
    elif not 0 <= member_index < population.size:
        raise config.ConfigError(f"--member {member_index}: the run has members 0 to {population.size - 1}")
    cfg = population.member_config(run.cfg, member_index)
    if checkpoint == "best":  # the member's own best checkpoint holds a separate run's state
        abstract = jax.eval_shape(initializer(algo, source, cfg.algo), jax.random.PRNGKey(0), demos)
        (params, observations), meta = checkpointer.restore_part(abstract, policy_part(algo), "best",
                                                                 member=member_index)
    else:
        abstract = jax.eval_shape(initializer(algo, source, run.cfg.algo, None, population),
                                  population.keys(0), demos)
        every, meta = checkpointer.restore_part(abstract, lambda state: policy_part(algo)(state.runs),
                                                checkpoint)
        params, observations = member(every, member_index)
    return run._replace(cfg=cfg, params=params, observations=observations, meta=meta, member=member_index,
                        label=population.label(member_index))


def best_member(checkpointer: Checkpointer, population: Population) -> int:
    """The member whose best checkpoint's evaluation ranks first (the learner's BEST_BY)."""
    ranked = [(tuple(meta["best_score"]), m) for m in range(population.size)
              if (meta := checkpointer.best_meta(m)) is not None and meta.get("best_score") is not None]
    if not ranked:
        raise CheckpointError(f"no member's best checkpoint under {checkpointer.directory}")
    return max(ranked, key=lambda scored: (scored[0], -scored[1]))[1]


def run_evaluator(run: Run, episodes: int) -> tuple[Any, Compiler]:
    """((policy params, key) -> evaluation results of `run`'s env over `episodes` episodes, the Compiler
    that timed it), on one device. Placed and compiled as training compiles its evaluations, through the
    run's program cache: with as many episodes as the run evaluated with, it is the run's own program,
    which the compilation caches hold after training."""
    mesh = parallel.make_mesh(jax.devices()[:1])

    def placed(params, key):
        return parallel.replicate((params, key), mesh)

    example = placed(run.params, jax.random.PRNGKey(0))
    compiler = Compiler(program_cache(run.cfg))
    program = compile_evaluator(compiler, run.eval_env, run.algo, episodes, run.cfg.env.episode_length,
                                *parallel.stand_ins(example, parallel.replicated(example, mesh)))
    return (lambda params, key: program(*placed(params, key))), compiler
