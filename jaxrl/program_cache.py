"""Programs traced and lowered once, kept on disk: a warm start skips Python's tracing.

XLA's persistent cache (runtime.configure_jax) spares a warm start XLA's compile, but each process
still traces every program in Python and lowers it, which for an MJX env is most of a warm start
(benchmarks/results/compile_time_cpu.json). jax.export serializes a lowered program; this keeps each
program so, one file per key, where the key is a digest of everything its trace reads: the run's
settings, the program's name and argument shapes, the source and model files the process runs from
(jaxrl, envs_mjx, and any module loaded from outside the installed packages: a user's own env), the
versions of the packages that trace, the devices and JAX's settings. A program that cannot be
exported (a host callback) is compiled as before.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import pickle
import re
import sys
import sysconfig
import tempfile
from pathlib import Path

import jax
import numpy as np

import envs_mjx
import jaxrl

PACKAGES = (
    "jax",
    "jaxlib",
    "mujoco",
    "mujoco-mjx",
    "flax",
    "optax",
    "distrax",
    "chex",
    "numpy",
    "brax",
    "playground",
)
FORMAT = 1  # of the files; a change here makes every old file a miss


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def code_digest() -> str:
    """A digest of the files the programs are traced from: every file of jaxrl and envs_mjx (models
    included), and the source of each loaded module that is not part of Python or an installed package."""
    installed = {
        Path(sysconfig.get_paths()[kind]).resolve() for kind in ("stdlib", "platstdlib", "purelib", "platlib")
    }
    packages = [Path(jaxrl.__file__).parent.resolve(), Path(envs_mjx.__file__).parent.resolve()]
    files = {
        path
        for root in packages
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    for module in list(sys.modules.values()):
        source = getattr(module, "__file__", None)
        if source and source.endswith(".py"):
            path = Path(source).resolve()
            if not any(path.is_relative_to(root) for root in (*installed, *packages)):
                files.add(path)
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(str(path).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def host_kernels_ready() -> bool:
    """Fill in jaxlib's LAPACK kernels now; False where this jaxlib does it otherwise. jaxlib fills them
    in when it lowers a linear-algebra op, and a program loaded here is never lowered here: run with
    them empty (the orthogonal initializers' QR), it crashes the process."""
    try:
        from jaxlib import lapack

        lapack.prepare_lapack_call("geqrf_ffi", np.dtype(np.float32))
    except (ImportError, AttributeError, KeyError, TypeError):
        return False
    return True


class ProgramCache:
    """Exported programs in `folder`, for a run whose program-shaping settings are `settings`."""

    def __init__(self, folder: Path, settings: str):
        self.folder = Path(folder)
        versions = ";".join(f"{package}={_version(package)}" for package in PACKAGES)
        devices = ";".join(f"{d.platform}:{d.device_kind}" for d in jax.devices())
        self._base = "\n".join(
            (
                str(FORMAT),
                settings,
                code_digest(),
                versions,
                devices,
                str(jax.config.jax_enable_x64),
                sys.version,
            )
        )

    def key(self, name: str, args: tuple) -> str:
        leaves, tree = jax.tree.flatten(args)
        shapes = ";".join(
            f"{getattr(leaf, 'shape', ())}{getattr(leaf, 'dtype', type(leaf))}" for leaf in leaves
        )
        # A static field may hold a function (flax's TrainState.apply_fn): its address differs in each
        # process; what it computes is in the code digest.
        tree = re.sub(r" at 0x[0-9a-f]+", "", str(tree))
        return hashlib.sha256("\n".join((self._base, name, tree, shapes)).encode()).hexdigest()

    def load(self, key: str):
        """(jax.export.Exported, its output's tree structure), or None when not kept or unreadable."""
        path = self.folder / f"{key}.program"
        try:
            serialized, out_skeleton = pickle.loads(path.read_bytes())
            return jax.export.deserialize(bytearray(serialized)), jax.tree.structure(out_skeleton)
        except FileNotFoundError:
            return None
        except Exception:  # damaged or from a jax that reads it otherwise: traced again and replaced
            path.unlink(missing_ok=True)
            return None

    def store(self, key: str, exported, out_tree) -> None:
        """Write atomically: a crash leaves the old file or none, never half of one. The output's
        structure goes as an instance of it (leaves: their numbers): a pickled PyTreeDef of our classes
        does not survive another process. PicklingError: one of its static fields cannot be pickled."""
        self.folder.mkdir(parents=True, exist_ok=True)
        skeleton = jax.tree.unflatten(out_tree, range(out_tree.num_leaves))
        data = pickle.dumps((exported.serialize(), skeleton))
        handle, temporary = tempfile.mkstemp(dir=self.folder, suffix=".partial")
        with os.fdopen(handle, "wb") as f:
            f.write(data)
        os.replace(temporary, self.folder / f"{key}.program")


def export_flat(jitted, args: tuple):
    """(jax.export.Exported of `jitted` on the flat leaves of `args`, returning its output's flat leaves;
    that output's tree structure). Flat, so only lists cross the serialization, not our pytree classes."""
    leaves, in_tree = jax.tree.flatten(args)
    out_tree = []

    def flat(*leaves):
        out = jitted(*jax.tree.unflatten(in_tree, leaves))
        out_leaves, tree = jax.tree.flatten(out)
        out_tree.append(tree)
        return out_leaves

    exported = jax.export.export(jax.jit(flat))(*leaves)
    return exported, out_tree[0]
