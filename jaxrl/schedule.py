"""A run's accounting: when the loop does what (Schedule), what it tracks from call to call
(Bookkeeping), and what a resumed run must keep.

A run advances in device calls of `iterations_per_call` training iterations;
evaluations, checkpoints and videos fall due every so many calls, and the
progress users see (env steps, or gradient steps for offline learners) is the
calls done times the steps a call takes. A checkpoint holds the bookkeeping
beside the state, so a resumed run ranks its evaluations against the same best.
"""

from __future__ import annotations

import dataclasses
import math

from jaxrl import algos, config


@dataclasses.dataclass(frozen=True)
class Schedule:
    """When the loop does what, counted in device calls; `unit` and `step_key` name its progress count."""

    steps_per_iteration: int
    iterations_per_call: int
    total_calls: int
    eval_calls: int
    checkpoint_calls: int
    video_calls: int  # 0: no videos
    unit: str  # "env steps", or "gradient steps" for offline learners
    step_key: str  # the count's key in records and checkpoint metadata

    @classmethod
    def of(cls, algo, cfg: config.RunConfig) -> Schedule:
        tc, offline = cfg.train, algos.is_offline(algo)
        per_call = algo.steps_per_iteration(cfg.algo) * tc.iterations_per_call
        calls = lambda steps: max(1, round(steps / per_call))  # noqa: E731
        return cls(algo.steps_per_iteration(cfg.algo), tc.iterations_per_call,
                   max(1, math.ceil(tc.num_timesteps / per_call)), calls(tc.eval_every),
                   calls(tc.checkpoint_every), calls(tc.video_every) if tc.video_every else 0,
                   "gradient steps" if offline else "env steps", "grad_steps" if offline else "env_steps")

    @property
    def steps_per_call(self) -> int:
        return self.steps_per_iteration * self.iterations_per_call

    def steps(self, call: int) -> int:
        return call * self.steps_per_call

    def due(self, call: int, every: int) -> bool:
        """Whether something done every `every` calls (and at the end) is due after `call`."""
        return every > 0 and (call % every == 0 or call == self.total_calls)


def check_resume_keeps_step_accounting(algo, saved: config.RunConfig, cfg: config.RunConfig) -> None:
    """ConfigError when `cfg` changes how many steps an iteration or a call of the run `saved` takes:
    the restored call count would then miscount the steps trained and the schedule."""
    def accounting(c):
        return algo.steps_per_iteration(c.algo), c.train.iterations_per_call

    if accounting(saved) == accounting(cfg):
        return
    old_calls, new_calls = saved.train.iterations_per_call, cfg.train.iterations_per_call
    changed = [f"train.iterations_per_call ({old_calls} -> {new_calls})"] if old_calls != new_calls else []
    for field in dataclasses.fields(cfg.algo):
        old, new = getattr(saved.algo, field.name), getattr(cfg.algo, field.name)
        alone = dataclasses.replace(saved.algo, **{field.name: new})
        if old != new and algo.steps_per_iteration(alone) != algo.steps_per_iteration(saved.algo):
            changed.append(f"algo.{field.name} ({old} -> {new})")
    raise config.ConfigError(
        f"a resumed run keeps its step accounting, and {', '.join(changed)} would change it (steps per "
        f"iteration x iterations per call: {' x '.join(map(str, accounting(saved)))} -> "
        f"{' x '.join(map(str, accounting(cfg)))}). Resume without changing them, or start a new run.")


def best_score(record: dict, keys: tuple[str, ...]) -> tuple[float, ...]:
    """The record's rank under `keys`: compared in order, larger is better, "-name" ranks by -name.

    Keys the record lacks are skipped (an env without a success metric, a run
    without held-out data); they are absent from every record of a run alike.
    """
    return tuple(-record[k[1:]] if k.startswith("-") else record[k]
                 for k in keys if k.lstrip("-") in record)


@dataclasses.dataclass
class Bookkeeping:
    """The best evaluation so far and the call it came after, the last call logged, the last
    evaluation's results; `best_by` ranks evaluations (best_score). A population's keeps each
    member's best in a Bookkeeping of its own (`members`)."""

    best_by: tuple[str, ...]
    best: tuple[float, ...] | None = None
    best_call: int = 0
    published_call: int = 0
    last_eval: dict = dataclasses.field(default_factory=dict)
    members: list[Bookkeeping] = dataclasses.field(default_factory=list)

    @classmethod
    def of(cls, best_by: tuple[str, ...], members: int = 0) -> Bookkeeping:
        return cls(best_by, members=[cls(best_by) for _ in range(members)])

    def evaluated(self, call: int, results: dict) -> bool:
        """Take the evaluation after `call` in; whether it is the best so far."""
        self.last_eval = results
        score = best_score(results, self.best_by)
        if self.best is not None and score <= self.best:
            return False
        self.best, self.best_call = score, call
        return True

    def meta(self, schedule: Schedule, call: int) -> dict:
        """What a checkpoint after `call` holds beside the state."""
        meta = {"call": call, schedule.step_key: schedule.steps(call), "best_score": self.best,
                "best_call": self.best_call, "best_by": list(self.best_by),
                "steps_per_iteration": schedule.steps_per_iteration,
                "iterations_per_call": schedule.iterations_per_call}
        if self.members:
            meta["members"] = [{"best_score": m.best, "best_call": m.best_call} for m in self.members]
        return meta

    def restore(self, meta: dict) -> None:
        """Continue from a checkpoint's `meta`."""
        self.best = tuple(meta["best_score"]) if meta.get("best_score") is not None else None
        self.best_call, self.published_call = meta.get("best_call", 0), meta["call"]
        for books, saved in zip(self.members, meta.get("members", []), strict=False):
            books.restore({**saved, "call": meta["call"]})
