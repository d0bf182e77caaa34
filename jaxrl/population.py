"""A population: several seeds, and a grid of float settings, trained as one compiled program.

Members are every sweep point (one combination of the values `sweep` lists)
times `train.num_seeds` seeds: member m is point m // num_seeds with seed
seed + m % num_seeds, and its numbers are those of a separate run with that
seed and those settings. The loop holds the population as `Members`: the
learner's TrainState with a leading [members] axis, made and stepped with
`jax.vmap`, so a learner never sees the population. Swept settings reach the
learner as traced arrays inside its config (`member_config`), arguments of the
program rather than constants of it: a learner that uses one as a Python
constant (a branch on it, a shape) fails to trace, and `explained` reports
that as a setting that cannot be swept.

A member whose update diverges is frozen at its last good state; the others
go on (jaxrl.device_call). Records name each member (`eval/episode_return/seed_3`,
`.../learning_rate=0.001/seed_3`) and give, per sweep point, the mean over its
seeds with a 95% t-interval (`record_of`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats
from flax import struct

from jaxrl import config

CONFIDENCE = 0.95  # of the interval across a sweep point's seeds


@struct.dataclass
class Members:
    """A population's state: every leaf of `runs` (the learner's TrainState) has a leading [members]
    axis; `settings` holds each swept setting's value per member, `alive` which members have not
    diverged."""

    runs: Any
    settings: dict  # setting name -> [members] float32
    alive: jax.Array  # [members] bool


def runs_of(state):
    """The learner's TrainState inside `state` (batched over members for a population)."""
    return state.runs if isinstance(state, Members) else state


@dataclasses.dataclass(frozen=True)
class Population:
    seed: int  # the first member's seed
    num_seeds: int  # seeds per sweep point
    sweep: tuple[tuple[str, tuple[float, ...]], ...] = ()  # (algo setting, its values), as RunConfig holds it

    @classmethod
    def of(cls, cfg: config.RunConfig) -> Population:
        return cls(cfg.train.seed, cfg.train.num_seeds, cfg.sweep)

    @property
    def points(self) -> list[dict[str, float]]:
        return config.sweep_points(self.sweep)

    @property
    def size(self) -> int:
        return len(self.points) * self.num_seeds

    @property
    def is_single(self) -> bool:
        """One run: the loop then holds the learner's own TrainState, without a members axis."""
        return self.size == 1 and not self.sweep

    def seed_of(self, member: int) -> int:
        return self.seed + member % self.num_seeds

    def point_of(self, member: int) -> dict[str, float]:
        return self.points[member // self.num_seeds]

    @staticmethod
    def point_label(point: dict[str, float]) -> str:
        """E.g. learning_rate=0.001/entropy_cost=0; empty without a sweep."""
        return "/".join(f"{name}={value:g}" for name, value in point.items())

    def label(self, member: int) -> str:
        """How records name the member: seed_3, or learning_rate=0.001/seed_3 in a sweep."""
        point = self.point_label(self.point_of(member))
        seed = f"seed_{self.seed_of(member)}"
        return f"{point}/{seed}" if point else seed

    def settings(self) -> dict[str, np.ndarray]:
        """Each swept setting's value per member, [size] float32: what member_config gets traced."""
        return {name: np.asarray([self.point_of(m)[name] for m in range(self.size)], np.float32)
                for name, _ in self.sweep}

    def keys(self, stream: int) -> jax.Array:
        """Each member's key of `stream`, [size, 2]: what a separate run with its seed draws from."""
        seeds = jnp.asarray([self.seed_of(m) for m in range(self.size)])
        return jax.vmap(lambda seed: jax.random.fold_in(jax.random.PRNGKey(seed), stream))(seeds)

    def member_config(self, cfg: config.RunConfig, member: int) -> config.RunConfig:
        """The config of a separate run that trains what `member` does."""
        train = dataclasses.replace(cfg.train, seed=self.seed_of(member), num_seeds=1, population_devices=1)
        return dataclasses.replace(cfg, algo=dataclasses.replace(cfg.algo, **self.point_of(member)),
                                   train=train, sweep=())

    def record_of(self, members: list[dict | None]) -> dict:
        """One record from each member's (None: a diverged member, left out): every key per member, and
        per sweep point the mean over its seeds and, with two or more, the ends of a 95% t-interval."""
        record = {}
        for point_index, point in enumerate(self.points):
            ids = range(point_index * self.num_seeds, (point_index + 1) * self.num_seeds)
            present = [m for m in ids if members[m] is not None]
            keys = dict.fromkeys(k for m in present for k in members[m])
            prefix = self.point_label(point)
            for key in keys:
                values = np.asarray([members[m][key] for m in present if key in members[m]])
                for m in present:
                    if key in members[m]:
                        record[f"{key}/{self.label(m)}"] = members[m][key]
                where = f"{key}/{prefix}" if prefix else key
                record[where] = float(values.mean())
                if len(values) > 1:
                    low, high = mean_interval(values)
                    record[f"{where}/ci95_low"], record[f"{where}/ci95_high"] = low, high
        return record


    def point_means(self, record: dict, key: str) -> list[tuple[str, float, tuple[float, float] | None]]:
        """(sweep point's label, mean, its 95% interval or None) of `key` per point of a record_of."""
        means = []
        for point in self.points:
            label = self.point_label(point)
            where = f"{key}/{label}" if label else key
            interval = ((record[f"{where}/ci95_low"], record[f"{where}/ci95_high"])
                        if f"{where}/ci95_low" in record else None)
            means.append((label, record.get(where, math.nan), interval))
        return means


def mean_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The t-interval of the mean of `values` (independent seeds): mean +- t * s / sqrt(n)."""
    n, mean = len(values), float(np.mean(values))
    spread = float(np.std(values, ddof=1)) / math.sqrt(n)
    if spread == 0.0 or not math.isfinite(spread):
        return mean, mean
    low, high = scipy.stats.t.interval(confidence, n - 1, loc=mean, scale=spread)
    return float(low), float(high)


def member_config(algo_cfg, settings: dict):
    """`algo_cfg` with one member's swept values (traced, inside the vmap)."""
    return dataclasses.replace(algo_cfg, **settings)


@functools.cache  # one program per evaluator, as jit caches by function
def over_members(fn):
    """jit-compiled `fn` over a leading members axis of every argument."""
    return jax.jit(jax.vmap(fn))


def check_resume_keeps_population(saved: config.RunConfig, cfg: config.RunConfig) -> None:
    """ConfigError when `cfg` changes the members of the run `saved` (its seeds or sweep)."""
    if Population.of(saved) != Population.of(cfg):
        raise config.ConfigError(
            f"a resumed run keeps its population, and train.seed, train.num_seeds or sweep.* changed it "
            f"({Population.of(saved).size} members -> {Population.of(cfg).size}). Resume without changing "
            f"them, or start a new run")


def member(tree, index: int):
    """Member `index`'s slice of a tree batched over members."""
    return jax.tree.map(lambda x: x[index], tree)


TRACE_ERRORS = (jax.errors.ConcretizationTypeError, jax.errors.TracerBoolConversionError,
                jax.errors.TracerIntegerConversionError, jax.errors.TracerArrayConversionError)


@contextlib.contextmanager
def explained(population: Population):
    """Tracing errors of a swept setting, which the learner uses as a Python constant, as a ConfigError."""
    try:
        yield
    except TRACE_ERRORS as error:
        if not population.sweep:
            raise
        names = ", ".join(f"sweep.{name}" for name, _ in population.sweep)
        first = str(error).strip().splitlines()[0][:200]
        raise config.ConfigError(
            f"{names}: the learner uses this setting as a Python constant (a branch or a shape), so it "
            f"cannot vary inside one program ({type(error).__name__}: {first}). Train one run per value "
            f"instead") from None
