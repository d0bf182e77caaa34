"""Shared fixtures: compiled envs and tiny configs reused across the session."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before jax loads: no XLA cache-load chatter
# No program cache (jaxrl.program_cache) but in its own tests: a test that patches what a program computes
# would find the unpatched program of an earlier test; and the suite starts cold, where it only adds work.
os.environ["JAXRL_PROGRAM_CACHE"] = "0"

import dataclasses
import fcntl
import gc
import json
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
from tiny_runs import TINY_CARTPOLE_PPO

import envs_mjx
from jaxrl import config, runtime

# The suite compiles far more than it runs: its processes start XLA with the quick-compile flags at LLVM
# -O0, which compiles sooner than their -O1 and runs slower. Runs that execute far more than they compile
# (the learning tests) go to a `jaxrl` process of their own at -O1: jaxrl_process.
SUITE_FLAGS = runtime.COMPILE_ONLY_FLAGS
# jax.jit(..., compiler_options=RUNS_LONG): a program of the suite that runs long, at learning runs' -O1.
RUNS_LONG = {"xla_backend_optimization_level": 1}


def suite_xla_flags(xla_flags: str) -> str:
    """XLA_FLAGS for the suite: the caller's, plus SUITE_FLAGS where this jaxlib knows them (it aborts the
    process on a flag it does not know, so a child process tries them first). No child where they are all
    set already or XLA_FLAGS holds them: pytest-xdist's workers inherit the XLA_FLAGS their parent chose."""
    flags = runtime.with_xla_flags(xla_flags, SUITE_FLAGS)
    if flags in (xla_flags, os.environ.get("XLA_FLAGS")):
        return flags
    probe = subprocess.run([sys.executable, "-c", "import jax; jax.devices()"], capture_output=True,
                           env=dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS="cpu"))
    return flags if probe.returncode == 0 else xla_flags


# The caller's XLA_FLAGS, kept for jaxrl_process: the suite's workers inherit XLA_FLAGS with SUITE_FLAGS in.
CALLERS_XLA_FLAGS = os.environ.setdefault("JAXRL_SUITE_CALLERS_XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))
os.environ["XLA_FLAGS"] = suite_xla_flags(CALLERS_XLA_FLAGS)  # before jax's backend starts
# Learning runs (jaxrl_process) compile at RUNS_LONG's -O1 with XLA:CPU's own fusion emitters and scheduler:
# their SGD steps run long enough to pay for the slower compile. Where this jaxlib refused SUITE_FLAGS,
# they get the caller's flags alone.
LEARNING_XLA_FLAGS = (CALLERS_XLA_FLAGS if os.environ["XLA_FLAGS"] == CALLERS_XLA_FLAGS
                      else runtime.with_xla_flags(CALLERS_XLA_FLAGS,
                                                  {name: str(value) for name, value in RUNS_LONG.items()}))
runtime.configure_jax()  # persistent compilation cache: a second run of the suite skips XLA


SUITE_TIMES = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "results", "suite_time_cpu.json")


def recorded_file_seconds() -> dict[str, float]:
    """Each test file's seconds in the latest cold run that benchmarks/suite_time.py recorded ({} if none)."""
    try:
        with open(SUITE_TIMES) as f:
            runs = json.load(f)["runs"]
    except (OSError, ValueError, KeyError):
        return {}
    cold = [run.get("per_file_seconds") for run in runs if run.get("cache") == "empty"]
    return next((seconds for seconds in reversed(cold) if seconds), {})


def pytest_collection_modifyitems(items):
    """Longest files first (by their recorded seconds; a new file counts as long): pytest-xdist hands the
    files out in this order (`--no-loadscope-reorder`), so the last file either worker starts is short
    and neither waits long on the other at the end."""
    seconds = recorded_file_seconds()
    longest = max(seconds.values(), default=0.0)
    items.sort(key=lambda item: -seconds.get(item.nodeid.split("::")[0], longest))


def near_mapping_limit() -> bool:
    """Whether this process holds more than a third of the memory mappings Linux allows it
    (vm.max_map_count); True where the counts cannot be read (not Linux)."""
    try:
        with open("/proc/self/maps") as maps:
            held = sum(1 for _ in maps)
        with open("/proc/sys/vm/max_map_count") as limit:
            return held > int(limit.read()) // 3
    except OSError:
        return True


@pytest.fixture(autouse=True, scope="module")
def release_compiled_programs():
    """Frees the compiled programs once a test file leaves the process near its limit of memory
    mappings. XLA:CPU maps each compiled program's code in many pieces, and a process that keeps every
    program of the suite passes vm.max_map_count (65,530 by default): the next compilation then dies in
    LLVM (SIGSEGV or SIGABRT). Below a third of the limit the programs stay for later files (one file
    has added up to 25k mappings); where the count cannot be read they are always freed."""
    yield
    if near_mapping_limit():
        jax.clear_caches()
        gc.collect()


@pytest.fixture(scope="session")
def tiny_config() -> config.RunConfig:
    """A cartpole PPO run small enough to compile and train in seconds."""
    return config.load("cartpole-balance", "ppo", overrides=TINY_CARTPOLE_PPO, preset="cpu")


def reproducible(records):
    """Records without wall-clock figures."""
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in records]


def assert_same_records(got: list[dict], want: list[dict], rtol: float, atol: float) -> None:
    """The records of two runs hold the same calls, keys and (to the tolerances) numbers."""
    assert [r["call"] for r in got] == [r["call"] for r in want]
    for mine, theirs in zip(got, want, strict=True):
        assert mine.keys() == theirs.keys(), (mine["call"], sorted(set(mine) ^ set(theirs)))
        np.testing.assert_allclose([mine[k] for k in sorted(mine)], [theirs[k] for k in sorted(theirs)],
                                   rtol=rtol, atol=atol, err_msg=f"call {mine['call']}: {sorted(mine)}")


def with_train(cfg: config.RunConfig, **changes) -> config.RunConfig:
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **changes))


def with_algo(cfg: config.RunConfig, **changes) -> config.RunConfig:
    return dataclasses.replace(cfg, algo=dataclasses.replace(cfg.algo, **changes))


ENV_NAMES = list(envs_mjx.list_envs())
NUM_ENVS = 16  # the batch of every batched_envs entry
EPISODE_LENGTH = 50  # steps, their time limit


@pytest.fixture(scope="session")
def batched_envs():
    """name -> (env, jitted reset, jitted step): NUM_ENVS auto-resetting copies, EPISODE_LENGTH steps long."""
    compiled = {}
    for name in ENV_NAMES:
        env = envs_mjx.wrap_for_training(envs_mjx.make(name), episode_length=EPISODE_LENGTH)
        compiled[name] = (env, jax.jit(env.reset), jax.jit(env.step))
    return compiled


# Tiny PPO settings per env for runs that only need *a* trained policy (export, playback, Go1's smoke
# test, which also checks that a reward weight set on the command line reaches the saved config).
SMALL_RUN_OVERRIDES = {
    "go1-joystick": ["env.episode_length=40", "algo.num_envs=16", "algo.unroll_length=10",
                     "algo.num_minibatches=4", "algo.policy_hidden_layer_sizes=[32,32]",
                     "algo.value_hidden_layer_sizes=[32,32]", "train.iterations_per_call=2",
                     "train.num_timesteps=640", "train.eval_every=640", "train.num_eval_envs=4",
                     "rewards.feet_air_time=0.2"],
    "grasp-lift-cube": ["env.episode_length=40", "algo.num_envs=16", "algo.unroll_length=10",
                        "algo.num_minibatches=4", "algo.policy_hidden_layer_sizes=[32,32]",
                        "algo.value_hidden_layer_sizes=[32,32]", "train.iterations_per_call=2",
                        "train.num_timesteps=640", "train.eval_every=640", "train.num_eval_envs=4"],
}


@pytest.fixture(scope="session")
def small_run(tiny_config, tmp_path_factory):
    """small_run(env_name) -> the directory of a PPO run trained for a few iterations: cartpole from
    tiny_config, the others through `jaxrl train <env> ppo --preset cpu` with SMALL_RUN_OVERRIDES. Trained
    once for the whole suite: pytest-xdist's workers share the directory, the first to ask trains it while
    the others wait on a file lock."""
    from jaxrl import cli
    from jaxrl.train import train

    root = tmp_path_factory.getbasetemp()
    shared = root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root  # the workers' common parent

    def get(env_name: str):
        run_dir = shared / f"small-run-{env_name}"
        with open(shared / f"small-run-{env_name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            if not (run_dir / "trained").exists():
                shutil.rmtree(run_dir, ignore_errors=True)  # a worker that died half-way
                if env_name == "cartpole-balance":
                    train(tiny_config, run_dir)
                else:
                    assert cli.main(["train", env_name, "ppo", "--preset", "cpu", f"train.run_dir={run_dir}",
                                     *SMALL_RUN_OVERRIDES[env_name], "train.tensorboard=false"]) == 0
                (run_dir / "trained").touch()
        return run_dir

    return get


def jaxrl_process(*words: str, timeout: float = 900, toy_env: tuple[str, str] | None = None) -> str:
    """What `jaxrl WORDS` prints, run as a user runs it: in a process of its own, compiled with
    LEARNING_XLA_FLAGS. `toy_env` (name, class of tests/toy_envs.py) registers that env in it first.
    The command must succeed."""
    program = ["-m", "jaxrl.cli"] if toy_env is None else ["-c", (
        "import sys, toy_envs; from jaxrl import cli; toy_envs.register_in_process(*sys.argv[1:3]); "
        "sys.exit(cli.main(sys.argv[3:]))"), *toy_env]
    done = subprocess.run([sys.executable, *program, *words], capture_output=True, text=True,
                          cwd=os.path.dirname(__file__), timeout=timeout,
                          env=dict(os.environ, XLA_FLAGS=LEARNING_XLA_FLAGS))
    assert done.returncode == 0, (f"jaxrl {' '.join(words)} exited {done.returncode}:\n"
                                  f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done.stdout
