"""The one outer loop every algorithm shares.

It compiles `iterations_per_call` training iterations into one device call
(jaxrl.device_call: the state donated, divergence caught on the device) and
around those calls it evaluates, logs, checkpoints, resumes and records videos.
Algorithms stay pure (see jaxrl.algos) and never open a file.

Algorithms report completed episodes as metrics "episode_sum/<name>" (sums
over the episodes that ended) and "episode_count"; the loop turns them into
per-episode means "train/<name>".

Offline learners (algos.is_offline) train on demonstrations instead of an
env: the loop loads them once (algo.load_data) and hands them to every
compiled call as an argument, never as a constant baked into the program. Their
progress is counted in gradient steps ("grad_steps" in the log) and each
evaluation adds the learner's validation metrics.

A population (`train.num_seeds` > 1, or a `sweep`; jaxrl.population) is one
run of the loop whose state is the learner's TrainState batched over members:
the same device calls, each member evaluated and checkpointed at its best,
and records that name each member beside each sweep point's mean and
interval.

Stopping: Ctrl-C or SIGTERM stops the run once the call in progress is
recorded (its evaluation, checkpoint, video and log line), with a checkpoint
there; resumed, the run gives the unbroken run's records. A second signal stops
at once, and the run resumes from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import importlib.util
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from rich.console import Console

import envs_mjx
from jaxrl import algos, config, parallel, runtime
from jaxrl.checkpoint import Checkpointer
from jaxrl.compile_times import Compiler, ProgramTime, total_seconds
from jaxrl.data import sequences
from jaxrl.data.validate import DatasetError
from jaxrl.device_call import make_device_call, member_report, non_finite_culprit
from jaxrl.evaluation import add_success_interval, make_evaluator, policy_with_memory
from jaxrl.logger import RunLogger, TensorBoardSink
from jaxrl.population import (
    Members,
    Population,
    check_resume_keeps_population,
    explained,
    member,
    member_config,
    over_members,
    runs_of,
)
from jaxrl.program_cache import ProgramCache, host_kernels_ready
from jaxrl.schedule import Bookkeeping, Schedule, check_resume_keeps_step_accounting
from jaxrl.signals import StopRequests
from jaxrl.video import TrainingVideos

# Independent key streams: evaluating or recording videos never shifts training.
SEED_STREAM_INIT, SEED_STREAM_EVAL, SEED_STREAM_VIDEO = 0, 1, 2


class TrainingDiverged(RuntimeError):
    """A loss or parameter became NaN or infinite; the message names it."""


@dataclasses.dataclass
class TrainResult:
    run_dir: Path
    status: str  # "finished" or "interrupted"
    steps: int  # env steps trained; gradient steps for offline learners
    final_eval: dict
    run_seconds: float
    programs: list[ProgramTime]  # each compiled program's seconds, by stage

    @property
    def compile_seconds(self) -> float:
        return total_seconds(self.programs)


def default_run_dir(cfg: config.RunConfig) -> Path:
    """runs/<env>-<algo>-<time>, at process 0's time: the processes of a multi-host job write one run."""
    now = parallel.main_process_value(int(time.time()))
    stamp = datetime.datetime.fromtimestamp(now).strftime("%Y%m%d-%H%M%S")
    env = cfg.env_name.replace(":", "-")  # a peer's env (brax:ant): no colon in a path that tools split on
    return Path("runs") / f"{env}-{cfg.algo_name}-{stamp}"


def make_envs(cfg: config.RunConfig):
    """(training env: batched and self-resetting, evaluation env: one episode per env).

    A setting the env or its wrappers refuse is a ConfigError, like any other bad setting.
    """
    return _envs(cfg.env_name, cfg.env)


# The same env objects for the same settings, in one process: the programs built on them (cached by the
# env they step, as jit caches by function) then trace and compile once for a sweep, a resume or tests.
@functools.lru_cache(maxsize=16)
def _envs(env_name: str, env_config):
    try:
        env = envs_mjx.make(env_name, env_config)
        episode_length = env_config.episode_length
        return envs_mjx.wrap_for_training(env, episode_length), envs_mjx.wrap_for_eval(env, episode_length)
    except ValueError as error:
        raise config.ConfigError(f"env: {error}") from None


@functools.lru_cache(maxsize=16)
def initializer(algo, env, algo_cfg, mesh=None, population: Population | None = None):
    """jit-compiled (key, demos) -> a fresh TrainState of `algo` on `env` (demos None if it steps an env),
    placed on `mesh` as parallel.state_shardings says (None: on the default device). For a
    `population`: (its members' keys [members, 2], demos) -> its Members."""
    def init_run(key, demos, settings):
        return algo.init(key, env, member_config(algo_cfg, settings), *algos.data_args(demos))

    def init(key, demos):
        if population is None:
            state = init_run(key, demos, {})
        else:
            settings = {name: jnp.asarray(values) for name, values in population.settings().items()}
            runs = jax.vmap(init_run, in_axes=(0, None, 0))(key, demos, settings)
            state = Members(runs, settings, jnp.ones(population.size, bool))
        if mesh is None:
            return state
        return jax.lax.with_sharding_constraint(state, parallel.state_shardings(state, mesh))

    return jax.jit(init)


@functools.lru_cache(maxsize=16)
def validator(algo, algo_cfg, members: bool = False):
    """jit-compiled (state, demos) -> an offline learner's validation metrics ([members] of each, for a
    population's Members)."""
    def validate(runs, settings, demos):
        return algo.validation_metrics(runs, member_config(algo_cfg, settings), demos)

    def validate_members(state, demos):
        return jax.vmap(validate, (0, 0, None))(state.runs, state.settings, demos)

    return jax.jit(validate_members if members else lambda state, demos: validate(state, {}, demos))


# The training settings the programs are traced from; the others (how long, how often, where) are not.
PROGRAM_TRAIN_FIELDS = ("seed", "num_seeds", "population_devices", "iterations_per_call", "num_eval_envs",
                        "video_steps")


def program_cache(cfg: config.RunConfig) -> ProgramCache | None:
    """Where a run's programs are kept between processes (jaxrl.program_cache): on one device, from a
    script or `jaxrl`, unless JAXRL_PROGRAM_CACHE=0. Several devices trace as before (an exported
    program's shardings are not kept yet), and so does an interactive session, whose code in __main__
    has no file the cache's key could read."""
    interactive = not hasattr(sys.modules["__main__"], "__file__")
    if not runtime.PROGRAM_CACHE or interactive or jax.device_count() > 1 or not host_kernels_ready():
        return None
    train_fields = {name: getattr(cfg.train, name) for name in PROGRAM_TRAIN_FIELDS}
    settings = repr((cfg.env_name, cfg.algo_name, cfg.env, cfg.algo, train_fields, cfg.sweep))
    return ProgramCache(runtime.CACHE_DIR / "programs", settings)


def compile_evaluator(compiler: Compiler, eval_env, algo, num_envs: int, episode_length: int, params, key,
                      members: bool = False):
    """make_evaluator's program, compiled by `compiler` as "evaluate" for `params` and `key` (stand-ins
    placed as a run places them: on its mesh, whole on each device); `members`: over a population's
    leading axis. Training and `jaxrl eval` compile it alike, so an evaluation of a checkpoint with as many
    episodes as the run evaluated finds the run's program in the compilation caches."""
    evaluate = make_evaluator(eval_env, algo, num_envs, episode_length)
    return compiler.compile("evaluate", over_members(evaluate) if members else evaluate, params, key)


def learner_env(algo, train_env, eval_env):
    """The env a learner's init and train_step get: the batched training env, or for an offline learner
    the evaluation env (its observation and action spaces; it is never stepped there)."""
    return eval_env if algos.is_offline(algo) else train_env


def summarize_call(stacked: dict) -> dict:
    """Host floats from one call's metrics, stacked over its iterations."""
    metrics = {k: np.asarray(v) for k, v in stacked.items()}
    record = {k: float(v.mean()) for k, v in metrics.items() if not k.startswith("episode_")}
    count = float(metrics["episode_count"].sum()) if "episode_count" in metrics else 0.0
    if count > 0:
        for key, value in metrics.items():
            if key.startswith("episode_sum/"):
                name = key.split("/", 1)[1]
                name = f"episode_{name}" if name in ("return", "length") else name
                record[f"train/{name}"] = float(value.sum()) / count
    return record


class _Loop:
    """One run: its state, compiled programs, checkpoints and log, and what a device call entails."""

    def __init__(self, cfg: config.RunConfig, algo, eval_env, source, demos, run_dir: Path, console: Console,
                 on_record: Callable[[dict], None] | None, mesh):
        self.cfg, self.algo, self.eval_env, self.source, self.mesh = cfg, algo, eval_env, source, mesh
        self.demos = None if demos is None else parallel.replicate(demos, mesh)
        self.schedule, self.run_dir, self.console = Schedule.of(algo, cfg), run_dir, console
        self.on_record = on_record
        population = Population.of(cfg)
        self.population = None if population.is_single else population  # None: a single run
        self.books = Bookkeeping.of(getattr(algo, "BEST_BY", algos.BEST_BY), 0 if population.is_single
                                    else population.size)
        streams = (SEED_STREAM_INIT, SEED_STREAM_EVAL, SEED_STREAM_VIDEO)
        if self.population is None:
            seed = jax.random.PRNGKey(cfg.train.seed)
            self.key_init, self.key_eval, self.key_video = (jax.random.fold_in(seed, s) for s in streams)
        else:  # each member's keys are a separate run's with its seed
            self.key_init, self.key_eval, self.key_video = (population.keys(s) for s in streams)
        self.init = initializer(algo, source, cfg.algo, mesh, self.population)
        self.compiler = Compiler(program_cache(cfg))
        with explained(population):
            shapes = self.compiler.output_shapes("init", self.init, self.key_init, self.demos)
        # What a restore fills in, and what the programs that take the state are lowered from.
        self.abstract_state = parallel.stand_ins(shapes, parallel.state_shardings(shapes, mesh))
        self.stop = StopRequests()
        self.started = time.monotonic()
        # Set as the run gets there: the state (init or restore), checkpoints, compiled programs, the log.
        self.state = self.checkpointer = self.logger = None
        self.run_call = self.evaluate = self.validate = self.videos = None

    def started_from(self, run_dir: Path):
        """The fresh state with what `run_dir`'s best checkpoint learned put in (algo.start_from), for
        every member alike; ConfigError when the learner or the run cannot."""
        from jaxrl.runs import restore_run  # it imports this module

        cfg, start_from = self.cfg, getattr(self.algo, "start_from", None)
        if start_from is None:
            raise config.ConfigError(f"train.init_from: {cfg.algo_name} does not start from another run; "
                                     f"dreamer does (from a world_model or dreamer run)")
        run = restore_run(run_dir, "best", env_name=cfg.env_name, need_policy=False)
        check_same_dynamics(run.cfg.env, cfg.env, f"train.init_from: {run_dir}")
        return self.every_member(start_from, run.params, f"train.init_from: {run_dir}")

    def prefilled(self, data: str):
        """The fresh state with the episodes of `data` in its replay (algo.prefill), for every member
        alike; ConfigError when the learner or the data cannot."""
        cfg, prefill = self.cfg, getattr(self.algo, "prefill", None)
        if prefill is None:
            raise config.ConfigError(f"train.prefill: {cfg.algo_name} does not start from recorded episodes; "
                                     f"dreamer does")
        try:
            steps = sequences.load_for_env(data, "all", cfg.algo.obs_key, 0.0, 0, self.eval_env).train
        except DatasetError as error:
            raise config.ConfigError(f"train.prefill: {error}") from None
        return self.every_member(prefill, steps, f"train.prefill: {data}")

    def every_member(self, fn, arg, where: str):
        """The state with fn(run, arg) applied to it (to each member of a population), placed as before;
        ConfigError naming `where` for fn's ValueError."""
        def apply(state, arg):
            if self.population is not None:
                state = state.replace(runs=jax.vmap(fn, (0, None))(state.runs, arg))
            else:
                state = fn(state, arg)
            if self.mesh is None:
                return state
            return jax.lax.with_sharding_constraint(state, parallel.state_shardings(state, self.mesh))

        try:
            return jax.jit(apply)(self.state, arg)
        except ValueError as error:
            raise config.ConfigError(f"{where}: {error}") from None

    @property
    def width(self) -> int:
        """Runs trained side by side: the population's members, or 1."""
        return 1 if self.population is None else self.population.size

    def meta(self, call: int) -> dict:
        """What a checkpoint after `call` holds beside the state."""
        return self.books.meta(self.schedule, call)

    def say(self, text: str) -> None:
        (self.logger.message if self.logger is not None else self.console.print)(text)

    def open_checkpoints(self, resume: bool) -> int:
        """Open the run's checkpoints (resuming: restore the newest readable one); the calls done."""
        self.checkpointer = Checkpointer(self.run_dir / "checkpoints", keep=self.cfg.train.keep_checkpoints)
        if not resume:
            return 0
        try:
            self.state, meta = self.checkpointer.restore_newest_readable(
                self.abstract_state, lambda text: self.console.print(f"[yellow]warning:[/yellow] {text}"))
        except BaseException:
            self.checkpointer.close()
            raise
        self.books.restore(meta)
        return meta["call"]

    def compile(self, fresh: bool) -> None:
        """Compile every program the loop runs (with `fresh`, the initializer too), timed in
        `self.compiler.times`; the initializer first, as it runs first."""
        algo, cfg, tc, mesh, compiler = self.algo, self.cfg, self.cfg.train, self.mesh, self.compiler
        params = algo.policy_params(runs_of(self.abstract_state))  # placed as the state's
        replicated = lambda tree: parallel.stand_ins(tree, parallel.replicated(tree, mesh))  # noqa: E731
        state_and_demos = (self.abstract_state, replicated(self.demos))
        members = self.population is not None
        run_call = make_device_call(algo, self.source, cfg.algo, tc.iterations_per_call, mesh, members)
        if fresh:
            self.init = compiler.compile("init", self.init, self.key_init, self.demos, rarely_run=True)
        with explained(self.population or Population.of(cfg)):
            self.run_call = compiler.compile("train call", run_call, *state_and_demos, donate_argnums=(0,))
        if algos.has_policy(algo):
            episodes, length = tc.num_eval_envs, cfg.env.episode_length
            self.evaluate = compile_evaluator(compiler, self.eval_env, algo, episodes, length, params,
                                              replicated(self.key_eval), members)
        if algos.is_offline(algo):
            self.validate = compiler.compile("validate", validator(algo, cfg.algo, members), *state_and_demos)
        # Videos are made by process 0 alone, on its first device: the rollout is lowered from unplaced
        # stand-ins and run on local copies.
        if tc.video_every and parallel.is_main_process() and algos.has_policy(algo):
            self.videos = TrainingVideos(self.eval_env.unwrapped, policy_with_memory(algo),
                                         *parallel.stand_ins(self.first_member((params, self.key_video))),
                                         tc.video_steps, self.run_dir / "videos", self.console,
                                         functools.partial(compiler.compile, "videos", rarely_run=True))

    def first_member(self, tree):
        """`tree`, or a population's first member of it: what videos show."""
        return tree if self.population is None else member(tree, 0)

    def eval_key(self, call: int) -> jax.Array:
        if self.population is None:
            return jax.random.fold_in(self.key_eval, call)
        return jax.vmap(jax.random.fold_in, in_axes=(0, None))(self.key_eval, call)

    def run_eval(self, call: int, record: dict) -> None:
        """Evaluate the state, add the results to `record`, keep a best checkpoint (one per member)."""
        results = {}
        if self.evaluate is not None:
            key = parallel.replicate(self.eval_key(call), self.mesh)
            results = parallel.to_host(self.evaluate(self.algo.policy_params(runs_of(self.state)), key))
        if self.validate is not None:
            results.update(parallel.to_host(self.validate(self.state, self.demos)))
        if self.population is None:
            results = add_success_interval({k: float(v) for k, v in results.items()},
                                           self.cfg.train.num_eval_envs)
            if self.books.evaluated(call, results):
                self.checkpointer.save_best(call, self.state, self.meta(call))
        else:
            results = self.member_evals(call, results)
        record.update(results)

    def member_evals(self, call: int, results: dict) -> dict:
        """The population record of each member's evaluation results; each member's best kept."""
        alive, episodes = parallel.to_host(self.state.alive), self.cfg.train.num_eval_envs
        evals = [add_success_interval({k: float(v[m]) for k, v in results.items()}, episodes)
                 if alive[m] else None for m in range(self.width)]
        for m, books in enumerate(self.books.members):
            if evals[m] is not None and books.evaluated(call, evals[m]):
                meta = {**books.meta(self.schedule, call), "member": m, "label": self.population.label(m)}
                self.checkpointer.save_best(call, member(self.state.runs, m), meta, member=m)
        record = self.population.record_of(evals)
        self.books.evaluated(call, record)
        return record

    def publish(self, record: dict) -> None:
        if self.logger is not None:  # process 0's
            self.logger.log(record)
        self.books.published_call = record["call"]
        if self.on_record is not None:
            try:
                self.on_record(record)
            except KeyboardInterrupt:  # a progress hook stops the run the way Ctrl-C does
                self.stop.request()

    def diverged(self, call: int, rows: dict, report, params, who: str = "") -> TrainingDiverged:
        """Checkpoint the state the diverging call handed back (the last good one); the error."""
        schedule, unit = self.schedule, self.schedule.unit
        self.checkpointer.save(call - 1, self.state, self.meta(call - 1))
        at = schedule.steps(call - 1) + int(report.iterations) * schedule.steps_per_iteration
        culprit = non_finite_culprit(rows, report, params)
        return TrainingDiverged(
            f"training diverged at {at:,} {unit}{who}: {culprit} is not finite. The last good state is "
            f"checkpointed at {schedule.steps(call - 1):,} {unit}. Try a lower learning_rate, a smaller "
            f"reward_scaling or max_grad_norm.")

    def call_record(self, call: int, rows: dict, report, alive_before) -> dict:
        """The record of call `call`'s metrics; TrainingDiverged if the run (every member) diverged. A
        member that diverged is announced and left out of this and later records."""
        if self.population is None:
            if not report.finite:
                raise self.diverged(call, rows, report, self.state.params)
            return summarize_call(rows)
        params = self.algo.policy_params(self.state.runs)
        for m in np.flatnonzero(alive_before & ~report.finite):
            rows_m, report_m = member_report(rows, report, m)
            at = self.schedule.steps(call - 1) + int(report_m.iterations) * self.schedule.steps_per_iteration
            culprit = non_finite_culprit(rows_m, report_m, member(params, m))
            left = int(report.finite.sum())
            if not left:
                raise self.diverged(call, rows_m, report_m, member(params, m), f" (every member; the last, "
                                    f"{self.population.label(m)})")
            self.say(f"[yellow]member {self.population.label(m)} diverged[/yellow] at {at:,} "
                     f"{self.schedule.unit}: {culprit} is not finite. It stays at its last good state; "
                     f"the other {left} go on")
        return self.population.record_of([summarize_call(member_report(rows, report, m)[0])
                                          if report.finite[m] else None for m in range(self.width)])

    def one_call(self, call: int) -> float:
        """Run device call `call` and everything due after it; its seconds on the device."""
        schedule = self.schedule
        alive_before = None if self.population is None else parallel.to_host(self.state.alive)
        started = time.monotonic()
        self.state, rows, report = self.run_call(self.state, self.demos)
        rows, report = parallel.to_host((rows, report))
        record = self.call_record(call, rows, report, alive_before)
        seconds = time.monotonic() - started
        record.update({"call": call, schedule.step_key: schedule.steps(call),
                       "time/sps": schedule.steps_per_call / seconds,  # of each member, as steps count
                       "time/elapsed": time.monotonic() - self.started})
        if schedule.due(call, schedule.eval_calls):
            self.run_eval(call, record)
        if schedule.due(call, schedule.checkpoint_calls):
            self.checkpointer.save(call, self.state, self.meta(call))
        if self.videos is not None and schedule.due(call, schedule.video_calls):
            params = self.first_member(self.algo.policy_params(runs_of(self.state)))
            self.videos.record(parallel.local_copy(params), jax.random.fold_in(self.first_member(
                self.key_video), call), schedule.steps(call), self.logger)
        self.publish(record)
        return seconds

    def run(self, start_call: int, resume: bool) -> tuple[str, float]:
        """The calls after `start_call` (and a fresh run's first evaluation); (status, seconds of calls)."""
        schedule, run_seconds = self.schedule, 0.0
        with self.stop:
            if not resume:
                record = {"call": 0, schedule.step_key: 0}
                self.run_eval(0, record)
                self.publish(record)
            stopped = False
            for call in range(start_call + 1, schedule.total_calls + 1):
                stopped = parallel.any_process(self.stop.requested)  # every process stops at the same call
                if stopped:
                    break
                run_seconds += self.one_call(call)
        last = self.books.published_call
        if not stopped or last == schedule.total_calls:
            return "finished", run_seconds
        self.checkpointer.save(last, self.state, self.meta(last))
        if self.logger is not None:
            self.logger.message(f"interrupted: checkpoint saved at {schedule.steps(last):,} "
                                f"{schedule.unit}; continue with `jaxrl train --resume {self.run_dir}`")
        return "interrupted", run_seconds


def check_same_dynamics(theirs, ours, where: str) -> None:
    """ConfigError when two env configs differ in more than the episode length (which leaves the dynamics
    and rewards alone): what one run learned of its env would not hold in the other's."""
    differing = [f"{field.name}={getattr(theirs, field.name)!r} there, {getattr(ours, field.name)!r} here"
                 for field in dataclasses.fields(ours) if field.name != "episode_length"
                 and getattr(theirs, field.name) != getattr(ours, field.name)]
    if differing:
        raise config.ConfigError(f"{where}: its env had other settings ({'; '.join(differing)}): pass the "
                                 f"same env.KEY=VALUE settings")


def _prepare(cfg: config.RunConfig, mesh):
    """(cfg with what the data decided, algo, eval env, the env the learner gets, demos or None)."""
    algo = algos.get(cfg.algo_name)
    config.check_algo(cfg)  # every sweep point's settings (a learner's init no longer checks them)
    if not algos.is_offline(algo):
        parallel.check_divides(cfg.algo.num_envs, mesh)
    train_env, eval_env = make_envs(cfg)
    demos = None
    if algos.is_offline(algo):  # read before any file is made: data the loader refuses leaves no run behind
        demos = algo.load_data(cfg.algo, eval_env)
        cfg = dataclasses.replace(cfg, algo=algo.resolved_config(cfg.algo, demos))
    return cfg, algo, eval_env, learner_env(algo, train_env, eval_env), demos


def train(cfg: config.RunConfig, run_dir: Path, resume: bool = False, console: Console | None = None,
          on_record: Callable[[dict], None] | None = None, devices=None) -> TrainResult:
    """Train per `cfg` into `run_dir`; with `resume`, continue from its newest readable checkpoint.

    `on_record(record)` sees every logged record (a progress hook); raising
    KeyboardInterrupt from it stops the run like Ctrl-C does. `devices`: what
    the run is spread over (default: every device of every process; see
    jaxrl.parallel). Only process 0 prints and writes logs.
    """
    main = parallel.is_main_process()
    console = (console or Console()) if main else Console(quiet=True)
    mesh = parallel.make_mesh(devices, cfg.train.population_devices, Population.of(cfg).size)
    run_dir = Path(run_dir)
    if not resume and (run_dir / "checkpoints").exists():
        raise config.ConfigError(
            f"{run_dir} already holds a run; continue it with `jaxrl train --resume {run_dir}` or "
            f"choose another run_dir")
    if cfg.train.wandb and importlib.util.find_spec("wandb") is None:
        raise config.ConfigError("train.wandb=true needs Weights & Biases: pip install -e '.[wandb]'")
    cfg, algo, eval_env, source, demos = _prepare(cfg, mesh)
    if resume:
        saved = config.load_saved(run_dir / "config.yaml")
        check_resume_keeps_step_accounting(algo, saved, cfg)
        check_resume_keeps_population(saved, cfg)
    loop = _Loop(cfg, algo, eval_env, source, demos, run_dir, console, on_record, mesh)
    schedule = loop.schedule
    if not resume:  # before any file is made: a setting init refuses leaves no run behind
        loop.compile(fresh=True)
        loop.state = loop.init(loop.key_init, loop.demos)
        if cfg.train.init_from:
            loop.state = loop.started_from(Path(cfg.train.init_from))
        if cfg.train.prefill:
            loop.state = loop.prefilled(cfg.train.prefill)
    parallel.sync("jaxrl: the run directory is checked")  # by every process, before process 0 writes
    run_dir.mkdir(parents=True, exist_ok=True)
    start_call = loop.open_checkpoints(resume)
    if start_call >= schedule.total_calls:
        loop.checkpointer.close()
        raise config.ConfigError(
            f"{run_dir} is already trained to {schedule.steps(start_call):,} {schedule.unit}; to train "
            f"longer, resume with a larger train.num_timesteps=N")
    if resume:
        console.print(f"resuming from checkpoint at {schedule.steps(start_call):,} {schedule.unit}")
        loop.compile(fresh=False)
    if main:  # after the checks: a refused resume changes nothing
        config.save(cfg, run_dir / "config.yaml")
    return _run(loop, start_call, resume)


def _log_sinks(loop: _Loop, start_steps: int, resume: bool) -> list:
    """Where the run's records go besides metrics.jsonl: TensorBoard, W&B, as train.* asks."""
    tc, sinks = loop.cfg.train, []
    if tc.tensorboard:  # on resume, drop the events a crashed process wrote past the checkpoint
        sinks.append(TensorBoardSink(loop.run_dir, start_steps + 1 if resume else None))
    if tc.wandb:
        from jaxrl.wandb_sink import WandbSink

        sinks.append(WandbSink(loop.run_dir, config.as_dict(loop.cfg), loop.schedule.step_key,
                               tc.wandb_project, loop.console))
    return sinks


def _run(loop: _Loop, start_call: int, resume: bool) -> TrainResult:
    """Compile, run, report; the checkpoints and the log are closed at the end, whatever happens."""
    schedule, console, tc = loop.schedule, loop.console, loop.cfg.train
    status, run_seconds = "interrupted", 0.0
    programs = loop.compiler.times
    compile_seconds = total_seconds(programs)
    try:
        console.print(f"compiled in {compile_seconds:.1f} s: {tc.iterations_per_call} iterations x "
                      f"{schedule.steps_per_iteration:,} {schedule.unit} per device call, "
                      f"{schedule.total_calls - start_call} calls to go")
        console.print(f"[dim]  {'; '.join(p.describe() for p in programs)}[/dim]", highlight=False)
        if parallel.is_main_process():
            loop.logger = RunLogger(loop.run_dir, schedule.steps(schedule.total_calls),
                                    schedule.steps(start_call), start_call if resume else None,
                                    _log_sinks(loop, schedule.steps(start_call), resume), console,
                                    step_key=schedule.step_key)
        status, run_seconds = loop.run(start_call, resume)
    except KeyboardInterrupt:  # a second signal: stop at once, the last checkpoint stands
        kept = loop.checkpointer.latest_step() or 0
        console.print(f"stopped at once: `jaxrl train --resume {loop.run_dir}` continues from the last "
                      f"checkpoint, at {schedule.steps(kept):,} {schedule.unit}")
    finally:
        loop.checkpointer.close()
        if loop.logger is not None:
            loop.logger.close()

    steps = schedule.steps(loop.books.published_call)
    if status == "finished":
        sps = (steps - schedule.steps(start_call)) * loop.width / max(run_seconds, 1e-9)
        console.print(f"finished {steps:,} {schedule.unit}{_times(loop.width)}: training {run_seconds:.1f} s "
                      f"({sps:,.0f} steps/s{' in all' if loop.width > 1 else ''}) + compile "
                      f"{compile_seconds:.1f} s; {_final_eval(loop)}")
    console.print(f"run directory: {loop.run_dir}")
    return TrainResult(loop.run_dir, status, steps, loop.books.last_eval, run_seconds, programs)


def _times(width: int) -> str:
    return "" if width == 1 else f" x {width} members"


def _final_eval(loop: _Loop) -> str:
    """The last evaluation's headline (each sweep point's mean and interval) and where the best is."""
    books, schedule, last = loop.books, loop.schedule, loop.books.last_eval
    ranked = (key.removeprefix("-") for key in books.best_by)
    shown = next((k for k in ranked if any(r == k or r.startswith(f"{k}/") for r in last)),
                 "eval/episode_return")  # the first ranking key the evaluation has (once per member)
    if loop.population is None:
        return (f"final {shown} {last.get(shown, math.nan):.3g}; best checkpoint at "
                f"{schedule.steps(books.best_call):,} {schedule.unit}")
    figures = []
    for label, mean, interval in loop.population.point_means(last, shown):
        bounds = f" [{interval[0]:.3g}, {interval[1]:.3g}]" if interval else ""
        figures.append(f"{label or 'mean'} {mean:.3g}{bounds}")
    return (f"final {shown} (95% interval over {loop.population.num_seeds} seeds): {'; '.join(figures)}; "
            f"each member's best checkpoint in checkpoints/best_member_<m>")
