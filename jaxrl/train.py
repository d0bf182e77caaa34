"""The one outer loop every algorithm shares.

It compiles `iterations_per_call` training iterations into one device call and
around those calls it evaluates, logs, checkpoints, resumes and guards against
divergence. Algorithms stay pure (see jaxrl.algos) and never open a file.

Algorithms report completed episodes as metrics "episode_sum/<name>" (sums
over the episodes that ended) and "episode_count"; the loop turns them into
per-episode means "train/<name>".

Offline learners (algos.is_offline) train on demonstrations instead of an
env: the loop loads them once (algo.load_data) and hands them to every
compiled call as an argument, never as a constant baked into the program. Their
progress is counted in gradient steps ("grad_steps" in the log) and each
evaluation adds the learner's validation metrics.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import math
import signal
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from rich.console import Console

import envs_mjx
from jaxrl import algos, config
from jaxrl.checkpoint import Checkpointer
from jaxrl.evaluation import add_success_interval, make_evaluator
from jaxrl.logger import RunLogger
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
    compile_seconds: float
    run_seconds: float


def default_run_dir(cfg: config.RunConfig) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.env_name}-{cfg.algo_name}-{stamp}"


def make_envs(cfg: config.RunConfig):
    """(training env: batched and self-resetting, evaluation env: one episode per env)."""
    env = envs_mjx.make(cfg.env_name, cfg.env)
    episode_length = cfg.env.episode_length
    return envs_mjx.wrap_for_training(env, episode_length), envs_mjx.wrap_for_eval(env, episode_length)


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


def find_non_finite(record: dict, params) -> str | None:
    """The first non-finite metric or parameter, by name; None when all are finite."""
    for key, value in record.items():
        if not math.isfinite(value):
            return f"metric {key} = {value}"
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    finite = jax.device_get([jnp.all(jnp.isfinite(leaf)) for _, leaf in leaves])
    for (path, _), ok in zip(leaves, finite, strict=True):
        if not ok:
            return f"parameter {jax.tree_util.keystr(path)}"
    return None


@contextlib.contextmanager
def sigterm_as_interrupt():
    """A scheduler's SIGTERM stops the work the way Ctrl-C does (a run checkpoints, then exits)."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def best_score(record: dict, keys: tuple[str, ...]) -> tuple[float, ...]:
    """The record's rank under `keys`: compared in order, larger is better, "-name" ranks by -name.

    Keys the record lacks are skipped (an env without a success metric, a run
    without held-out data); they are absent from every record of a run alike.
    """
    return tuple(-record[k[1:]] if k.startswith("-") else record[k]
                 for k in keys if k.lstrip("-") in record)


def train(cfg: config.RunConfig, run_dir: Path, resume: bool = False, console: Console | None = None,
          on_record: Callable[[dict], None] | None = None) -> TrainResult:
    """Train per `cfg` into `run_dir`; with `resume`, continue from its latest checkpoint.

    `on_record(record)` sees every logged record (a progress hook); raising
    KeyboardInterrupt from it stops the run like Ctrl-C does.
    """
    console = console or Console()
    run_dir = Path(run_dir)
    if not resume and (run_dir / "checkpoints").exists():
        raise config.ConfigError(
            f"{run_dir} already holds a run; continue it with `jaxrl train --resume {run_dir}` or "
            f"choose another run_dir")
    algo = algos.get(cfg.algo_name)
    offline = algos.is_offline(algo)
    unit = "gradient steps" if offline else "env steps"
    step_key = "grad_steps" if offline else "env_steps"
    best_by = getattr(algo, "BEST_BY", algos.BEST_BY)
    tc = cfg.train
    train_env, eval_env = make_envs(cfg)
    demos = None
    if offline:  # read before any file is made: a dataset the loader refuses leaves no run behind
        demos = algo.load_data(cfg.algo, eval_env)
        cfg = dataclasses.replace(cfg, algo=algo.resolved_config(cfg.algo, demos))
    source = learner_env(algo, train_env, eval_env)

    steps_per_call = algo.steps_per_iteration(cfg.algo) * tc.iterations_per_call
    total_calls = max(1, math.ceil(tc.num_timesteps / steps_per_call))
    eval_calls = max(1, round(tc.eval_every / steps_per_call))
    checkpoint_calls = max(1, round(tc.checkpoint_every / steps_per_call))
    video_calls = max(1, round(tc.video_every / steps_per_call))

    key_init = jax.random.fold_in(jax.random.PRNGKey(tc.seed), SEED_STREAM_INIT)
    key_eval = jax.random.fold_in(jax.random.PRNGKey(tc.seed), SEED_STREAM_EVAL)
    key_video = jax.random.fold_in(jax.random.PRNGKey(tc.seed), SEED_STREAM_VIDEO)
    init = jax.jit(lambda key, demos: algo.init(key, source, cfg.algo, *algos.data_args(demos)))

    if not resume:
        state = init(key_init, demos)  # before any file is made: a setting init refuses leaves no run behind
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpointer = Checkpointer(run_dir / "checkpoints", keep=tc.keep_checkpoints)
    start_call, best, best_call = 0, None, 0
    if resume:
        state, meta = checkpointer.restore(jax.eval_shape(init, key_init, demos))
        start_call = meta["call"]
        best = tuple(meta["best_score"]) if meta.get("best_score") is not None else None
        best_call = meta.get("best_call", 0)
        if start_call >= total_calls:
            checkpointer.close()
            raise config.ConfigError(
                f"{run_dir} is already trained to {start_call * steps_per_call:,} {unit}; to train "
                f"longer, resume with a larger train.num_timesteps=N")
        console.print(f"resuming from checkpoint at {start_call * steps_per_call:,} {unit}")
    config.save(cfg, run_dir / "config.yaml")  # after the checks: a refused resume changes nothing

    def run_iterations(state, demos):
        return jax.lax.scan(lambda s, _: algo.train_step(s, source, cfg.algo, *algos.data_args(demos)),
                            state, None, length=tc.iterations_per_call)

    evaluate = make_evaluator(eval_env, algo, tc.num_eval_envs, cfg.env.episode_length)
    started = time.monotonic()
    run_call = jax.jit(run_iterations).lower(state, demos).compile()
    evaluate = evaluate.lower(algo.policy_params(state), key_eval).compile()
    validate = (jax.jit(lambda state, demos: algo.validation_metrics(state, cfg.algo, demos))
                .lower(state, demos).compile() if offline else None)
    videos = TrainingVideos(eval_env.unwrapped, algo.policy, algo.policy_params(state), key_video,
                            tc.video_steps, run_dir / "videos", console) if tc.video_every else None
    compile_seconds = time.monotonic() - started
    console.print(f"compiled in {compile_seconds:.1f} s: {tc.iterations_per_call} iterations x "
                  f"{algo.steps_per_iteration(cfg.algo):,} {unit} per device call, "
                  f"{total_calls - start_call} calls to go")

    logger = RunLogger(run_dir, total_calls * steps_per_call, start_call * steps_per_call,
                       start_call if resume else None, tc.tensorboard, console, step_key=step_key)

    def meta(call):
        return {"call": call, step_key: call * steps_per_call, "best_score": best, "best_call": best_call,
                "best_by": list(best_by)}

    def publish(record):
        logger.log(record)
        if on_record is not None:
            on_record(record)

    def run_eval(call, record) -> dict:
        """Evaluate `state`, add the results to `record`, keep a best checkpoint; the results."""
        nonlocal best, best_call
        results = {k: float(v) for k, v in evaluate(algo.policy_params(state),
                                                      jax.random.fold_in(key_eval, call)).items()}
        if validate is not None:
            results.update({k: float(v) for k, v in validate(state, demos).items()})
        results = add_success_interval(results, tc.num_eval_envs)
        record.update(results)
        score = best_score(results, best_by)
        if best is None or score > best:
            best, best_call = score, call
            checkpointer.save_best(call, state, meta(call))
        return results

    status, last_eval, run_seconds = "finished", {}, 0.0
    try:
        with sigterm_as_interrupt():
            if not resume:
                record = {"call": 0, step_key: 0}
                last_eval = run_eval(0, record)
                publish(record)
            for call in range(start_call + 1, total_calls + 1):
                call_started = time.monotonic()
                new_state, stacked = run_call(state, demos)
                record = summarize_call(jax.device_get(stacked))
                problem = find_non_finite(record, new_state.params)
                if problem is not None:
                    checkpointer.save(call - 1, state, meta(call - 1))
                    raise TrainingDiverged(
                        f"training diverged at {call * steps_per_call:,} {unit}: {problem} is not "
                        f"finite. The last good state is checkpointed at "
                        f"{(call - 1) * steps_per_call:,} {unit}. Try a lower learning_rate, a smaller "
                        f"reward_scaling or max_grad_norm.")
                state = new_state
                call_seconds = time.monotonic() - call_started
                run_seconds += call_seconds
                record.update({"call": call, step_key: call * steps_per_call,
                               "time/sps": steps_per_call / call_seconds,
                               "time/elapsed": time.monotonic() - started})
                if call % eval_calls == 0 or call == total_calls:
                    last_eval = run_eval(call, record)
                if call % checkpoint_calls == 0 or call == total_calls:
                    checkpointer.save(call, state, meta(call))
                if videos is not None and (call % video_calls == 0 or call == total_calls):
                    videos.record(algo.policy_params(state), jax.random.fold_in(key_video, call),
                                  call * steps_per_call, logger)
                publish(record)
    except KeyboardInterrupt:
        status = "interrupted"
        done_call = int(state.iteration) // tc.iterations_per_call
        checkpointer.save(done_call, state, meta(done_call))
        logger.message(f"interrupted: checkpoint saved at {done_call * steps_per_call:,} {unit}; "
                       f"continue with `jaxrl train --resume {run_dir}`")
    finally:
        checkpointer.close()
        logger.close()

    steps = int(state.iteration) // tc.iterations_per_call * steps_per_call
    if status == "finished":
        sps = (steps - start_call * steps_per_call) / max(run_seconds, 1e-9)
        shown = next((k for k in best_by if k in last_eval), "eval/episode_return")
        console.print(f"finished {steps:,} {unit}: training {run_seconds:.1f} s ({sps:,.0f} steps/s) "
                      f"+ compile {compile_seconds:.1f} s; final {shown} "
                      f"{last_eval.get(shown, math.nan):.3g}; best checkpoint at "
                      f"{best_call * steps_per_call:,} {unit}")
    console.print(f"run directory: {run_dir}")
    return TrainResult(run_dir, status, steps, last_eval, compile_seconds, run_seconds)
