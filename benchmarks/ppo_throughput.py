"""Training throughput of our PPO against brax's PPO on the same env and settings.

Both learners train cartpole-balance wrapped by `envs_mjx.wrap_for_training`
(brax through its `wrap_env_fn`), with the same batch shape, epochs, network
sizes and observation normalization, so the env work per step is identical and
the ratio measures the learners. The figure is env steps per second of
training: rollout + GAE + SGD, compilation and evaluation excluded.

    python -m benchmarks.ppo_throughput                       # 64, 256, 1024 envs
    python -m benchmarks.ppo_throughput --num-envs 256 --iterations 5 --repeats 2
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import time
from pathlib import Path

# isort: off
import envs_mjx  # before brax: our quiet import of MJX must be the one cached
# isort: on

import jax
import jax.numpy as jnp
from brax.training.agents.ppo import networks as brax_networks
from brax.training.agents.ppo import train as brax_ppo

from benchmarks.machine import describe_machine
from jaxrl.algos import ppo

ENV_NAME = "cartpole-balance"
DEFAULT_OUT = Path(__file__).parent / "results" / "ppo_throughput_cpu.json"
# brax's make_ppo_networks defaults, which are also our ppo.Config defaults. On a
# CPU the value MLP's SGD is most of the work at every num_envs (the figures
# hardly grow with num_envs); smaller networks shift the weight to the rollout.
POLICY_LAYERS = (32, 32, 32, 32)
VALUE_LAYERS = (256, 256, 256, 256, 256)
# Hyperparameters that do not change the amount of computation, set equal anyway
# (brax's defaults differ from ours) so both runs do the same maths.
SHARED_HPARAMS = dict(learning_rate=3e-4, entropy_cost=1e-2, discounting=0.97, gae_lambda=0.95,
                      clipping_epsilon=0.2, reward_scaling=1.0)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Env steps per second of PPO training (compile and eval excluded), ours vs brax, "
                    f"on {ENV_NAME}; writes a JSON record and prints a table.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--num-envs", type=int, nargs="+", default=[64, 256, 1024],
                        help="parallel envs; one measurement of each learner per value")
    parser.add_argument("--iterations", type=int, default=10,
                        help="PPO iterations per timed chunk: one compiled call of ours, one epoch of brax "
                             "(each iteration is num_envs * unroll_length env steps)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed chunks per learner and num_envs; the median is reported")
    parser.add_argument("--brax-warmup-epochs", type=int, default=2,
                        help="leading brax epochs dropped: brax times each epoch including its JIT "
                             "compilation, and on this jax it compiles on the first two")
    parser.add_argument("--unroll-length", type=int, default=20)
    parser.add_argument("--num-minibatches", type=int, default=8)
    parser.add_argument("--num-updates-per-batch", type=int, default=4)
    parser.add_argument("--episode-length", type=int, default=1000)
    parser.add_argument("--policy-layers", type=int, nargs="+", default=list(POLICY_LAYERS),
                        help="policy MLP hidden sizes, both learners")
    parser.add_argument("--value-layers", type=int, nargs="+", default=list(VALUE_LAYERS),
                        help="value MLP hidden sizes, both learners")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the JSON record goes")
    args = parser.parse_args(argv)
    for n in args.num_envs:
        if n % args.num_minibatches:
            parser.error(f"--num-envs {n} must be divisible by --num-minibatches {args.num_minibatches} "
                         "(brax's batch_size = num_envs / num_minibatches)")
    if min(args.iterations, args.repeats) < 1 or args.brax_warmup_epochs < 0:
        parser.error("--iterations and --repeats must be >= 1, --brax-warmup-epochs >= 0")
    return args


def steps_per_chunk(num_envs: int, args) -> int:
    return args.iterations * num_envs * args.unroll_length


def bench_ours(num_envs: int, args) -> dict:
    env = envs_mjx.wrap_for_training(envs_mjx.make(ENV_NAME), episode_length=args.episode_length)
    cfg = ppo.Config(num_envs=num_envs, unroll_length=args.unroll_length,
                     num_minibatches=args.num_minibatches, num_updates_per_batch=args.num_updates_per_batch,
                     policy_hidden_layer_sizes=tuple(args.policy_layers),
                     value_hidden_layer_sizes=tuple(args.value_layers),
                     normalize_observations=True, max_grad_norm=1.0, **SHARED_HPARAMS)
    # Jitted only to save setup time: eager init runs MJX op by op (~20 s). Not timed.
    state = jax.jit(ppo.init, static_argnums=(1, 2))(jax.random.PRNGKey(0), env, cfg)

    def chunk(state):
        return jax.lax.scan(lambda s, _: ppo.train_step(s, env, cfg), state, None, length=args.iterations)

    # Donated like brax's training epoch, so neither pays for copying the state.
    start = time.perf_counter()
    compiled = jax.jit(chunk, donate_argnums=0).lower(state).compile()
    compile_s = time.perf_counter() - start
    state, metrics = compiled(state)  # warm-up: first-call allocations stay out of the timing
    jax.block_until_ready((state, metrics))

    sps = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        state, metrics = compiled(state)
        jax.block_until_ready((state, metrics))
        sps.append(steps_per_chunk(num_envs, args) / (time.perf_counter() - start))
    finite = all(bool(jnp.isfinite(v).all()) for v in jax.tree.leaves(metrics))
    return {"steps_per_s": statistics.median(sps), "steps_per_s_each": sps,
            "compile_s": compile_s, "losses_finite": finite}


def bench_brax(num_envs: int, args) -> dict:
    epochs = args.brax_warmup_epochs + args.repeats
    epoch_sps = []

    def progress(step, metrics):
        if "training/sps" in metrics:
            epoch_sps.append(float(metrics["training/sps"]))

    # With run_evals=False and num_evals = epochs + 1, brax runs `epochs` training
    # epochs of num_timesteps / epochs steps each (= --iterations training steps:
    # one training step is batch_size * num_minibatches * unroll_length env steps)
    # and calls progress_fn after each with 'training/sps' = epoch steps / epoch
    # wall time. That time spans only the pmapped training epoch (no eval, no
    # env reset, no init) but it does include the epoch's JIT compilation.
    brax_ppo.train(
        environment=envs_mjx.make(ENV_NAME),
        wrap_env_fn=envs_mjx.wrap_for_training,
        num_timesteps=epochs * steps_per_chunk(num_envs, args),
        num_envs=num_envs,
        episode_length=args.episode_length,
        unroll_length=args.unroll_length,
        batch_size=num_envs // args.num_minibatches,
        num_minibatches=args.num_minibatches,
        num_updates_per_batch=args.num_updates_per_batch,
        normalize_observations=True,
        max_grad_norm=1.0,
        network_factory=functools.partial(brax_networks.make_ppo_networks,
                                          policy_hidden_layer_sizes=tuple(args.policy_layers),
                                          value_hidden_layer_sizes=tuple(args.value_layers)),
        num_evals=epochs + 1,
        run_evals=False,
        num_eval_envs=8,  # its Evaluator is still built (one reset compile); keep it small
        progress_fn=progress,
        seed=0,
        **SHARED_HPARAMS,
    )
    if len(epoch_sps) != epochs:
        raise RuntimeError(f"expected {epochs} brax epochs, got {len(epoch_sps)}: {epoch_sps}")
    measured = epoch_sps[args.brax_warmup_epochs:]
    return {"steps_per_s": statistics.median(measured), "steps_per_s_each": measured,
            "warmup_epochs_steps_per_s": epoch_sps[:args.brax_warmup_epochs]}


def print_table(rows: list[dict]) -> None:
    print(f"\n{'num_envs':>8}  {'ours steps/s':>13}  {'brax steps/s':>13}  {'ours/brax':>9}")
    for row in rows:
        print(f"{row['num_envs']:>8}  {row['ours']['steps_per_s']:>13,.0f}  "
              f"{row['brax']['steps_per_s']:>13,.0f}  {row['ratio_ours_over_brax']:>9.2f}")


def main(argv=None) -> None:
    args = parse_args(argv)
    record = {
        "benchmark": "ppo_throughput",
        "machine": describe_machine(),
        "settings": {
            "env": ENV_NAME,
            "wrapper": "envs_mjx.wrap_for_training (both learners)",
            "episode_length": args.episode_length,
            "unroll_length": args.unroll_length,
            "num_minibatches": args.num_minibatches,
            "num_updates_per_batch": args.num_updates_per_batch,
            "brax_batch_size": "num_envs / num_minibatches",
            "policy_hidden_layer_sizes": args.policy_layers,
            "value_hidden_layer_sizes": args.value_layers,
            "normalize_observations": True,
            "max_grad_norm": 1.0,
            **SHARED_HPARAMS,
            "iterations_per_timed_chunk": args.iterations,
            "timed_chunks": args.repeats,
            "brax_warmup_epochs_dropped": args.brax_warmup_epochs,
            "metric": "env steps per second of training, median over timed chunks; compile and eval "
                      "excluded (ours: AOT-compiled, one warm-up call, then timed calls; brax: its "
                      "'training/sps' per epoch, first epochs dropped as they include compilation)",
        },
        "results": [],
    }
    for num_envs in args.num_envs:
        load_before = os.getloadavg()
        print(f"num_envs={num_envs}: ours...", flush=True)
        ours = bench_ours(num_envs, args)
        print(f"  ours {ours['steps_per_s']:,.0f} steps/s; brax...", flush=True)
        brax = bench_brax(num_envs, args)
        print(f"  brax {brax['steps_per_s']:,.0f} steps/s", flush=True)
        record["results"].append({
            "num_envs": num_envs,
            "env_steps_per_timed_chunk": steps_per_chunk(num_envs, args),
            "ours": ours,
            "brax": brax,
            "ratio_ours_over_brax": ours["steps_per_s"] / brax["steps_per_s"],
            # The machine may be shared: a high load average means the figures are depressed.
            "loadavg_1m_before_after": [load_before[0], os.getloadavg()[0]],
        })
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2) + "\n")  # after each size: a crash keeps the rest
    print_table(record["results"])
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
