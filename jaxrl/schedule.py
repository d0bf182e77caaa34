"""When the loop does what, and what a resumed run must keep: the step accounting of a run.

A run advances in device calls of `iterations_per_call` training iterations;
evaluations, checkpoints and videos fall due every so many calls, and the
progress users see (env steps, or gradient steps for offline learners) is the
calls done times the steps a call takes.
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
