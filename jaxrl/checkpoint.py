"""Orbax checkpoints of the whole training state.

Two managers under <run_dir>/checkpoints: `latest/` (periodic and final, the
newest `keep` kept) and `best/` (one checkpoint: the loop saves there only when
an evaluation beats every earlier one, by the learner's BEST_BY ranking). A
population (jaxrl.population) has a best per member instead, `best_member_<m>/`,
each holding that member's slice of the state: a separate run's TrainState. Orbax
writes each checkpoint into a temporary directory and renames it when
complete, so a run killed mid-write leaves the previous checkpoint intact.
Each checkpoint holds the TrainState and a small JSON of loop bookkeeping.

The state is stored as a nested dict of its leaves named by their pytree path
(env_state/data/qpos ...). Zero-size leaves, which mjx.Data has and Orbax
cannot write, are left out and rebuilt from the abstract state on restore.
Being named by path, a part of the state can be read alone (`restore_part`):
evaluating or exporting a policy reads its parameters, not a replay buffer of
gigabytes.

A checkpoint that cannot be read is a CheckpointError naming it in one line.
Orbax and its dependencies report such a failure through Python logging with
whole tracebacks (tens of thousands of lines); while a Checkpointer is open
their logs go to checkpoints/orbax.log instead of the terminal.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

DEPENDENCY_LOGGERS = ("absl", "orbax", "asyncio", "tensorstore", "etils")
LOG_NAME = "orbax.log"
DAMAGED_DIR = "damaged"  # where a resumed run moves the checkpoints it could not read
ERROR_CHARS = 300  # of a dependency's error text kept in our message (TensorStore's run to pages)


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
    return jax.tree_util.tree_map_with_path(lambda path, spec: _lookup(saveable, _path_names(path), spec),
                                            abstract)


def _lookup(saveable: dict, names: list[str], spec):
    if spec.size == 0:
        return jnp.zeros(spec.shape, spec.dtype)
    node = saveable
    for name in names:
        node = node[name]
    return node


@dataclasses.dataclass(frozen=True)
class _Tagged:
    """A leaf of the abstract state that remembers where it lives (not a pytree node: a leaf)."""

    names: tuple[str, ...]
    spec: Any


def _short(error: Exception) -> str:
    text = " ".join(str(error).split())
    text = text if len(text) <= ERROR_CHARS else text[:ERROR_CHARS] + " ..."
    return f"{type(error).__name__}: {text}"


class _DependencyLogs:
    """Sends the dependency loggers to a file for as long as it is open."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handler = logging.FileHandler(path, delay=True)
        self._handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        self._saved = []
        for name in DEPENDENCY_LOGGERS:
            logger = logging.getLogger(name)
            self._saved.append((logger, logger.handlers[:], logger.propagate))
            logger.handlers, logger.propagate = [self._handler], False

    def close(self) -> None:
        for logger, handlers, propagate in self._saved:
            logger.handlers, logger.propagate = handlers, propagate
        self._handler.close()


class Checkpointer:
    def __init__(self, directory: Path, keep: int = 3):
        self.directory = Path(directory).resolve()
        self._logs = _DependencyLogs(self.directory / LOG_NAME)
        self._latest = self._manager("latest", keep)
        self._best = self._manager("best", 1)
        self._member_best: dict[int, ocp.CheckpointManager] = {}  # opened as they are needed

    def _manager(self, name: str, keep: int) -> ocp.CheckpointManager:
        # Synchronous: the loop donates the state to its next device call, so a write still reading the
        # arrays in the background would read reused buffers (on the CPU they are the host arrays
        # themselves), and a host copy for it would double the memory of a large replay buffer.
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                               enable_async_checkpointing=False)
        return ocp.CheckpointManager(self.directory / name, options=options)

    @staticmethod
    def _save_args(state: Any, meta: dict):
        # PyTreeSave, not StandardSave: restoring a part needs PyTreeRestore, and one manager serves one
        # handler per item. The files are the same (checkpoints written with StandardSave restore).
        return ocp.args.Composite(state=ocp.args.PyTreeSave(to_saveable(state)), meta=ocp.args.JsonSave(meta))

    def save(self, step: int, state: Any, meta: dict) -> None:
        """Periodic or final checkpoint at `step` (the number of device calls done)."""
        if step not in self._latest.all_steps():
            self._latest.save(step, args=self._save_args(state, meta))

    def _best_of(self, member: int | None) -> ocp.CheckpointManager:
        """The manager of the run's best checkpoint, or of a population member's."""
        if member is None:
            return self._best
        if member not in self._member_best:
            self._member_best[member] = self._manager(f"best_member_{member}", 1)
        return self._member_best[member]

    def save_best(self, step: int, state: Any, meta: dict, member: int | None = None) -> None:
        """The new best checkpoint (the caller has ranked it), replacing the previous one; of `member`
        (its slice of the state) in a population."""
        manager = self._best_of(member)
        if step not in manager.all_steps():
            manager.save(step, args=self._save_args(state, meta))

    def best_meta(self, member: int | None = None) -> dict | None:
        """The bookkeeping of the best checkpoint (of `member`); None if there is none."""
        manager = self._best_of(member)
        step = manager.latest_step()
        return None if step is None else self._meta(manager, step)

    def latest_step(self) -> int | None:
        return self._latest.latest_step()

    def _meta(self, manager: ocp.CheckpointManager, step: int) -> dict:
        try:
            return manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        except Exception as error:  # orbax raises many types; all mean "unreadable"
            raise self._unreadable(manager, step, error) from None

    def _unreadable(self, manager: ocp.CheckpointManager, step: int, error: Exception) -> CheckpointError:
        return CheckpointError(
            f"checkpoint {manager.directory / str(step)} could not be read ({_short(error)}; the whole "
            f"report is in {self.directory / LOG_NAME}). It may be damaged or from a run with a different "
            f"config; delete it to fall back to an older one, or start a new run.")

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

    def _chosen(self, which: str | int, member: int | None = None) -> tuple[ocp.CheckpointManager, int]:
        if isinstance(which, int):
            return self._at_steps(which)
        manager = self._latest if which == "latest" else self._best_of(member)
        step = manager.latest_step()  # `best` keeps one: the newest is the best
        if step is None:
            raise CheckpointError(f"no {which} checkpoint under {self.directory}")
        return manager, step

    def _read(self, manager: ocp.CheckpointManager, step: int, target: dict,
              partial: bool) -> tuple[dict, dict]:
        """(saveable dict shaped like `target`, meta) of one checkpoint; CheckpointError if unreadable."""
        device = jax.sharding.SingleDeviceSharding(jax.devices()[0])  # for stand-ins that name no sharding

        def args(spec):
            return ocp.ArrayRestoreArgs(dtype=spec.dtype, sharding=getattr(spec, "sharding", None) or device)

        restore_args = jax.tree.map(args, target)
        try:
            restored = manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.PyTreeRestore(target, restore_args=restore_args, partial_restore=partial),
                meta=ocp.args.JsonRestore()))
        except Exception as error:  # orbax raises many types; all mean "unreadable"
            raise self._unreadable(manager, step, error) from None
        return restored["state"], restored["meta"]

    def restore(self, abstract_state: Any, which: str | int = "latest") -> tuple[Any, dict]:
        """(state, meta) of the newest `latest` checkpoint, of the `best` one, or of the one
        taken at `which` env steps (gradient steps for offline learners)."""
        manager, step = self._chosen(which)
        saveable, meta = self._read(manager, step, to_saveable(abstract_state), partial=False)
        return from_saveable(saveable, abstract_state), meta

    def restore_part(self, abstract_state: Any, part: Callable[[Any], Any],
                     which: str | int = "latest", member: int | None = None) -> tuple[Any, dict]:
        """(part(state), meta) of a checkpoint, reading only the leaves `part` picks; `member`: of a
        population member's best checkpoint (which="best").

        `part` only selects: it takes a state (its leaves stand-ins) and returns
        a pytree of some of its leaves, e.g. an algorithm's `policy_params`.
        """
        tagged = jax.tree_util.tree_map_with_path(
            lambda path, spec: _Tagged(tuple(_path_names(path)), spec), abstract_state)
        picked = part(tagged)
        target: dict = {}
        for leaf in jax.tree.leaves(picked):
            if leaf.spec.size:
                node = target
                for name in leaf.names[:-1]:
                    node = node.setdefault(name, {})
                node[leaf.names[-1]] = leaf.spec
        manager, step = self._chosen(which, member)
        saveable, meta = self._read(manager, step, target, partial=True) if target else ({}, None)
        if meta is None:
            meta = self._meta(manager, step)
        return jax.tree.map(lambda leaf: _lookup(saveable, list(leaf.names), leaf.spec), picked), meta

    def restore_newest_readable(self, abstract_state: Any, warn: Callable[[str], None]) -> tuple[Any, dict]:
        """(state, meta) of the newest `latest` checkpoint that reads, for resuming a run.

        A newer one that does not read (a run killed mid-write by a full disk, a
        damaged file) is moved to checkpoints/damaged/ with a warning, so the run
        goes on from the last good one and writes that step afresh.
        """
        for step in sorted(self._latest.all_steps(), reverse=True):
            try:
                saveable, meta = self._read(self._latest, step, to_saveable(abstract_state), partial=False)
            except CheckpointError as error:
                moved = self.directory / DAMAGED_DIR / f"latest-{step}"
                moved.parent.mkdir(exist_ok=True)
                shutil.move(str(self._latest.directory / str(step)), str(moved))
                self._latest.reload()
                warn(f"{error} Moved it to {moved}; resuming from the checkpoint before it.")
                continue
            return from_saveable(saveable, abstract_state), meta
        raise CheckpointError(f"no readable checkpoint under {self._latest.directory}; start a new run")

    def close(self) -> None:
        """Wait for background writes to finish."""
        try:
            for manager in (self._latest, self._best, *self._member_best.values()):
                manager.wait_until_finished()
                manager.close()
        finally:
            self._logs.close()
