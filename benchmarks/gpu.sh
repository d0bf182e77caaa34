#!/usr/bin/env bash
# The benchmarks a session lent a GPU runs first. A lend is about 15 minutes of device time, the machine's
# start included, so every step has a time limit (together under 9 minutes) and a failing step leaves the
# others their time.
#
# Here, once:  ../shared/tools/device_wheels.sh          (MuJoCo, MJX, distrax ... into .whl/)
# Then:        run(command="bash benchmarks/gpu.sh", carry=[".whl"], timeout_s=570)
# The figures come back under $OUT (at most 8 files, JSON and PNG): copy them into benchmarks/results/ and
# commit them.
#
#   benchmarks/gpu.sh [--dry-run] [--list] [--out DIR]
#
# --dry-run: every step at a tiny size, on whatever jax finds (a CPU here), to check the script between
# lends. Nearly all of it is compiling, so it compiles with the test suite's XLA flags, and its
# figures go to a fresh temporary folder unless --out or $OUT names one: tiny CPU figures must not land
# in benchmarks/results/ under the GPU's file names. The exit code is the number of steps that failed.
# --list: print each step's command (module and arguments, shell-quoted) instead of running it,
# installing nothing; the test suite parses them as each module does (tests/test_bench.py).
#
# Not here: brax's side of ppo_throughput and sac_throughput (brax's trainers need jax < 0.10; the GPU
# machine has jax 0.11), MuJoCo Warp (warp-lang alone is 150 MB, over the 64 MiB a device run carries:
# its step runs only where `import warp` works), and anything with several devices (the machine has one).
set -uo pipefail
cd "$(dirname "$0")/.."
dry_run=0 list=0 out=${OUT:-}
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) dry_run=1 ;;
    --list) list=1 ;;
    --out) out=${2:?--out needs a folder} && shift ;;
    *) echo "usage: benchmarks/gpu.sh [--dry-run] [--list] [--out DIR]" >&2 && exit 2 ;;
  esac
  shift
done
if [ -z "$out" ] && [ $dry_run = 1 ]; then
  out=$(mktemp -d -u) || exit 1  # named here, made below if it runs (--list makes nothing)
fi
out=${out:-benchmarks/results}
[ $list = 1 ] || mkdir -p "$out"
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # steps share the GPU one after another; none keeps it all
export TF_CPP_MIN_LOG_LEVEL=3               # XLA's cache-load chatter

# The GPU image lacks these; a machine that has them (this one) keeps its own.
if [ $list = 0 ] && ! python3 -c "import mujoco.mjx, distrax, jax2onnx" >/dev/null 2>&1 \
    && compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
# A dry run compiles far more than it runs: jaxrl.runtime's COMPILE_ONLY_FLAGS, as the test suite compiles
# (its evaluations are batches of a few episodes, which run short even unoptimized).
if [ $list = 0 ] && [ $dry_run = 1 ]; then
  XLA_FLAGS=$(python3 -c "import os; from jaxrl import runtime
print(runtime.with_xla_flags(os.environ.get('XLA_FLAGS', ''), runtime.COMPILE_ONLY_FLAGS))") || exit 1
  export XLA_FLAGS
fi
if [ $list = 0 ]; then
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import jax; print('jax', jax.__version__, jax.devices())" || exit 1
fi
run_dir=$(mktemp -d)/go1  # the Go1 run, for sim-to-sim; not among the results
trap 'rm -rf "$(dirname "$run_dir")"' EXIT

if [ $dry_run = 1 ]; then
  env_args=(--batch-sizes 8 --steps 4 --repeats 1)
  curve_args=(--env-steps 640 algo.num_envs=8 algo.unroll_length=20 algo.num_minibatches=4
    train.iterations_per_call=2 train.eval_every=320 train.num_eval_envs=2 env.episode_length=20)
  sim_args=(--episodes 2)
  sac_args=(--num-envs 8 --iterations 2 --repeats 1 --replay-capacity 512 --min-replay-size 256 --batch-size 32
    --hidden 16 16)
  dreamer_args=(--settings tiny --iterations 1 --repeats 1)
  demo_args=(--methods diffusion --demos 4 --seeds 0 --episodes 4 --steps 4 train.iterations_per_call=4
    train.eval_every=4 train.num_eval_envs=4 env.episode_length=20)
else
  env_args=(--batch-sizes 4096 8192 16384)
  curve_args=(--preset full --env-steps 20000000 --minutes 2.25)
  sim_args=(--episodes 16)
  sac_args=(--num-envs 128 1024 --iterations 100 --repeats 3)
  dreamer_args=(--settings dreamerv3_dmc_proprio --iterations 2 --repeats 3)
  demo_args=(--methods diffusion --demos 100 --seeds 0 --episodes 256 --steps 2000)
fi

failed=0
step() {  # step SECONDS MODULE ARGS...: one benchmark, stopped (SIGTERM, then SIGKILL) after SECONDS
  local seconds=$1 && shift
  if [ $list = 1 ]; then printf '%q ' "$@" && echo && return; fi
  [ $dry_run = 1 ] && seconds=$((seconds * 4))  # a shared 2-core CPU compiles slower than the GPU machine's host
  echo "== $* (at most ${seconds} s)"
  local started=$SECONDS
  timeout -k 10 "$seconds" python3 -m "$@"
  local code=$?
  [ $code -eq 0 ] || { echo "!! $1 stopped with exit code $code (124: past its ${seconds} s)"; failed=$((failed + 1)); }
  echo "== $1 took $((SECONDS - started)) s"
}

# Two lanes of steps. A lend runs them one after the other, as they time one GPU; a dry run runs them side by
# side, a core each, and prints each lane's output when it ends.
lanes=()
lane() {  # lane FUNCTION: its steps
  if [ $dry_run = 0 ] || [ $list = 1 ]; then "$1"; return; fi
  local log && log=$(mktemp) || exit 1
  ( failed=0; "$1"; exit $failed ) > "$log" 2>&1 &
  lanes+=("$!:$log")
}

go1_steps() {
  # MJX throughput of the env PPO trains on: the training variant (episode limit and auto-reset included).
  step 60 benchmarks.env_throughput --env go1-joystick --variants training "${env_args[@]}" \
    --out "$out/env_throughput_go1_joystick_gpu.json"
  if python3 -c "import warp" 2>/dev/null; then
    step 60 benchmarks.env_throughput --env go1-joystick --impl warp --variants training "${env_args[@]}" \
      --out "$out/env_throughput_go1_joystick_warp_gpu.json"
  fi
  # The Go1 recipe for 2.25 minutes: return and tracking error against env steps and wall-clock; then its
  # policy exported to ONNX and played in plain MuJoCo on the host's CPU beside the same episodes in MJX.
  step 180 benchmarks.learning_curve --env go1-joystick --run-dir "$run_dir" "${curve_args[@]}" \
    --out "$out/go1_joystick_learning_curve_gpu.json"
  step 40 benchmarks.sim_to_sim "$run_dir" "${sim_args[@]}" --out "$out/sim_to_sim_gpu.json"
}

other_steps() {
  step 45 benchmarks.env_throughput --env grasp-lift-cube --variants training "${env_args[@]}" \
    --out "$out/env_throughput_grasp_lift_cube_gpu.json"
  # Gradient steps per second of the other learners: SAC (ours alone), Dreamer at DreamerV3's size, and
  # diffusion on grasp demos from the scripted expert (2,000 steps: not its recipe's success; its U-Net
  # compiles longest).
  step 40 benchmarks.sac_throughput --peer none --regimes filling "${sac_args[@]}" \
    --out "$out/sac_throughput_gpu.json"
  step 60 benchmarks.dreamer_throughput "${dreamer_args[@]}" --out "$out/dreamer_throughput_gpu.json"
  step 90 benchmarks.demo_learning "${demo_args[@]}" --out "$out/demo_learning_gpu.json"
}

lane go1_steps
lane other_steps
for entry in ${lanes[@]+"${lanes[@]}"}; do  # (bash < 4.4 calls an empty array unset)
  wait "${entry%%:*}"
  failed=$((failed + $?))
  cat "${entry#*:}" && rm -f "${entry#*:}"
done
[ $list = 1 ] || { echo "results in $out" && ls -l "$out"; }
exit $failed
