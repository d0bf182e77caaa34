"""A population in one program: members equal separate runs, a sweep of floats, a member that diverges,
records per member and per sweep point, and what eval and export make of a population's run."""

import io
import math

import jax
import numpy as np
import pytest
import scipy.stats
import toy_envs
from conftest import assert_same_records, with_algo, with_train
from rich.console import Console
from test_demos import cartpole_demo_file, cartpole_offline_config
from tiny_runs import TINY_CARTPOLE_PPO, TINY_DREAMER

from jaxrl import cli, config
from jaxrl.logger import read_metrics
from jaxrl.population import Population, explained, mean_interval
from jaxrl.runs import restore_run
from jaxrl.train import train

TOY_PPO = ["train.iterations_per_call=2", "train.num_timesteps=768", "train.eval_every=256",
           "train.checkpoint_every=768", "train.num_eval_envs=4", "train.tensorboard=false",
           "algo.num_envs=8", "algo.unroll_length=8", "algo.num_minibatches=2",
           "algo.policy_hidden_layer_sizes=[16,16]", "algo.value_hidden_layer_sizes=[16,16]",
           "algo.learning_rate=3e-4", "algo.reward_scaling=1.0"]
TOY_SAC = ["train.iterations_per_call=2", "train.num_timesteps=256", "train.eval_every=128",
           "train.checkpoint_every=256", "train.num_eval_envs=4", "train.tensorboard=false",
           "algo.num_envs=8", "algo.unroll_length=2", "algo.replay_capacity=512", "algo.min_replay_size=32",
           "algo.batch_size=16", "algo.grad_updates_per_step=2", "algo.policy_hidden_layer_sizes=[16,16]",
           "algo.q_hidden_layer_sizes=[16,16]"]
# The actor learns by reinforce here: with backprop its first gradients come back through two-hot decodes
# over bins up to 5e8 whose terms cancel to 1e-5 of their size, so float rounding (the order of a vmapped
# sum) moves them by a few % (the losses still agree to 1e-6); the population's machinery is the same.
TOY_DREAMER = ["train.iterations_per_call=2", "train.num_timesteps=256", "train.eval_every=128",
               "train.checkpoint_every=256", "train.num_eval_envs=4", "train.tensorboard=false",
               *TINY_DREAMER, "algo.actor_grad=reinforce"]
TOY_ONLINE = {"sac": TOY_SAC, "dreamer": TOY_DREAMER}
# 2 seeds at each of 4 points; the last setting varies fastest, so members 2, 3, 6 and 7 (reward_scaling
# inf) diverge at their first update.
SWEEP = ["train.num_seeds=2", "sweep.learning_rate=[3e-4,1e-3]", "sweep.reward_scaling=[1.0,inf]"]
# vmap batches each member's matrix products and reductions into one, whose float32 sums may run in
# another order: about 1e-7 of each value, magnified by the steps of a few iterations. Separate
# settings or seeds differ from the first iteration by O(1e-2) and more.
RTOL, ATOL = 1e-4, 1e-7


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        toy_envs.register(patch)
        yield lambda *extra: config.load("step-counter", "ppo", overrides=TOY_PPO + list(extra), preset="cpu")


@pytest.fixture(scope="module")
def population_run(toy, tmp_path_factory):
    run_dir, printed = tmp_path_factory.mktemp("population") / "run", io.StringIO()
    result = train(toy(*SWEEP), run_dir, console=Console(file=printed, width=200))
    return result, read_metrics(run_dir / "metrics.jsonl"), printed.getvalue()


def learned(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in records]


def member_records(records: list[dict], label: str) -> list[dict]:
    """A member's own keys of each record, named as a separate run names them."""
    suffix = f"/{label}"
    return [{**{k: r[k] for k in ("call", "env_steps", "grad_steps") if k in r},
             **{k[:-len(suffix)]: v for k, v in r.items() if k.endswith(suffix)}} for r in records]


@pytest.mark.parametrize("member, settings", [(0, {"seed": 0}), (1, {"seed": 1}),
                                              (5, {"seed": 1, "learning_rate": 1e-3})])
def test_a_member_trains_as_the_separate_run_of_its_seed_and_settings(toy, population_run, tmp_path,
                                                                      member, settings):
    _, records, _ = population_run
    settings = dict(settings)
    seed = settings.pop("seed")
    separate = train(with_algo(with_train(toy(), seed=seed), **settings), tmp_path)
    want = learned(read_metrics(separate.run_dir / "metrics.jsonl"))
    got = member_records(records, Population.of(toy(*SWEEP)).label(member))
    assert len(want) == 7
    assert_same_records(got, want, RTOL, ATOL)


@pytest.fixture(scope="module")
def learner_config(toy, tmp_path_factory):
    """learner_config(algo, *overrides): a run of SAC or Dreamer on the toy env, or of an offline learner
    on random cartpole demos, small enough to train in seconds."""
    data = cartpole_demo_file(tmp_path_factory.mktemp("demos") / "cartpole.hdf5")

    def load(algo: str, *overrides: str) -> config.RunConfig:
        if algo in TOY_ONLINE:
            return config.load("step-counter", algo, overrides=TOY_ONLINE[algo] + list(overrides),
                               preset="cpu")
        return cartpole_offline_config(algo, data, *overrides)

    return load


# A learning rate each learner sweeps, and two values of it.
SWEPT_RATES = {"sac": ("learning_rate", (3e-4, 1e-3)), "dreamer": ("actor_lr", (3e-5, 1e-4)),
               "bc": ("learning_rate", (1e-3, 3e-3)), "diffusion": ("learning_rate", (1e-4, 1e-3))}


@pytest.mark.parametrize("algo", list(SWEPT_RATES))
def test_every_learner_trains_a_member_as_the_separate_run_of_its_seed_and_settings(learner_config, tmp_path,
                                                                                   algo):
    setting, rates = SWEPT_RATES[algo]
    sweep = ["train.num_seeds=2", f"sweep.{setting}=[{rates[0]},{rates[1]}]"]
    population = train(learner_config(algo, *sweep), tmp_path / "population")
    separate = train(with_algo(with_train(learner_config(algo), seed=1), **{setting: rates[1]}),
                     tmp_path / "separate")
    assert population.status == separate.status == "finished"
    want = learned(read_metrics(separate.run_dir / "metrics.jsonl"))
    got = member_records(read_metrics(population.run_dir / "metrics.jsonl"),
                         Population.of(learner_config(algo, *sweep)).label(3))
    assert len(want) > 2
    assert_same_records(got, want, RTOL, ATOL)


def test_seeds_and_swept_values_train_differently(population_run):
    _, records, _ = population_run
    last = records[-1]
    seeds = [last[f"loss/value/learning_rate=0.0003/reward_scaling=1/seed_{s}"] for s in (0, 1)]
    rates = [last[f"loss/value/learning_rate={lr}/reward_scaling=1/seed_0"] for lr in ("0.0003", "0.001")]
    assert abs(seeds[0] - seeds[1]) > 1e-3 * abs(seeds[0]) and abs(rates[0] - rates[1]) > 1e-3 * abs(rates[0])


def test_a_diverging_member_is_frozen_and_announced_while_the_others_train_on(population_run):
    result, records, printed = population_run
    assert result.status == "finished" and result.steps == 768
    diverged = "learning_rate=0.001/reward_scaling=inf/seed_1"
    assert any(k.endswith(diverged) for k in records[0])  # evaluated before training
    assert not any(k.endswith(diverged) for r in records[1:] for k in r)
    assert "loss/value/learning_rate=0.001/reward_scaling=1/seed_1" in records[-1]
    assert "learning_rate=0.001/reward_scaling=inf" not in " ".join(records[-1])  # no point mean left
    assert f"member {diverged} diverged at 64 env steps: metric" in printed
    assert "It stays at its last good state; the other 4 go on" in printed


def test_each_sweep_point_has_the_mean_and_t_interval_of_its_seeds(population_run):
    _, records, _ = population_run
    last, point = records[-1], "learning_rate=0.0003/reward_scaling=1"
    values = np.asarray([last[f"loss/value/{point}/seed_{s}"] for s in (0, 1)])
    assert last[f"loss/value/{point}"] == pytest.approx(values.mean())
    half = scipy.stats.t.ppf(0.975, df=1) * values.std(ddof=1) / math.sqrt(2)
    assert last[f"loss/value/{point}/ci95_low"] == pytest.approx(values.mean() - half)
    assert last[f"loss/value/{point}/ci95_high"] == pytest.approx(values.mean() + half)
    assert mean_interval(np.asarray([2.0, 2.0, 2.0])) == (2.0, 2.0)


def test_a_population_resumed_halfway_gives_the_unbroken_runs_numbers(toy, population_run, tmp_path):
    _, unbroken, _ = population_run
    train(toy(*SWEEP, "train.num_timesteps=512", "train.checkpoint_every=512"), tmp_path)
    train(toy(*SWEEP), tmp_path, resume=True)  # the diverged members stay frozen, their best kept
    resumed = read_metrics(tmp_path / "metrics.jsonl")
    assert_same_records(learned(resumed), learned(unbroken), RTOL, ATOL)


def test_a_resumed_population_keeps_its_members(toy, population_run):
    run_dir = population_run[0].run_dir
    more = toy("train.num_seeds=3", "sweep.learning_rate=[3e-4,1e-3]", "sweep.reward_scaling=[1.0,inf]",
               "train.num_timesteps=1024")
    with pytest.raises(config.ConfigError, match="keeps its population.*8 members -> 12"):
        train(more, run_dir, resume=True)


def test_settings_that_shape_the_program_or_are_not_lists_are_refused_by_name(toy):
    with pytest.raises(config.ConfigError, match="sweep.num_envs: only float settings can vary"):
        toy("sweep.num_envs=[8,16]")
    with pytest.raises(config.ConfigError, match="sweep.learning_rat: .*did you mean 'learning_rate'"):
        toy("sweep.learning_rat=[1e-4]")
    with pytest.raises(config.ConfigError, match=r"sweep.learning_rate: expected a list of numbers"):
        toy("sweep.learning_rate=1e-4")
    with pytest.raises(config.ConfigError, match="learning_rate=-1.*learning_rate"):
        toy("sweep.learning_rate=[1e-4,-1]")
    with pytest.raises(config.ConfigError, match="population_devices=2 splits a population"):
        train(toy("train.population_devices=2"), "unused")


def test_a_swept_setting_the_learner_branches_on_is_named_as_one_that_cannot_vary():
    population = Population(seed=0, num_seeds=1, sweep=(("clipping_epsilon", (0.1, 0.2)),))
    with pytest.raises(config.ConfigError, match="sweep.clipping_epsilon: the learner uses this setting as "
                                                 "a Python constant"):
        with explained(population):
            jax.jit(lambda eps: 1.0 if eps > 0.15 else 0.0)(0.1)


def test_members_are_sweep_points_times_seeds_the_last_setting_fastest():
    pop = Population(seed=10, num_seeds=2, sweep=(("learning_rate", (1e-4, 1e-3)), ("entropy_cost", (0.0,))))
    assert pop.size == 4
    assert [pop.seed_of(m) for m in range(4)] == [10, 11, 10, 11]
    assert pop.label(3) == "learning_rate=0.001/entropy_cost=0/seed_11"
    assert pop.settings()["learning_rate"].tolist() == pytest.approx([1e-4, 1e-4, 1e-3, 1e-3])
    assert Population(seed=0, num_seeds=3).label(2) == "seed_2" and Population(0, 3).points == [{}]
    assert Population(0, 1).is_single and not Population(0, 1, (("learning_rate", (1e-4,)),)).is_single


# A cartpole population: returns that differ by member, for the best checkpoints, eval, export and the curve.
@pytest.fixture(scope="module")
def cartpole_population(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("cartpole") / "run"
    cfg = config.load("cartpole-balance", "ppo", overrides=TINY_CARTPOLE_PPO + ["train.num_seeds=3"],
                      preset="cpu")
    train(cfg, run_dir)
    return run_dir, read_metrics(run_dir / "metrics.jsonl")


def test_each_member_keeps_its_best_checkpoint(cartpole_population):
    run_dir, records = cartpole_population
    for m in range(3):
        returns = [r[f"eval/episode_return/seed_{m}"] for r in records if "eval/episode_return" in r]
        run = restore_run(run_dir, "best", member_index=m)
        assert run.member == m and run.label == f"seed_{m}" and run.cfg.train.seed == m
        assert run.meta["best_score"][0] == pytest.approx(max(returns))


def test_the_curve_draws_the_interval_band(cartpole_population):
    run_dir, records = cartpole_population
    assert {"eval/episode_return/ci95_low", "eval/episode_return/ci95_high"} <= records[-1].keys()
    assert (run_dir / "learning_curve.png").stat().st_size > 10_000


def test_eval_reports_every_member_and_the_interval(cartpole_population, capsys):
    run_dir, _ = cartpole_population
    assert cli.main(["eval", str(run_dir), "--episodes", "4"]) == 0
    out = capsys.readouterr().out
    assert "3 members" in out and "95% interval [" in out
    returns = [float(line.split()[1]) for line in out.splitlines() if line.strip().startswith("seed_")][:3]
    mean = [float(line.split()[1]) for line in out.splitlines() if line.strip().startswith("mean")][0]
    assert mean == pytest.approx(np.mean(returns), abs=1e-3)


def test_export_takes_the_best_member_unless_told_and_says_which(cartpole_population, tmp_path, capsys):
    run_dir, _ = cartpole_population
    best = max(range(3), key=lambda m: restore_run(run_dir, "best", member_index=m).meta["best_score"])
    assert cli.main(["export", str(run_dir), "--out", str(tmp_path / "p.onnx")]) == 0
    said = capsys.readouterr().out
    assert f"member {best} (seed_{best}), the member whose best evaluation ranks first" in said
    assert cli.main(["export", str(run_dir), "--member", "7", "--out", str(tmp_path / "q.onnx")]) == 2
    assert "--member 7: the run has members 0 to 2" in capsys.readouterr().out
