"""Orbax checkpoints of the whole training state.

Two managers under <run_dir>/checkpoints: `latest/` (periodic and final, the
newest `keep` kept) and `best/` (one checkpoint: the loop saves there only when
an evaluation beats every earlier one, by the learner's BEST_BY ranking). Orbax
writes each checkpoint into a temporary directory and renames it when
complete, so a run killed mid-write leaves the previous checkpoint intact.
Each checkpoint holds the TrainState and a small JSON of loop bookkeeping.

The state is stored as a nested dict of its leaves named by their pytree path
(env_state/data/qpos ...). Zero-size leaves, which mjx.Data has and Orbax
cannot write, are left out and rebuilt from the abstract state on restore.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
    """A checkpoint that is missing or cannot be read; the message says what to do."""


def _path_names(path) -> list[str]:
    names = []
    for entry in path:
        for attr in ("name", "key", "idx"):
            if hasattr(entry, attr):
                names.append(str(getattr(entry, attr)))
                break
    return names


def to_saveable(tree: Any) -> dict:
    """Nested dict of `tree`'s non-empty leaves, keyed by their path names."""
    saveable: dict = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if leaf.size == 0:
            continue
        *parents, name = _path_names(path)
        node = saveable
        for parent in parents:
            node = node.setdefault(parent, {})
        node[name] = leaf
    return saveable


def from_saveable(saveable: dict, abstract: Any) -> Any:
    """Inverse of `to_saveable`, shaped like `abstract`."""
    def leaf(path, spec):
        if spec.size == 0:
            return jnp.zeros(spec.shape, spec.dtype)
        node = saveable
        for name in _path_names(path):
            node = node[name]
        return node

    return jax.tree_util.tree_map_with_path(leaf, abstract)


class Checkpointer:
    def __init__(self, directory: Path, keep: int = 3):
        self.directory = Path(directory).resolve()
        self._latest = ocp.CheckpointManager(
            self.directory / "latest", options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))
        self._best = ocp.CheckpointManager(
            self.directory / "best", options=ocp.CheckpointManagerOptions(max_to_keep=1, create=True))

    @staticmethod
    def _save_args(state: Any, meta: dict):
        return ocp.args.Composite(state=ocp.args.StandardSave(to_saveable(state)),
                                  meta=ocp.args.JsonSave(meta))

    def save(self, step: int, state: Any, meta: dict) -> None:
        """Periodic or final checkpoint at `step` (the number of device calls done)."""
        if step not in self._latest.all_steps():
            self._latest.save(step, args=self._save_args(state, meta))

    def save_best(self, step: int, state: Any, meta: dict) -> None:
        """The new best checkpoint (the caller has ranked it), replacing the previous one."""
        if step not in self._best.all_steps():
            self._best.save(step, args=self._save_args(state, meta))

    def latest_step(self) -> int | None:
        return self._latest.latest_step()

    def _meta(self, manager: ocp.CheckpointManager, step: int) -> dict:
        return manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

    def _at_steps(self, steps: int) -> tuple[ocp.CheckpointManager, int]:
        """The manager and step of the kept checkpoint taken at `steps` env steps (gradient steps for
        offline learners), the count users see in logs."""
        kept, unit = {}, "env steps"
        for manager in (self._best, self._latest):  # the same checkpoint in both: either will do
            for step in manager.all_steps():
                meta = self._meta(manager, step)
                if "grad_steps" in meta:
                    unit = "gradient steps"
                kept[meta.get("env_steps", meta.get("grad_steps"))] = (manager, step)
        if steps not in kept:
            available = ", ".join(f"{count:,}" for count in sorted(kept)) or "none"
            raise CheckpointError(f"no checkpoint at {steps:,} {unit} under {self.directory}; "
                                  f"available ({unit}): {available}")
        return kept[steps]

    def restore(self, abstract_state: Any, which: str | int = "latest") -> tuple[Any, dict]:
        """(state, meta) of the newest `latest` checkpoint, of the `best` one, or of the one
        taken at `which` env steps (gradient steps for offline learners)."""
        if isinstance(which, int):
            manager, step = self._at_steps(which)
        else:
            manager = {"latest": self._latest, "best": self._best}[which]
            step = manager.latest_step()  # `best` keeps one: the newest is the best
        if step is None:
            raise CheckpointError(f"no {which} checkpoint under {self.directory}")
        try:
            restored = manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(to_saveable(abstract_state)), meta=ocp.args.JsonRestore()))
        except Exception as error:  # orbax raises many types; all mean "unreadable"
            raise CheckpointError(
                f"checkpoint {manager.directory / str(step)} could not be read ({type(error).__name__}: "
                f"{error}). It may be damaged or from a run with a different config; delete it to fall "
                f"back to an older one, or start a new run.") from error
        return from_saveable(restored["state"], abstract_state), restored["meta"]

    def close(self) -> None:
        """Wait for background writes to finish."""
        self._latest.wait_until_finished()
        self._best.wait_until_finished()
        self._latest.close()
        self._best.close()
