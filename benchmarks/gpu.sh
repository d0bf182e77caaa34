#!/usr/bin/env bash
# The benchmarks a session lent a GPU runs first. A lend is about 15 minutes of device time, the machine's
# start included, so every step has a time limit and a failing step leaves the others their time.
#
# Here, once:  ../shared/tools/device_wheels.sh          (MuJoCo, MJX, distrax ... into .whl/)
# Then:        run(command="bash benchmarks/gpu.sh", carry=[".whl"], timeout_s=570)
# The figures come back under $OUT (JSON, and PNG for the learning curve): copy them into
# benchmarks/results/ and commit them. GPU_QUICK=1 shrinks every step to check this script on a CPU.
#
# Not here: ppo_throughput and sac_throughput, whose brax side needs jax < 0.10 (the GPU machine has
# jax 0.11), and anything with several devices (the machine has one).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # steps share the GPU one after another; none keeps it all

if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import jax; print('jax', jax.__version__, jax.devices())"

if [ "${GPU_QUICK:-0}" = 1 ]; then
  batches=(16) env_steps=2048 curve_overrides=(algo.num_envs=16 algo.num_minibatches=4
    train.iterations_per_call=2 train.eval_every=1024 train.num_eval_envs=4 env.episode_length=20)
  members=(1 4)
else
  batches=(4096 8192) env_steps=20000000 curve_overrides=() members=(1 16 64 256)
fi

step() {  # step SECONDS MODULE ARGS...: one benchmark, stopped after SECONDS
  local seconds=$1 && shift
  echo "== $* (at most ${seconds} s)"
  local started=$SECONDS
  timeout "$seconds" python3 -m "$@"
  local code=$?
  [ $code -eq 0 ] || echo "!! $1 stopped with exit code $code (124: past its ${seconds} s)"
  echo "== $1 took $((SECONDS - started)) s"
}

# MJX throughput of the envs PPO trains on: the training variant (episode limit and auto-reset included).
step 120 benchmarks.env_throughput --env go1-joystick --variants training \
  --batch-sizes "${batches[@]}" --out "$OUT/env_throughput_go1_joystick_gpu.json"
step 90 benchmarks.env_throughput --env grasp-lift-cube --variants training \
  --batch-sizes "${batches[@]}" --out "$OUT/env_throughput_grasp_lift_cube_gpu.json"
# The Go1 recipe's first 2x10^7 env steps: return and tracking error against env steps and wall-clock.
step 240 benchmarks.learning_curve --env go1-joystick --preset full --env-steps "$env_steps" \
  --out "$OUT/go1_joystick_learning_curve_gpu.json" "${curve_overrides[@]}"
# Seeds of cartpole PPO at 16 envs each in one program against one run (PureJaxRL's case: 256 seeds).
step 100 benchmarks.population --workloads cartpole --members "${members[@]}" --out "$OUT/population_gpu.json"
ls -l "$OUT"
