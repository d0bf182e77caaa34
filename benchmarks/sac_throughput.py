"""Training throughput of our SAC against brax's SAC on the same env and settings.

Both learners train pendulum-swingup wrapped by `envs_mjx.wrap_for_training`
(brax through its `wrap_env_fn`) with the same num_envs, batch size, gradient
steps per env step, network sizes (relu MLPs; brax's `hidden_layer_sizes` is
both its actor's and its critics'), observation normalization, replay capacity
and prefill, learning rate, discount, tau, reward scaling, initial temperature
and target entropy. The work per iteration is then the same:

  ours  (`sac.train_step`, unroll_length=1): one step of num_envs envs with the
        stochastic actor, the num_envs transitions into the replay ring buffer,
        the normalizer update, then grad_updates_per_step gradient steps, each
        on batch_size transitions drawn from the buffer;
  brax  (`training_step` in brax/training/agents/sac/train.py): `get_experience`
        (one `acting.actor_step` of num_envs envs, normalizer update, queue
        insert), one draw of batch_size * grad_updates_per_step transitions
        split into grad_updates_per_step batches, and a lax.scan of that many
        `sgd_step`s (temperature, critics, actor, Polyak target).

So one of our iterations is one brax training step: num_envs env steps and
grad_updates_per_step gradient steps. We report both env steps per second and
gradient steps per second of training; compilation, evaluation and the replay
prefill (the steps before learning starts) are excluded.

What could not be made equal, and stays in the figures:
  - brax's temperature loss samples the actor once more (a forward pass of the
    policy per gradient step); ours reuses the actor loss's log-probabilities.
    brax also updates in the order temperature, critics, actor-on-the-old-critics;
    ours critics, actor-on-the-new-critics, temperature (same work).
  - brax's replay queue, once full, rolls the whole buffer on every insert
    (jnp.roll in replay_buffers.QueueBase.insert_internal: O(capacity) per env
    step); our ring buffer overwrites in place. Hence two regimes, both timed
    the same way:
      filling  the buffer of --replay-capacity transitions is never full during
               the timed chunks (`replay_full_during_timing` in the record says
               so): the start of a run;
      full     the buffer of --full-capacity transitions is full before the
               first timed chunk and stays full: the steady state of a run that
               trains far longer than its capacity, as real SAC runs do.
               min_replay_size is set to the capacity for both learners, so
               their untimed prefill (random actions for ours, brax's policy
               for brax, neither learning) fills the buffer: brax's prefill is
               one pmapped scan of ceil(capacity / num_envs) actor steps,
               outside its epochs' timer, and min_replay_size changes nothing
               else in brax (its sampling draws from all stored transitions).
               Ours learns from the iteration that fills the buffer on, brax
               from its first epoch (dropped as warm-up); every timed
               iteration of both runs with a full buffer (checked).
  - Ours draws uniform actions beside the policy's at every step and keeps one
    (uniform until min_replay_size); brax acts with its policy throughout.
  - brax cannot skip its evaluation; it runs between epochs, outside the timing.

The record's `throughput` section holds the settings and per-num_envs figures
of the filling regime, `throughput_full_replay` those of the full regime, and
`ratios_ours_over_brax` both regimes' ratios side by side; other measurements
may add sections of their own beside them. The figures are of the machine in
the record's `machine` (a shared 2-core CPU for the committed one) and hold
for it only; the ratios, from interleaved chunks, carry over better than the rates.

    python -m benchmarks.sac_throughput          # both regimes, 16, 128, 512 envs: ~8.5 min on 2 cores
    python -m benchmarks.sac_throughput --regimes full --full-capacity 131072
    python -m benchmarks.sac_throughput --num-envs 128 --iterations 50 --repeats 2
    python -m benchmarks.sac_throughput --peer none --regimes filling   # ours alone: no brax, any jax
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# isort: off
import envs_mjx  # before brax: our quiet import of MJX must be the one cached
# isort: on

import jax
import jax.numpy as jnp

from benchmarks.machine import describe_machine
from jaxrl.algos import sac

ENV_NAME = "pendulum-swingup"
DEFAULT_OUT = Path(__file__).parent / "results" / "sac_throughput_cpu.json"
# Settings that do not change the amount of computation, set equal anyway so both
# learners do the same maths. brax's temperature optimizer has a fixed Adam rate of
# 3e-4 whatever `learning_rate` is, and ours uses `learning_rate` for all three
# optimizers, so the rate stays 3e-4 here rather than being a flag.
SHARED_HPARAMS = dict(learning_rate=3e-4, discounting=0.99, tau=0.005, reward_scaling=1.0)
# brax starts at log alpha = 0 and steers the entropy towards -0.5 * action_size
# (agents/sac/losses.py); ours defaults to -action_size, so it is set to brax's.
INIT_ALPHA = 1.0
TARGET_ENTROPY_PER_ACTION_DIM = -0.5
REGIMES = ("filling", "full")
# The record's section of each regime; "throughput" is the one the benchmark had first.
SECTION_OF_REGIME = {"filling": "throughput", "full": "throughput_full_replay"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="SAC training throughput (env steps and gradient steps per second; compile, eval and "
                    f"replay prefill excluded), ours vs brax, on {ENV_NAME}; writes a JSON record and "
                    "prints a table.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--num-envs", type=int, nargs="+", default=[16, 128, 512],
                        help="parallel envs; one measurement of each learner per value")
    parser.add_argument("--batch-size", type=int, default=256, help="transitions per gradient step")
    parser.add_argument("--grad-updates-per-step", type=int, default=1,
                        help="gradient steps per step of the batched env")
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256],
                        help="hidden layer sizes of the actor and of each critic, both learners")
    parser.add_argument("--regimes", nargs="+", choices=REGIMES, default=list(REGIMES),
                        help="filling: the buffer never full while timed; full: the buffer full before "
                             "the timed chunks (the steady state of long runs, where brax rolls its "
                             "whole buffer on each insert)")
    parser.add_argument("--replay-capacity", type=int, default=1_000_000,
                        help="filling regime: transitions the buffer keeps (brax: max_replay_size)")
    parser.add_argument("--min-replay-size", type=int, default=8192,
                        help="filling regime: transitions collected before learning starts (not timed)")
    # The filling regime's capacity (and sac.Config's): the steady state of the same
    # buffer. Filling it is cheap, as neither learner takes gradient steps meanwhile:
    # about 10-20 s per learner and num_envs on a 2-core CPU. The cost of brax's roll
    # grows with the capacity and jumps once the buffer leaves the CPU's caches (a
    # few MB), so a small capacity here would understate it.
    parser.add_argument("--full-capacity", type=int, default=1_000_000,
                        help="full regime: the buffer's capacity, and its min_replay_size (the untimed "
                             "prefill fills it)")
    parser.add_argument("--episode-length", type=int, default=1000)
    parser.add_argument("--iterations", type=int, default=200,
                        help="training iterations per timed chunk: one compiled call of ours, one epoch of "
                             "brax (each is num_envs env steps and grad_updates_per_step gradient steps)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed chunks per learner and num_envs; the median is reported")
    parser.add_argument("--brax-warmup-epochs", type=int, default=1,
                        help="leading brax epochs dropped: brax times each epoch including its JIT "
                             "compilation (SAC's pmapped epoch compiles on the first call only)")
    parser.add_argument("--peer", choices=("brax", "none"), default="brax",
                        help="none: ours alone, without importing brax (whose SAC needs jax < 0.10)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the JSON record goes")
    return parser


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if min(args.iterations, args.repeats, args.batch_size, args.grad_updates_per_step, *args.num_envs) < 1:
        parser.error("--iterations, --repeats, --batch-size, --grad-updates-per-step and --num-envs "
                     "must be >= 1")
    if args.brax_warmup_epochs < 0 or args.min_replay_size < 0:
        parser.error("--brax-warmup-epochs and --min-replay-size must be >= 0")
    if args.min_replay_size > args.replay_capacity:
        parser.error("--min-replay-size cannot exceed --replay-capacity")
    if max(args.num_envs) > min(args.replay_capacity, args.full_capacity):
        parser.error("--replay-capacity and --full-capacity must hold one iteration's num_envs transitions")
    if "full" in args.regimes and full_capacity(args) < 1:
        parser.error(f"--full-capacity {args.full_capacity:,} holds no whole row of every --num-envs "
                     f"(their least common multiple is {math.lcm(*args.num_envs):,})")


def full_capacity(args: argparse.Namespace) -> int:
    """The full regime's capacity (and min_replay_size) for both learners: --full-capacity rounded down
    to whole rows of every --num-envs, as our buffer keeps whole rows of num_envs (jaxrl.replay), so
    that it fills to exactly that capacity and learning starts."""
    rows = math.lcm(*args.num_envs)
    return args.full_capacity // rows * rows


def parse_args(argv=None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    return args


def regime_args(args: argparse.Namespace, regime: str) -> argparse.Namespace:
    """`args` with the replay settings of `regime`; everything downstream reads only these two."""
    if regime == "filling":
        return args
    capacity = full_capacity(args)
    return argparse.Namespace(**{**vars(args), "replay_capacity": capacity, "min_replay_size": capacity})


def brax_prefill_env_steps(num_envs: int, args) -> int:
    """brax's num_prefill_actor_steps = ceil(min_replay_size / num_envs) batched steps, in env steps.

    Ours learns already in the iteration whose insert brings the buffer to
    min_replay_size, one iteration sooner; neither learner's prefill is timed.
    """
    return math.ceil(args.min_replay_size / num_envs) * num_envs


def training_env(args):
    return envs_mjx.wrap_for_training(envs_mjx.make(ENV_NAME), episode_length=args.episode_length)


def sac_config(num_envs: int, args, action_size: int) -> sac.Config:
    return sac.Config(
        num_envs=num_envs, unroll_length=1, grad_updates_per_step=args.grad_updates_per_step,
        batch_size=args.batch_size, replay_capacity=args.replay_capacity,
        min_replay_size=args.min_replay_size, init_alpha=INIT_ALPHA,
        target_entropy=TARGET_ENTROPY_PER_ACTION_DIM * action_size, normalize_observations=True,
        policy_hidden_layer_sizes=tuple(args.hidden), q_hidden_layer_sizes=tuple(args.hidden),
        activation="relu", **SHARED_HPARAMS)


def brax_settings(num_envs: int, args) -> dict:
    """Keyword arguments of brax's `sac.train` matching `sac_config` (all but the run length and logging)."""
    from brax.training.agents.sac import networks as brax_networks

    return dict(
        environment=envs_mjx.make(ENV_NAME),
        wrap_env_fn=envs_mjx.wrap_for_training,
        episode_length=args.episode_length,
        num_envs=num_envs,
        batch_size=args.batch_size,
        grad_updates_per_step=args.grad_updates_per_step,
        max_replay_size=args.replay_capacity,
        min_replay_size=args.min_replay_size,
        normalize_observations=True,
        # make_sac_networks' default activation is relu, like ours here.
        network_factory=functools.partial(brax_networks.make_sac_networks,
                                          hidden_layer_sizes=tuple(args.hidden)),
        **SHARED_HPARAMS,
    )


def _rates(env_steps: int, grad_steps: int, seconds: list[float]) -> dict:
    env_sps = [env_steps / s for s in seconds]
    grad_sps = [grad_steps / s for s in seconds]
    return {"env_steps_per_s": statistics.median(env_sps), "grad_steps_per_s": statistics.median(grad_sps),
            "env_steps_per_s_each": env_sps, "grad_steps_per_s_each": grad_sps}


class OursBench:
    """Our SAC compiled, prefilled and warmed up at construction; `timed_chunk` times one call.

    Kept apart from the timing loop so the chunks can be interleaved with brax's
    epochs (see `measure_pair`).
    """

    def __init__(self, num_envs: int, args):
        self.num_envs, self.args = num_envs, args
        env = training_env(args)
        cfg = sac_config(num_envs, args, env.action_size)
        state = sac.init(jax.random.PRNGKey(0), env, cfg)

        def chunk(state):
            return jax.lax.scan(lambda s, _: sac.train_step(s, env, cfg), state, None, length=args.iterations)

        # Donated like brax's pmapped epoch, so neither pays for copying the state (the
        # replay buffer above all).
        start = time.perf_counter()
        self.compiled = jax.jit(chunk, donate_argnums=0).lower(state).compile()
        self.compile_s = time.perf_counter() - start

        # Untimed prefill with the compiled chunk itself: a chunk that starts with fewer
        # than min_replay_size transitions skips some of its gradient steps (a lax.cond
        # in train_step), which would flatter us. brax's prefill is outside its timing too.
        self.prefill_chunks = 0
        while int(state.replay.size) < cfg.min_replay_size:
            state, _ = self.compiled(state)
            self.prefill_chunks += 1
        # Warm-up: the first call that takes the learning branch stays out of the timing.
        state, metrics = self.compiled(state)
        jax.block_until_ready((state, metrics))
        self.state, self.metrics = state, metrics
        self.replay_size_before_timing = int(state.replay.size)
        self.seconds: list[float] = []
        self.all_learned = True

    def timed_chunk(self) -> None:
        start = time.perf_counter()
        self.state, self.metrics = self.compiled(self.state)
        jax.block_until_ready((self.state, self.metrics))
        self.seconds.append(time.perf_counter() - start)
        # train_step's waiting branch reports zero losses: every timed iteration must have learned.
        self.all_learned &= bool((self.metrics["loss/critic"] != 0).all())

    def result(self) -> dict:
        args = self.args
        finite = all(bool(jnp.isfinite(v).all()) for v in jax.tree.leaves(self.metrics))
        return {**_rates(args.iterations * self.num_envs, args.iterations * args.grad_updates_per_step,
                         self.seconds),
                "compile_s": self.compile_s, "prefill_chunks": self.prefill_chunks,
                "replay_size_before_timing": self.replay_size_before_timing,
                "replay_size_after_timing": int(self.state.replay.size),
                # The ring never shrinks, so full before the first timed chunk is full throughout.
                "replay_full_throughout_timing": self.replay_size_before_timing == args.replay_capacity,
                "every_timed_iteration_learned": self.all_learned, "losses_finite": finite}


def bench_brax(num_envs: int, args, after_timed_epoch: Callable[[], None] | None = None) -> dict:
    """brax's SAC; `after_timed_epoch` runs between its timed epochs (outside their timing)."""
    from brax.training.agents.sac import train as brax_sac

    epochs = args.brax_warmup_epochs + args.repeats
    epoch_sps, env_steps_at = [], []

    def progress(step, metrics):
        if "training/sps" in metrics:
            epoch_sps.append(float(metrics["training/sps"]))
            env_steps_at.append(int(step))
            if after_timed_epoch is not None and len(epoch_sps) > args.brax_warmup_epochs:
                after_timed_epoch()

    # brax runs the prefill (ceil(min_replay_size / num_envs) actor steps, no
    # gradients) as its own pmapped call before any epoch, then num_evals - 1 epochs
    # of num_training_steps_per_epoch = ceil((num_timesteps - prefill env steps) /
    # (epochs * num_envs)) training steps: with the num_timesteps below, exactly
    # --iterations. After each epoch progress_fn gets 'training/sps' = num_envs *
    # steps per epoch / the epoch's wall time, which spans only the pmapped training
    # epoch and a block on its metrics: not the prefill (it goes into
    # 'training/walltime' only), not the evaluation that follows each epoch, but
    # the epoch's JIT compilation on the first call, hence the dropped epochs.
    # Evaluation cannot be turned off in brax's SAC: one episode per eval env after
    # each epoch, untimed, so one eval env keeps the wall time down.
    prefill_env_steps = brax_prefill_env_steps(num_envs, args)
    brax_sac.train(
        num_timesteps=prefill_env_steps + epochs * args.iterations * num_envs,
        num_evals=epochs + 1,
        num_eval_envs=1,
        progress_fn=progress,
        seed=0,
        **brax_settings(num_envs, args),
    )
    if len(epoch_sps) != epochs:
        raise RuntimeError(f"expected {epochs} brax epochs, got {len(epoch_sps)}: {epoch_sps}")
    per_epoch = args.iterations * num_envs
    steps_per_epoch = [b - a for a, b in zip([prefill_env_steps] + env_steps_at, env_steps_at, strict=False)]
    if set(steps_per_epoch) != {per_epoch}:
        raise RuntimeError(f"brax epochs of {steps_per_epoch} env steps, expected {per_epoch} each")
    seconds = [per_epoch / sps for sps in epoch_sps]
    measured = seconds[args.brax_warmup_epochs:]
    # brax's queue never wraps: once full, every insert rolls the whole buffer
    # (jnp.roll in replay_buffers.QueueBase.insert_internal), an O(capacity) copy per
    # env step that our ring buffer does not make. Record whether the timed epochs got there.
    inserted = prefill_env_steps + epochs * args.iterations * num_envs
    inserted_before_timing = prefill_env_steps + args.brax_warmup_epochs * per_epoch
    return {**_rates(per_epoch, args.iterations * args.grad_updates_per_step, measured),
            "warmup_epochs_env_steps_per_s": epoch_sps[:args.brax_warmup_epochs],
            "prefill_env_steps": prefill_env_steps,
            "env_steps_inserted_before_timing": inserted_before_timing,
            "replay_full_during_timing": inserted > args.replay_capacity,
            # Once it holds capacity transitions, every later insert rolls the buffer.
            "replay_full_throughout_timing": inserted_before_timing >= args.replay_capacity}


def measure_pair(num_envs: int, args) -> tuple[dict, dict | None]:
    """Both learners at one num_envs, their timed chunks interleaved (brax's None with --peer none).

    The machine may be shared: timing all of ours and then all of brax's would let
    a change of load between the two blocks show up as a ratio. Instead each timed
    brax epoch is followed (from its progress_fn, after its evaluation) by one timed
    chunk of ours, compiled, prefilled and warmed up beforehand.
    """
    ours = OursBench(num_envs, args)
    if args.peer == "none":
        for _ in range(args.repeats):
            ours.timed_chunk()
        return ours.result(), None
    print("  ours compiled and prefilled; brax, with ours between its epochs...", flush=True)
    brax = bench_brax(num_envs, args, after_timed_epoch=ours.timed_chunk)
    if len(ours.seconds) != args.repeats:
        raise RuntimeError(f"ran {len(ours.seconds)} timed chunks of ours, expected {args.repeats}")
    return ours.result(), brax


REGIME_DESCRIPTION = {
    "filling": "the replay buffer is not full during the timed chunks (the start of a run): brax's queue "
               "does not roll",
    "full": "the replay buffer is full before the first timed chunk and stays full (the steady state of a "
            "run longer than its capacity): every brax insert rolls its whole buffer, ours overwrites in "
            "place; min_replay_size = replay_capacity for both, so the untimed prefill fills it",
}


def measure_throughput(args, out_record: dict | None = None, write=None, regime: str = "filling") -> dict:
    """Both learners at each num_envs in `regime`: the record's SECTION_OF_REGIME[regime] section.

    The section goes into `out_record` before the first measurement and `write` is
    called after each num_envs, so a crash keeps the sizes already measured.
    """
    args = regime_args(args, regime)
    section = {
        "settings": {
            "regime": regime,
            "regime_description": REGIME_DESCRIPTION[regime],
            "env": ENV_NAME,
            "wrapper": "envs_mjx.wrap_for_training (both learners)",
            "episode_length": args.episode_length,
            "unroll_length": 1,
            "batch_size": args.batch_size,
            "grad_updates_per_step": args.grad_updates_per_step,
            "hidden_layer_sizes": args.hidden,
            "activation": "relu",
            "normalize_observations": True,
            "replay_capacity": args.replay_capacity,
            "min_replay_size": args.min_replay_size,
            **SHARED_HPARAMS,
            "init_alpha": INIT_ALPHA,
            "target_entropy": f"{TARGET_ENTROPY_PER_ACTION_DIM} * action_size",
            "iterations_per_timed_chunk": args.iterations,
            "timed_chunks": args.repeats,
            "brax_warmup_epochs_dropped": args.brax_warmup_epochs,
            "metric": "env steps and gradient steps per second of training, median over timed chunks; "
                      "compile, eval and replay prefill excluded (ours: AOT-compiled chunk, prefill "
                      "chunks and one warm-up call untimed, then timed calls; brax: its 'training/sps' "
                      "per epoch, first epochs dropped as they include compilation); each timed chunk "
                      "of ours runs right after a timed brax epoch, so load changes hit both",
        },
        "results": [],
    }
    if out_record is not None:
        out_record[SECTION_OF_REGIME[regime]] = section
    for num_envs in args.num_envs:
        load_before = os.getloadavg()
        print(f"[{regime}] num_envs={num_envs}: ours (compile, prefill, warm-up)...", flush=True)
        ours, brax = measure_pair(num_envs, args)
        brax_full = brax is None or brax["replay_full_throughout_timing"]
        if regime == "full" and not (ours["replay_full_throughout_timing"] and brax_full):
            brax_inserted = "" if brax is None else (
                f", brax {brax['env_steps_inserted_before_timing']} inserted")
            raise RuntimeError(f"full regime at num_envs={num_envs}: a buffer was not full before timing "
                               f"(ours {ours['replay_size_before_timing']} of {args.replay_capacity}"
                               f"{brax_inserted})")
        for name, figures in [("ours", ours)] + ([("brax", brax)] if brax is not None else []):
            print(f"  {name} {figures['env_steps_per_s']:,.0f} env steps/s, "
                  f"{figures['grad_steps_per_s']:,.0f} grad steps/s", flush=True)
        row = {
            "num_envs": num_envs,
            "env_steps_per_timed_chunk": args.iterations * num_envs,
            "grad_steps_per_timed_chunk": args.iterations * args.grad_updates_per_step,
            "ours": ours,
            # The machine may be shared: a high load average means the figures are depressed.
            "loadavg_1m_before_after": [load_before[0], os.getloadavg()[0]],
        }
        if brax is not None:
            # Both rates come from the same chunk times, so the two ratios are equal up
            # to rounding; both are kept so a reader need not know that.
            row["brax"] = brax
            row["ratio_ours_over_brax"] = {
                "env_steps_per_s": ours["env_steps_per_s"] / brax["env_steps_per_s"],
                "grad_steps_per_s": ours["grad_steps_per_s"] / brax["grad_steps_per_s"]}
        section["results"].append(row)
        if write is not None:
            write()
    return section


def print_table(rows: list[dict], title: str = "") -> None:
    if title:
        print(f"\n{title}", end="")
    print(f"\n{'num_envs':>8}  {'ours env/s':>11}  {'brax env/s':>11}  {'ours grad/s':>11}  "
          f"{'brax grad/s':>11}  {'ours/brax':>9}")
    for row in rows:
        ours = row["ours"]
        brax = row.get("brax", {"env_steps_per_s": math.nan, "grad_steps_per_s": math.nan})
        ratio = row.get("ratio_ours_over_brax", {"env_steps_per_s": math.nan})["env_steps_per_s"]
        print(f"{row['num_envs']:>8}  {ours['env_steps_per_s']:>11,.0f}  {brax['env_steps_per_s']:>11,.0f}  "
              f"{ours['grad_steps_per_s']:>11,.0f}  {brax['grad_steps_per_s']:>11,.0f}  {ratio:>9.2f}")


def ratio_summary(record: dict) -> dict:
    """{regime: {num_envs: ours/brax}} from the record's regime sections, for reading at a glance."""
    return {regime: {str(row["num_envs"]): row["ratio_ours_over_brax"]["env_steps_per_s"]
                     for row in record[section]["results"] if "ratio_ours_over_brax" in row}
            for regime, section in SECTION_OF_REGIME.items() if section in record}


def main(argv=None) -> None:
    args = parse_args(argv)
    record = {
        "benchmark": "sac_throughput",
        "machine": describe_machine(),
        "figures_are_per_machine": "every rate here was measured on the machine in `machine` (a shared "
                                   "CPU: see each row's load average) and holds for it only; the ratios "
                                   "ours/brax, from interleaved chunks, carry over better than the rates",
    }

    def write():
        record["ratios_ours_over_brax"] = ratio_summary(record)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2) + "\n")

    # brax compiles its evaluation (twice per train call) and its env reset afresh in every
    # call, the same programs each time: a compilation cache kept for this run only
    # compiles them once, which cuts minutes of untimed setup. Our chunks differ between
    # measurements (num_envs, capacity), so their compile_s stays a cold compile. A cache
    # hit logs "Assume version compatibility" and "Target machine feature ... is not
    # supported on the host" (XLA:CPU, same host): harmless.
    with tempfile.TemporaryDirectory(prefix="sac_throughput_jax_cache_") as cache_dir:
        jax.config.update("jax_compilation_cache_dir", cache_dir)
        sections = {regime: measure_throughput(args, record, write, regime) for regime in args.regimes}
    for regime, section in sections.items():
        capacity = regime_args(args, regime).replay_capacity
        print_table(section["results"], f"{regime} regime (replay capacity {capacity:,}): "
                                        f"{REGIME_DESCRIPTION[regime].split(':')[0]}")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
