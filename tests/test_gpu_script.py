"""benchmarks/gpu.sh, the script a GPU lend runs first, run end to end at its dry run's tiny sizes."""

import importlib.util
import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).parent.parent

# What a lend brings back (at most 8 files): one record per step, and the learning curve's plot.
RECORDS = ["env_throughput_go1_joystick_gpu.json", "env_throughput_grasp_lift_cube_gpu.json",
           "go1_joystick_learning_curve_gpu.json", "sim_to_sim_gpu.json", "sac_throughput_gpu.json",
           "dreamer_throughput_gpu.json", "demo_learning_gpu.json"]
if importlib.util.find_spec("warp"):  # its step runs only where warp imports
    RECORDS.append("env_throughput_go1_joystick_warp_gpu.json")


def test_the_dry_run_of_gpu_sh_runs_every_step_and_writes_each_record(tmp_path):
    """A lend cannot wait for a step that no longer runs: every step runs here at a tiny size, on the CPU,
    compiled with the suite's own XLA flags (inherited), and writes what the lend would bring back."""
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--dry-run", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    written = sorted(path.name for path in tmp_path.iterdir())
    assert written == sorted([*RECORDS, "go1_joystick_learning_curve_gpu.png"])
    for name in RECORDS:
        record = json.loads((tmp_path / name).read_text())
        assert record["machine"]["jax_backend"] == "cpu", name
