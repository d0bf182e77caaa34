"""One code path from one device to many hosts (jaxrl.parallel): the env batch split over the devices,
the same numbers on 1, 4 and 2 x 2 devices, checkpoints that move between device counts."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import pytest
from conftest import assert_same_records
from jax.sharding import PartitionSpec

from jaxrl import algos, config, parallel
from jaxrl.population import Population
from jaxrl.train import initializer, make_envs

SCRIPT = Path(__file__).with_name("multi_device_runs.py")
# Float32 sums taken in another order (partial sums per device, then across) differ in their last bits,
# about 1e-7 of their size. Training magnifies that: these tiny runs take large steps (PPO's approximate
# KL reaches 4, and exp of a log-ratio that size turns 1e-7 into 1e-3), so the metrics agree to a few
# 1e-3. A different computation (other random draws, a batch split another way) moves them by O(1).
# Metrics near 0 (a clipped surrogate) get the absolute bound.
RTOL, ATOL = 1e-2, 1e-4


def device_flags(count: int) -> dict:
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={count}"
    return dict(os.environ, XLA_FLAGS=flags.strip(), JAX_PLATFORMS="cpu")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(records of every run multi_device_runs.py makes on 4 devices, the directory holding them)."""
    out = tmp_path_factory.mktemp("devices")
    subprocess.run([sys.executable, str(SCRIPT), "devices", str(out)], env=device_flags(4), check=True,
                   timeout=900)
    return json.loads((out / "records.json").read_text()), out


def assert_trained(records: list[dict]) -> None:
    losses = [r.get("loss/critic", r.get("loss/total")) for r in records]
    assert len(records) > 2 and any(loss for loss in losses)


@pytest.mark.parametrize("name", ["ppo-toy", "sac-toy", "dreamer-toy"])
def test_a_run_on_4_devices_gives_the_numbers_of_1_device(runs, name):
    records, _ = runs
    assert_trained(records[f"{name}/1"])
    assert_same_records(records[f"{name}/4"], records[f"{name}/1"], RTOL, ATOL)


def test_mjx_physics_on_4_devices_gives_the_numbers_of_1_device(runs, small_run):
    from multi_device_runs import records as records_of

    one_device = records_of(small_run("cartpole-balance"))  # tiny_config, trained by this process
    assert_trained(one_device)
    assert_same_records(runs[0]["ppo-cartpole/4"], one_device, RTOL, ATOL)


@pytest.mark.parametrize("first", ["4", "1"])
def test_a_checkpoint_resumes_on_another_device_count_to_the_unbroken_runs_numbers(runs, first):
    records, _ = runs
    assert_same_records(records[f"resumed-from-{first}"], records["ppo-toy/1"], RTOL, ATOL)


def test_a_population_split_over_devices_gives_the_numbers_of_1_device(runs):
    records, _ = runs
    one = records["population/1"]
    assert "loss/total/learning_rate=0.001/seed_1" in one[-1] and "loss/total/ci95_low" not in one[-1]
    assert_same_records(records["population/2x2"], one, RTOL, ATOL)


def test_num_envs_that_do_not_split_over_the_devices_is_a_config_error_naming_counts_that_do(runs):
    records, _ = runs
    assert records["refused"] == (
        "algo.num_envs=6 does not split evenly over this run's 4 devices: set it to a multiple of 4 "
        "(e.g. 4, 8), or run on a number of devices that divides 6")


def test_a_run_trained_on_4_devices_restores_and_evaluates_on_1(runs, monkeypatch, capsys):
    from toy_envs import register

    from jaxrl import cli

    _, out = runs
    register(monkeypatch)
    assert len(jax.devices()) == 1
    assert cli.main(["eval", str(out / "ppo-toy-4"), "--checkpoint", "latest", "--episodes", "8"]) == 0
    assert "eval/episode_return" in capsys.readouterr().out


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_processes_of_two_devices_joined_by_jax_distributed_match_one_device(runs, tmp_path):
    records, _ = runs
    address = f"127.0.0.1:{free_port()}"
    processes = [
        subprocess.Popen([sys.executable, str(SCRIPT), "distributed", str(tmp_path / "run")],
                         env=dict(device_flags(2), JAX_COORDINATOR_ADDRESS=address, JAX_NUM_PROCESSES="2",
                                  JAX_PROCESS_ID=str(index)),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for index in range(2)]
    try:
        outputs = [process.communicate(timeout=600)[0] for process in processes]
    finally:  # one process stuck waiting for the other must not outlive the test
        for process in processes:
            process.kill()
    assert [process.returncode for process in processes] == [0, 0], outputs
    assert "finished 1,024 env steps" in outputs[0], outputs
    # Process 1 prints nothing of its own; gloo (JAX's CPU collectives) prints how its ranks connected,
    # from several threads at once, so its messages may share a line or break across two.
    printed = [line for line in outputs[1].splitlines() if line.strip()]
    assert all("[Gloo]" in line or "peer ranks" in line for line in printed), outputs[1]
    from multi_device_runs import records as records_of

    assert_same_records(records_of(tmp_path / "run"), records["ppo-toy/1"], RTOL, ATOL)


def test_the_env_batch_and_replay_columns_are_split_and_the_rest_replicated():
    cfg = config.load("cartpole-balance", "sac", overrides=["algo.num_envs=4", "algo.replay_capacity=64",
                                                            "algo.min_replay_size=8"], preset="cpu")
    train_env, _ = make_envs(cfg)
    mesh = parallel.make_mesh()
    shapes = jax.eval_shape(initializer(algos.get("sac"), train_env, cfg.algo), jax.random.PRNGKey(0), None)
    specs = jax.tree.map(lambda sharding: sharding.spec, parallel.state_shardings(shapes, mesh))
    envs = PartitionSpec(parallel.ENVS)
    assert specs.env_state.obs == envs and specs.env_state.data.qpos == envs
    assert specs.env_state.data.mocap_pos == PartitionSpec()  # empty: XLA keeps no sharding of it
    assert specs.replay.data["obs"] == PartitionSpec(None, parallel.ENVS)
    assert specs.replay.size == specs.key == PartitionSpec()
    assert all(spec == PartitionSpec() for spec in jax.tree.leaves(specs.params))
    assert all(spec == PartitionSpec() for spec in jax.tree.leaves(specs.obs_stats))
    population = Population(seed=0, num_seeds=2)
    shapes = jax.eval_shape(initializer(algos.get("sac"), train_env, cfg.algo, None, population),
                            population.keys(0), None)
    specs = jax.tree.map(lambda sharding: sharding.spec, parallel.state_shardings(shapes, mesh))
    members = PartitionSpec(parallel.POPULATION)
    assert specs.runs.env_state.obs == PartitionSpec(parallel.POPULATION, parallel.ENVS)
    assert specs.runs.replay.data["obs"] == PartitionSpec(parallel.POPULATION, None, parallel.ENVS)
    assert specs.runs.env_state.data.mocap_pos == PartitionSpec()
    assert specs.alive == specs.runs.key == members
    assert all(spec == members for spec in jax.tree.leaves(specs.runs.params))


def test_distributed_without_a_job_to_join_says_what_to_set_in_a_few_lines():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_COORDINATOR", "JAX_NUM_PROCESSES",
                                                                    "JAX_PROCESS_ID", "SLURM_", "OMPI_"))}
    done = subprocess.run([sys.executable, "-m", "jaxrl.cli", "train", "cartpole-balance", "ppo",
                           "--distributed"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    text = " ".join((done.stdout + done.stderr).split())
    assert "--distributed could not join the other processes" in text
    assert "set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID in every process" in text
    assert "Traceback" not in text and len((done.stdout + done.stderr).splitlines()) <= 5
