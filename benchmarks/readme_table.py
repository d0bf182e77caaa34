"""The README's "Measured" table, written from the records in benchmarks/results/.

    python -m benchmarks.readme_table            # rewrites the table in README.md
    python -m benchmarks.readme_table --check    # exit 1 if README.md's table is not what the records say

Each row names what was measured, the figure, the machine and day it was measured on, and the record it
comes from. A row's figure is read from its record, never typed: re-running a benchmark and this script
updates the README, and tests/test_readme_table.py fails while the two disagree.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
BEGIN = "<!-- measured table: written by `python -m benchmarks.readme_table` from benchmarks/results/ -->"
END = "<!-- end of the measured table -->"


@dataclass(frozen=True)
class Row:
    what: str
    source: str  # the record's file name in benchmarks/results/
    figure: Callable[[dict], str]
    part: str | None = None  # the key of the part measured apart, with a machine of its own


def thousands(x: float) -> str:
    return f"{x:,.0f}"


def ratio(x: float) -> str:
    return f"{x:.2f}x"


def percent(x: float) -> str:
    return f"{100 * x:.1f}%"


def span(values, fmt=thousands) -> str:
    low, high = min(values), max(values)
    return fmt(low) if fmt(low) == fmt(high) else f"{fmt(low)}-{fmt(high)}"


def machine(record: dict) -> str:
    """'2-core AMD EPYC, 2026-12-05', or with an accelerator its kind: 'NVIDIA H100 80GB HBM3, 2026-12-07'."""
    m = record.get("machine", {})
    if m.get("jax_backend", "cpu") == "cpu":
        where = f"{m.get('cpus_usable', '?')}-core {m.get('cpu_model') or m.get('processor') or 'CPU'}"
    else:
        where = m.get("jax_device_kind") or (m.get("jax_devices") or ["an accelerator"])[0]
    return f"{where}, {m.get('date_utc', '?')[:10]}"


def load(source: str) -> dict:
    return json.loads((RESULTS / source).read_text())


# Figures, one function per kind of record.


def time_to_solve(r: dict) -> str:
    runs = r["runs"]
    cold = [run for run in runs if r["settings"]["compile_cache"] == "cold" and run["compile_seconds"] > 1]
    compile_note = f" (the first run compiles cold: {cold[0]['compile_seconds']:.0f} s)" if cold else ""
    return (
        f"{span([run['seconds_to_solve'] for run in runs])} s wall-clock over seeds "
        f"{runs[0]['seed']}-{runs[-1]['seed']}, at {span([run['env_steps_to_solve'] for run in runs])} env "
        f"steps{compile_note}"
    )


def ppo_versus_brax(r: dict) -> str:
    return ", ".join(
        f"{ratio(row['ratio_ours_over_brax'])} at {row['num_envs']} envs" for row in r["results"]
    )


def learning_curve(measure: str | None = None, unit: str = "") -> Callable[[dict], str]:
    """A learning-curve record's figure; `measure`: its task measure's eval key, None for the return alone."""

    def figure(r: dict) -> str:
        first, last = r["first_eval"], r["last_eval"]
        parts = [
            f"{r['env_steps']:,} env steps in {r['wall_clock_seconds'] / 60:.1f} min "
            f"(compile {r['compile_seconds']:.0f} s)"
        ]
        if measure is not None and measure in first:
            parts.append(
                f"eval {measure.replace('eval_', '').replace('_', ' ')} {first[measure]:.2f} -> "
                f"{last[measure]:.2f}{unit}"
            )
        interval = ""
        if "eval_return_ci95" in last:  # a population: the seeds' mean
            interval = f" [{last['eval_return_ci95'][0]:.1f}, {last['eval_return_ci95'][1]:.1f}]"
        parts.append(
            f"eval return {first['eval_return']:.1f} -> {last['eval_return']:.1f}{interval} "
            f"(best {r['best_eval_return']:.1f})"
        )
        if first.get("eval_episode_length") != last.get("eval_episode_length"):
            parts.append(
                f"episodes {first['eval_episode_length']:.0f} -> {last['eval_episode_length']:.0f} steps"
            )
        return "; ".join(parts)

    return figure


def train_memory(r: dict) -> str:
    before = r.get("before_issue_16", {}).get("extra_peak_per_state_byte")
    was = f" ({before:.2f} before the loop donated its state)" if before else ""
    return f"{r['extra_peak_per_state_byte']:.2f}{was}; target {r['target']}"


def env_throughput(r: dict) -> str:
    rows = [row for row in r["results"] if row["batch"] >= 256] or r["results"]
    batches = span([row["batch"] for row in rows])
    text = (
        f"{span([row['env']['steps_per_second'] for row in rows])} steps/s at {batches} envs, "
        f"{span([row['env/physics'] for row in rows], ratio)} bare MJX physics"
    )
    if all("training" in row for row in rows):
        text += f"; {span([row['training']['steps_per_second'] for row in rows])} auto-reset included"
    return text


def warp_against_jax(r: dict) -> str:
    jax_rows = {
        row["batch"]: row["env"]["steps_per_second"]
        for row in load("env_throughput_go1_joystick_cpu.json")["results"]
    }
    row = r["results"][0]
    speed = row["env"]["steps_per_second"]
    return (
        f"{speed:,.0f} steps/s at {row['batch']} envs: JAX (env_throughput_go1_joystick_cpu.json) is "
        f"{ratio(jax_rows[row['batch']] / speed)} faster on a CPU"
    )


def gym_vector(r: dict) -> str:
    return ", ".join(
        f"{ratio(row['vector_env/jit_step'])} at {row['batch']:,} envs ({row['vector_env']:,.0f} steps/s)"
        for row in r["results"]
    )


def expert_success(r: dict) -> str:
    return (
        ", ".join(
            f"{row['env'].removeprefix('grasp-').removesuffix('-cube')} "
            f"{'noise ' + str(row['noise']) + ' ' if row['noise'] else ''}{percent(row['success_rate'])}"
            for row in r["results"]
        )
        + f" of {r['results'][0]['episodes']:,} episodes each"
    )


def collection_speed(r: dict) -> str:
    clean = [row["demo_steps_per_second"] for row in r["results"] if not row["noise"]]
    noisy = [row["demo_steps_per_second"] for row in r["results"] if row["noise"]]
    return f"{span(clean)} demo samples/s (noise 0.1: {span(noisy)}), {r['num_envs']} envs per round"


def onnx_figure(kind: str) -> Callable[[dict], str]:
    """`latency` per action at batch 1, or `throughput` at batch 1,024, with onnxruntime on 1 thread."""

    def figure(r: dict) -> str:
        parts = []
        for row in r["results"]:
            ort, net = row["onnxruntime"]["1 thread"], "-".join(map(str, row["policy_hidden_layer_sizes"]))
            if kind == "latency":
                speedup = ratio(ort["latency_speedup_vs_jax"])
                parts.append(f"{ort['latency_us_median']:.0f} us ({net} net; {speedup} faster than JAX)")
            else:
                share = ratio(ort["throughput_ratio_vs_jax"])
                parts.append(f"{ort['actions_per_second_at_batch']:,.0f} actions/s ({net}; {share} of JAX)")
        return ", ".join(parts)

    return figure


def sim_to_sim(r: dict) -> str:
    return ", ".join(
        f"{row['env']} ({row['training_env_steps'] / 1e6:.1f}M training steps): "
        f"{percent(row['plain_mujoco_keeps'])}"
        for row in r["results"]
    )


def sac_versus_brax(r: dict) -> str:
    ratios = r["ratios_ours_over_brax"]

    def line(regime):
        return ", ".join(f"{ratio(x)} at {n} envs" for n, x in ratios[regime].items())

    return f"buffer filling: {line('filling')}; 1M buffer full (brax rolls it on each insert): {line('full')}"


def steps_to_threshold(r: dict) -> str:
    def learner(name):
        x = r[name]
        return (
            f"{name.upper()} {x['median_env_steps']:,.0f} median ({x['reached']} seeds reached it; "
            f"{', '.join('-' if s is None else f'{s:,}' for s in x['env_steps'])})"
        )

    ppo_machine = machine(r["ppo"] if "machine" in r["ppo"] else r)  # PPO's run: the record's first machine
    return (f"{learner('sac')}; {learner('ppo')}, measured {ppo_machine}: "
            f"{r['ppo_over_sac_simulated_seconds']:.0f}x less simulated time for SAC")


def dreamer_threshold(key: str) -> Callable[[dict], str]:
    def figure(r: dict) -> str:
        x = r[key]
        walls = [run["wall_s"] for run in x["runs"] if run["wall_s"] is not None]
        text = (
            f"env steps to {r['threshold']:.0f}: {', '.join(f'{s:,}' for s in x['env_steps'])} "
            f"(median {x['median_env_steps']:,}; {span(walls)} s each)"
        )
        if "pretraining_env_steps" in x:
            text += (
                f", after {x['pretraining_env_steps']:,} recorded env steps; from scratch the median is "
                f"{r['dreamer']['median_env_steps']:,}"
            )
        return text

    return figure


def dreamer_throughput(r: dict) -> str:
    return (
        f"{ratio(r['ours_over_dreamerv3'])} of DreamerV3's own code "
        f"({r['dreamerv3_replayed_steps_per_s']:.0f} replayed steps/s) at its dmc_proprio size"
    )


def pixel_dreamer(r: dict) -> str:
    render = load("pixel_render_cpu.json")["results"]
    return (
        learning_curve()(r) + f"; rendering {span([x['render_microseconds_per_env'] for x in render])} us "
        "per env step (pixel_render_cpu.json)"
    )


def peer_envs(r: dict) -> str:
    parts = []
    for name, env in r["envs"].items():
        returns = env["ours_over_brax"]["eval_return_at_env_steps"]
        last = max(returns, key=int)
        parts.append(
            f"{name} at {int(last):,} env steps: eval return {returns[last]['ours_median']:.0f} vs "
            f"{returns[last]['brax_median']:.0f}, training steps/s "
            f"{ratio(env['ours_over_brax']['train_steps_per_second_ratio_median'])}"
        )
    return "; ".join(parts)


def jax_versions(r: dict) -> str:
    versions = {row["python_executable"]: row["jax"] for row in r["rows"] if "jax" in row}
    parts = []
    for row in r["rows"]:
        name = versions.get(row["python_executable"], "?") + (
            " with the two flags" if row.get("xla_flags") or "error" in row else ""
        )
        if "error" in row:
            parts.append(f"{name}: refuses to start (a flag it no longer knows)")
        else:
            ((batch, speed),) = row["steps_per_second"].items()
            parts.append(f"{name} {speed:,.0f} ({ratio(row['over_first'][batch])})")
    return "; ".join(parts)


def step_profile(r: dict) -> str:
    """Per JAX version and flag set: the step rate against the first row's, and the two stages the first
    row spends most in, each against the first row's time in it."""
    first = r["rows"][0]["us_per_env_step_by_stage"]
    stages = sorted(first, key=first.get, reverse=True)[:2]
    parts = []
    for row in r["rows"][1:]:
        if "error" in row:
            continue
        times = row["us_per_env_step_by_stage"]
        shares = ", ".join(f"{stage.split('/')[-1]} {ratio(times[stage] / first[stage])}" for stage in stages)
        parts.append(f"{row['jax']} {row['flags']}: {ratio(row['over_first'])} ({shares})")
    return f"against {r['rows'][0]['jax']} without flags: " + "; ".join(parts)


def compile_time(r: dict) -> str:
    return "; ".join(
        f"{pair.replace(':', ' ')} {x['cold']['compile_seconds']:.1f} / {x['warm']['compile_seconds']:.1f} "
        f"/ {x['resume']['compile_seconds']:.1f}"
        for pair, x in r["pairs"].items()
    )


def demo_learning(r: dict) -> str:
    """Mean success over seeds per method and number of demos, each seed's in brackets."""
    groups: dict[tuple[int, str], list[float]] = {}
    for row in r["results"]:
        groups.setdefault((row.get("demos", 0), row["method"]), []).append(row["success_rate"])
    parts = []
    for (demos, method), rates in sorted(groups.items()):
        source = f"from {demos} demos " if demos else ""
        parts.append(
            f"{source}{method.replace('_aug', ' with obs_noise 0.1')} {percent(statistics.mean(rates))} "
            f"({', '.join(percent(x) for x in rates)})"
        )
    return "; ".join(parts)


def physics_profile(r: dict) -> str:
    stages = sorted(r["stages"], key=lambda row: -row["share_of_stages"])[:4]
    costliest = ", ".join(f"{row['stage']} {percent(row['share_of_stages'])}" for row in stages)
    rate = f"{r['physics_steps_per_second']:,.0f} physics steps/s at {r['batch']} envs"
    return f"{rate}; the costliest stages: {costliest}"


def physics_option(baseline: str) -> Callable[[dict], str]:
    def figure(r: dict) -> str:
        base = load(baseline)
        return (
            f"{' '.join(r['options'])}: {r['physics_steps_per_second']:,.0f} physics steps/s, "
            f"{ratio(base['step_seconds'] / r['step_seconds'])} the MJCF's settings ({baseline}); "
            "fidelity: the next row"
        )

    return figure


# How a learning curve's task measure reads: its name in a sentence, and a value's format.
TASK_MEASURES = {"tracking_error": ("eval tracking error", lambda x: f"{x:.2f} m/s"),
                 "success": ("eval success", percent)}


def physics_fidelity(r: dict) -> str:
    """A learning curve on changed physics against the recipe's own curve, at the changed curve's end."""
    last = r["last_eval"]
    base = min((p for p in load(r["baseline"])["curve"] if p["eval_return"] is not None),
               key=lambda p: abs(p["env_steps"] - last["env_steps"]))
    kept = ", ".join(f"{percent(row['plain_mujoco_keeps_of_its_training_physics'])} with {row['physics']}"
                     for row in r["sim_to_sim"])
    name, fmt = TASK_MEASURES[r["task_measure"]]
    measure = f"eval_{r['task_measure']}"
    return (f"{r['physics_change']}: {name} {fmt(last[measure])} at {last['env_steps'] / 1e6:.1f}M env steps "
            f"against {fmt(base[measure])} ({r['baseline']}), return {last['eval_return']:.1f} against "
            f"{base['eval_return']:.1f}; in plain MuJoCo its policy keeps of its MJX return {kept}: "
            f"{r['verdict']}")


def physics_options(r: dict) -> str:
    """The model file's settings against each other setting: speed by batch size, trajectory drift, and
    the scripted expert's success where the env has one."""
    def expert(row: dict) -> str:
        return "" if row["expert_success"] is None else f", expert success {percent(row['expert_success'])}"

    parts = []
    for row in r["rows"][1:]:
        speeds = ", ".join(f"{ratio(1 / s['over_model_file'])} at {int(batch):,}"
                           for batch, s in row["speed"].items())
        drift = "identical" if row["drift"]["identical"] else f"at most {row['drift']['qpos_max']:.0e} apart"
        parts.append(f"over {row['setting']}: {speeds} envs; qpos over {r['drift_steps']} random-action "
                     f"steps {drift}{expert(row)}")
    return f"the model file's settings{expert(r['rows'][0])}; " + "; ".join(parts)


def xla_cpu_flags(r: dict) -> str:
    return "; ".join(
        f"{name.removeprefix('jax ')} {ratio(x)}" if x else f"{name}: a run failed"
        for name, x in r["with_flags_over_without"].items()
    )


ROWS = [
    Row(
        "cartpole-balance PPO solved (eval >= 900 of 1000), CPU preset, compile included",
        "cartpole_time_to_solve_cpu.json",
        time_to_solve,
    ),
    Row(
        "PPO training throughput, ours / brax PPO, same env, batch and recipe networks "
        "(policy 32x4, value 64x2)",
        "ppo_throughput_cpu_recipe_networks.json",
        ppo_versus_brax,
    ),
    Row(
        "the same with brax's default value network (256x5: SGD-bound)",
        "ppo_throughput_cpu.json",
        ppo_versus_brax,
    ),
    Row(
        "go1-joystick PPO, CPU preset (lin. velocity tracking error in m/s)",
        "go1_joystick_learning_curve_cpu.json",
        learning_curve("eval_tracking_error", " m/s"),
    ),
    Row(
        "go1-joystick-rough PPO, CPU preset, seed 0, beside the flat one (lin. velocity tracking error in "
        "m/s; its programs from a warm XLA cache: 75 s compiled cold)",
        "go1_joystick_rough_learning_curve_cpu.json",
        learning_curve("eval_tracking_error", " m/s"),
    ),
    Row(
        "grasp-lift-cube PPO from scratch, CPU preset (256 envs)",
        "grasp_lift_cube_learning_curve_cpu.json",
        learning_curve("eval_success"),
    ),
    Row(
        "peak memory of a SAC run, extra bytes per byte of TrainState (1 GiB replay buffer)",
        "train_memory_cpu.json",
        train_memory,
    ),
    Row(
        "go1-joystick env throughput (random actions)", "env_throughput_go1_joystick_cpu.json", env_throughput
    ),
    Row(
        "go1-joystick-rough env throughput (heightfield contacts)",
        "env_throughput_go1_joystick_rough_cpu.json",
        env_throughput,
    ),
    Row(
        "grasp-lift-cube env throughput (28 contacts per env)",
        "env_throughput_grasp_lift_cube_cpu.json",
        env_throughput,
    ),
    Row(
        "go1-joystick env throughput on MuJoCo Warp (CPU)",
        "env_throughput_go1_joystick_warp_cpu.json",
        warp_against_jax,
    ),
    Row(
        "Gymnasium vector env (NumPy in and out) / the jitted MJX step, go1-joystick",
        "gym_vector_go1_joystick_cpu.json",
        gym_vector,
    ),
    Row(
        "the same, cartpole-balance (a cheap step: the host round trip dominates)",
        "gym_vector_cartpole_balance_cpu.json",
        gym_vector,
    ),
    Row("grasp scripted expert success", "expert_collection_cpu.json", expert_success),
    Row("`jaxrl collect` speed, expert, HDF5 included", "expert_collection_cpu.json", collection_speed),
    Row(
        "ONNX Go1 policy, onnxruntime 1 thread, per action at batch 1 (median)",
        "onnx_inference_cpu.json",
        onnx_figure("latency"),
    ),
    Row(
        "ONNX Go1 policy at batch 1,024, onnxruntime 1 thread",
        "onnx_inference_cpu.json",
        onnx_figure("throughput"),
    ),
    Row(
        "sim-to-sim: mean return in plain MuJoCo (ONNX) / MJX (JAX), 16 matched episodes",
        "sim_to_sim_cpu.json",
        sim_to_sim,
    ),
    Row(
        "SAC training throughput, ours / brax SAC, batch 256, 256x2 networks, 1 gradient step per env step",
        "sac_throughput_cpu.json",
        sac_versus_brax,
    ),
    Row(
        "pendulum-swingup, env steps to an eval return of 400 of 1000: SAC's recipe at 25 Hz, PPO at 50 Hz",
        "steps_to_threshold_pendulum_cpu.json",
        steps_to_threshold,
        "sac",
    ),
    Row(
        "pendulum-swingup Dreamer, CPU preset (25 Hz), seeds 0-2",
        "steps_to_threshold_pendulum_cpu.json",
        dreamer_threshold("dreamer"),
    ),
    Row(
        "the same, started from a world model trained alone on 16 random-action episodes",
        "steps_to_threshold_pendulum_cpu.json",
        dreamer_threshold("dreamer_from_world_model"),
        "dreamer_from_world_model",
    ),
    Row(
        "the same, with the 16 episodes also written into the replay (`train.prefill`)",
        "steps_to_threshold_pendulum_cpu.json",
        dreamer_threshold("dreamer_from_world_model_prefilled"),
        "dreamer_from_world_model_prefilled",
    ),
    Row(
        "pendulum-swingup PPO learning curve, CPU preset (50 Hz), seeds 0-3 in one program: the seeds' mean "
        "return with its 95% t-interval",
        "pendulum_swingup_learning_curve_cpu.json",
        learning_curve(),
    ),
    Row(
        "pendulum-swingup SAC learning curve, CPU preset (25 Hz), seeds 0-3 in one program, 60k env steps: "
        "the seeds' mean return with its 95% t-interval",
        "pendulum_swingup_sac_learning_curve_cpu.json",
        learning_curve(),
    ),
    Row(
        "pendulum-swingup Dreamer learning curve, seed 0, CPU preset",
        "pendulum_swingup_dreamer_learning_curve_cpu.json",
        learning_curve(),
    ),
    Row(
        "cartpole-balance Dreamer from states, CPU preset (25 Hz)",
        "cartpole_balance_dreamer_learning_curve_cpu.json",
        learning_curve(),
    ),
    Row(
        "cartpole-balance Dreamer from 32 x 32 depth images rendered in JAX, CPU preset",
        "cartpole_balance_pixels_dreamer_learning_curve_cpu.json",
        pixel_dreamer,
    ),
    Row(
        "Dreamer replayed steps/s (batch x chunk steps per second of updates), pendulum-swingup",
        "dreamer_throughput_cpu.json",
        dreamer_throughput,
    ),
    Row(
        "our PPO / brax's PPO on brax's own envs (`peer_envs`; backend generalized; seeds 0-2, medians)",
        "peer_envs_cpu.json",
        peer_envs,
    ),
    Row(
        "go1-joystick env step at 256 envs by JAX version, steps/s (jax 0.11 needs Python 3.12)",
        "jax_versions_cpu.json",
        jax_versions,
    ),
    Row(
        "the same step's rate, and its time in MuJoCo's two costliest stages, by JAX version and "
        "XLA:CPU flag (`step_profile`: jax.profiler, each operation charged to its stage)",
        "step_profile_cpu.json",
        step_profile,
    ),
    Row(
        "`jaxrl train` compile seconds to the first call, CPU preset: cold / warm / `--resume`",
        "compile_time_cpu.json",
        compile_time,
    ),
    Row(
        "where go1-joystick's MJX step spends its time, by stage of `mjx.step` (`physics_profile`)",
        "physics_profile_go1_joystick_cpu.json",
        physics_profile,
    ),
    Row(
        "the same step with a setting changed",
        "physics_profile_go1_joystick_solver_cg_cpu.json",
        physics_option("physics_profile_go1_joystick_cpu.json"),
    ),
    Row(
        "go1-joystick PPO learning on that physics, CPU preset, against the MJCF's (one seed each)",
        "go1_joystick_solver_cg_learning_curve_cpu.json",
        physics_fidelity,
    ),
    Row(
        "where grasp-lift-cube's MJX step spends its time (28 contacts per env)",
        "physics_profile_grasp_lift_cube_cpu.json",
        physics_profile,
    ),
    Row(
        "grasp-lift-cube's env steps/s under its MJCF's solver settings (tolerance 1e-5, 4 line searches) "
        "against others (`physics_options`)",
        "physics_options_grasp_lift_cube_cpu.json",
        physics_options,
    ),
    Row(
        "grasp-lift-cube PPO learning on those settings, CPU preset, against the old ones (one seed each)",
        "grasp_lift_cube_learning_curve_cpu.json",
        physics_fidelity,
    ),
    Row(
        "`jaxrl train` steps/s at the CPU preset with the two XLA:CPU flags / without (`xla_cpu_flags`)",
        "xla_cpu_flags_cpu.json",
        xla_cpu_flags,
    ),
    Row(
        "grasp-lift-cube from expert demos: success of the best checkpoint over 1,000 fresh episodes, mean "
        "(seeds 0-2)",
        "demo_learning_cpu.json",
        demo_learning,
    ),
]


def render() -> str:
    lines = [BEGIN, "", "| what | figure | machine | record |", "|---|---|---|---|"]
    for row in ROWS:
        record = load(row.source)
        measured_on = machine(record[row.part] if row.part and "machine" in record[row.part] else record)
        lines.append(f"| {row.what} | {row.figure(record)} | {measured_on} | `{row.source}` |")
    return "\n".join([*lines, "", END])


def readme_with_table(readme: str, table: str) -> str:
    if BEGIN not in readme or END not in readme:
        raise SystemExit(f"README.md has no measured table to replace: it needs the lines\n{BEGIN}\n{END}")
    head, rest = readme.split(BEGIN, 1)
    return head + table + rest.split(END, 1)[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md's table is out of date")
    args = parser.parse_args(argv)
    readme = README.read_text()
    updated = readme_with_table(readme, render())
    if args.check:
        if updated != readme:
            print("README.md's measured table is out of date: run `python -m benchmarks.readme_table`")
            return 1
        return 0
    README.write_text(updated)
    print(f"wrote the measured table ({len(ROWS)} rows) into {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
