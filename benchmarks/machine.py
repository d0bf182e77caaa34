"""The machine description every benchmark record carries."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import sys

import jax


def describe_machine() -> dict:
    """Where a figure was measured: CPU, cores, accelerator, package versions, date."""
    cpu_model = ""
    try:
        with open("/proc/cpuinfo") as f:
            models = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu_model = models[0] if models else ""
    except OSError:
        pass
    versions = {}
    for package in ("jax", "jaxlib", "brax", "mujoco", "mujoco-mjx", "warp-lang", "flax", "optax"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "processor": platform.processor() or cpu_model,
        "cpu_model": cpu_model,
        "uname": platform.uname()._asdict(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        # When it was taken (most records take it at the end): above the core count, the machine was shared.
        "load_average_1_5_15_min": list(os.getloadavg()),
        "jax_devices": [str(d) for d in jax.devices()],
        "jax_device_kind": jax.devices()[0].device_kind,  # "NVIDIA H100 80GB HBM3", "cpu"
        "jax_backend": jax.default_backend(),
        "python": sys.version.split()[0],
        "versions": versions,
    }
