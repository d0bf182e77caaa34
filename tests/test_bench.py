"""`jaxrl bench` (benchmarks/suite.py): the steps it runs, the records it gathers, the plots it draws."""

import importlib
import importlib.util
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import suite, suite_plots  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def test_every_registered_env_gets_a_throughput_step_and_every_learner_one_of_its_own():
    names = [step.name for step in suite.steps(accelerator=False)]
    assert [n.split(":")[1] for n in names if n.startswith("env_throughput:")] == suite.env_names()
    assert {"compile_time", "ppo_throughput", "sac_throughput", "dreamer_throughput", "demo_learning",
            "train_memory", "peer_envs"} <= set(names)
    # Each step's quick arguments are ones its module accepts: parsed here as the module parses them.
    for step in suite.steps(accelerator=False):
        module = __import__(f"benchmarks.{step.module}", fromlist=["parse_args"])
        for args in (step.args, step.quick_args or ()):
            module.parse_args([*args, "--out", "x.json"])


GO1_LANE = ["env_throughput", "learning_curve", "sim_to_sim"]  # gpu.sh's two lanes of steps, warp's apart
OTHER_LANE = ["env_throughput", "sac_throughput", "dreamer_throughput", "demo_learning"]


@pytest.mark.parametrize("size", [[], ["--dry-run"]], ids=["gpu", "dry-run"])
def test_each_step_of_gpu_sh_gives_its_module_arguments_it_accepts(size, tmp_path):
    """The script a GPU lend runs first cannot wait for the lend to find a stale argument: its steps, as
    `--list` prints them, parse as each module parses them, and the learning curve's settings load."""
    from jaxrl import config

    script = ROOT / "benchmarks" / "gpu.sh"
    listed = subprocess.run(["bash", str(script), "--list", *size, "--out", str(tmp_path)],
                            capture_output=True, text=True, check=True).stdout
    steps = [shlex.split(line) for line in listed.splitlines()]
    warp = ["env_throughput"] if importlib.util.find_spec("warp") else []  # its step runs where it imports
    modules = [module.removeprefix("benchmarks.") for module, *_ in steps]
    assert modules == GO1_LANE[:1] + warp + GO1_LANE[1:] + OTHER_LANE
    assert not list(tmp_path.iterdir())  # nothing ran
    for module, *args in steps:
        parsed = importlib.import_module(module).parse_args(args)
        assert parsed.out.parent == tmp_path
        if module == "benchmarks.learning_curve":
            config.load(parsed.env, parsed.algo, overrides=parsed.overrides,
                        preset="cpu" if parsed.preset == "auto" else parsed.preset)


def test_a_dry_run_without_out_writes_its_figures_outside_the_results_folder():
    """Tiny CPU figures under the GPU's file names would pass for a lend's results."""
    script = ROOT / "benchmarks" / "gpu.sh"
    listed = subprocess.run(["bash", str(script), "--list", "--dry-run"], capture_output=True, text=True,
                            check=True, env={k: v for k, v in os.environ.items() if k != "OUT"}).stdout
    outs = [Path(words[words.index("--out") + 1]) for words in map(shlex.split, listed.splitlines())]
    assert len(outs) >= len(GO1_LANE + OTHER_LANE) and len({out.parent for out in outs}) == 1
    assert not outs[0].parent.resolve().is_relative_to(RESULTS.resolve())


def test_a_failing_step_is_recorded_with_its_error_and_the_others_go_on(tmp_path):
    broken = suite.Step("broken", "env_throughput", (), ("--env", "no-such-env"), 60, 60)
    record = suite.run_step(broken, quick=True, folder=tmp_path)
    assert "no-such-env" in record["error"]


def test_the_plots_read_the_records_the_benchmarks_write(tmp_path):
    """From the committed results (the formats the modules write): a plot per kind of figure."""
    records = {
        "env_throughput:go1-joystick": json.loads(
            (RESULTS / "env_throughput_go1_joystick_cpu.json").read_text()
        )
    }
    for name in ("ppo_throughput", "sac_throughput", "dreamer_throughput", "compile_time"):
        records[name] = json.loads((RESULTS / f"{name}_cpu.json").read_text())
    assert suite_plots.env_rates(records)["go1-joystick"][0][1] > 0
    assert set(suite_plots.learner_rates(records)) >= {"ppo (env steps/s)", "sac (gradient steps/s)"}
    assert suite_plots.compile_seconds(records)["cartpole-balance:ppo"]["cold"] > 0
    written = suite_plots.plot_all(records, tmp_path / "machine")
    assert sorted(p.name for p in written) == [
        "machine_compile_time.png",
        "machine_env_throughput.png",
        "machine_training_throughput.png",
    ]


def test_the_machine_names_its_results_file():
    machine = {
        "jax_backend": "cpu",
        "jax_devices": ["TFRT_CPU_0"],
        "cpu_model": "AMD EPYC 9B14 96-Core Processor",
        "processor": "",
        "cpu_count": 2,
    }
    assert suite.machine_slug(machine) == "cpu-amd-epyc-9b14-2core"
    gpu = dict(machine, jax_backend="gpu", jax_devices=["cuda:0 NVIDIA H100 80GB HBM3"], cpu_count=16)
    assert suite.machine_slug(gpu) == "gpu-cuda-0-nvidia-h100-16core"


def test_bench_refuses_an_unknown_step_naming_the_steps(capsys):
    from jaxrl import cli

    with pytest.raises(SystemExit):
        cli.main(["bench", "--only", "nothing"])
    assert "env_throughput:cartpole-balance" in capsys.readouterr().err


def test_physics_options_benchmark_reads_settings_as_physics_options_and_names_the_fields_of_a_bad_one():
    from benchmarks.physics_options import physics_options
    from envs_mjx.core import PhysicsOptions

    assert physics_options("") == PhysicsOptions()
    assert physics_options("solver=cg,ls_iterations=4,tolerance=1e-5") == PhysicsOptions(
        solver="cg", ls_iterations=4, tolerance=1e-5)
    fields = "solver, iterations, ls_iterations, tolerance"
    with pytest.raises(SystemExit, match=f"no field 'tol'; its fields: {fields}"):
        physics_options("tol=1e-5")


def test_a_learning_curve_splits_a_populations_record_by_seed_and_a_single_runs_not_at_all():
    from benchmarks.learning_curve import per_seed

    record = {"env_steps": 100, "eval/episode_return": 2.0, "eval/episode_return/seed_10": 3.0,
              "eval/episode_return/seed_2": 1.0, "eval/episode_length/seed_2": 50.0,
              "eval/episode_return/ci95_low": 0.5}
    assert per_seed(record) == {2: {"eval/episode_return": 1.0, "eval/episode_length": 50.0},
                                10: {"eval/episode_return": 3.0}}
    assert per_seed({"env_steps": 100, "eval/episode_return": 2.0}) == {}


def test_curves_beside_shows_the_task_measure_any_record_has_once():
    from benchmarks.curves_beside import panels

    keys = [key for key, _ in panels([{"env": "go1-joystick"}, {"env": "go1-joystick-rough"}])]
    assert keys == ["eval_return", "eval_tracking_error", "eval_episode_length"]
    assert [key for key, _ in panels([{"env": "pendulum-swingup"}])] == ["eval_return", "eval_episode_length"]


def test_a_dry_runs_exit_code_counts_the_steps_that_failed_in_either_lane(tmp_path):
    """Each benchmark module, run by a python3 that refuses `-m`, fails at once: the two lanes run, each
    prints its steps, and the exit code counts them all."""
    shim = tmp_path / "bin" / "python3"
    shim.parent.mkdir()
    refuse = '[ "$1" = -m ] && { echo "no $2 here" >&2; exit 3; }'
    shim.write_text(f'#!/bin/sh\n{refuse}\nexec {sys.executable} "$@"\n')
    shim.chmod(0o755)
    script = ROOT / "benchmarks" / "gpu.sh"
    done = subprocess.run(["bash", str(script), "--dry-run", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PATH=f"{shim.parent}:{os.environ['PATH']}"))
    steps = len(GO1_LANE + OTHER_LANE) + bool(importlib.util.find_spec("warp"))
    assert done.returncode == steps, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stdout.count("stopped with exit code 3") == steps
    assert "no benchmarks.sim_to_sim here" in done.stdout
    assert "no benchmarks.demo_learning here" in done.stdout
