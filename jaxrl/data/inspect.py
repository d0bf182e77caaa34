"""A demonstration file's summary: demos, samples, success, episode lengths, per-key shapes and ranges."""

from __future__ import annotations

import json

import numpy as np

from jaxrl.data.validate import (
    check_finite,
    check_structure,
    demo_arrays,
    file_obs_keys,
    open_file,
    read_env_args,
)


def inspect(path) -> dict:
    """The report of the file at `path`, after checking all of it (DatasetError when it is malformed).

    Keys: path, num_demos, total_samples, success_rate (None when no demo says),
    episode_length ({min, mean, max} or None), keys ({"obs/state": {shape, dtype, min, max}, ...}),
    env_args (dict or None).
    """
    lengths, successes, keys = [], [], {}
    with open_file(path) as file:
        names = check_structure(file, path)
        env_args = read_env_args(file, path)
        obs_keys = file_obs_keys(file, names[0]) if names else []
        for name in names:
            demo = file["data"][name]
            lengths.append(demo["actions"].shape[0])
            if "success" in demo.attrs:
                successes.append(bool(demo.attrs["success"]))
            for key, values in demo_arrays(demo, obs_keys).items():
                check_finite(values, f"data/{name}/{key}", path)
                entry = keys.setdefault(key, {"shape": tuple(values.shape[1:]), "dtype": str(values.dtype),
                                              "min": np.inf, "max": -np.inf})
                entry["min"] = min(entry["min"], float(values.min()))
                entry["max"] = max(entry["max"], float(values.max()))
    return {
        "path": str(path),
        "num_demos": len(names),
        "total_samples": int(sum(lengths)),
        "success_rate": float(np.mean(successes)) if successes else None,
        "episode_length": {"min": int(min(lengths)), "mean": float(np.mean(lengths)),
                           "max": int(max(lengths))} if lengths else None,
        "keys": keys,
        "env_args": env_args,
    }


def print_report(report: dict, console) -> None:
    """`report` (from `inspect`) as a few lines and a table of keys on a rich Console."""
    success = "n/a" if report["success_rate"] is None else f"{100 * report['success_rate']:.1f}%"
    console.print(f"[bold]{report['path']}[/bold]: {report['num_demos']:,} demos, "
                  f"{report['total_samples']:,} samples, success {success}")
    if report["episode_length"] is not None:
        length = report["episode_length"]
        console.print(f"episode length: min {length['min']:,}, mean {length['mean']:,.1f}, "
                      f"max {length['max']:,}")
    env_args = report["env_args"] or {}
    if env_args:
        obs_keys = ", ".join(env_args.get("obs_keys") or []) or "-"
        console.print(f"env: {env_args.get('env_name', '?')}, "
                      f"control_dt {env_args.get('control_dt', '?')} s, obs keys: {obs_keys}")
    if report["keys"]:
        console.print(f"  {'key':<28} {'shape':<14} {'dtype':<8} {'min':>12} {'max':>12}")
        for key, entry in report["keys"].items():
            console.print(f"  {key:<28} {str(entry['shape']):<14} {entry['dtype']:<8} {entry['min']:>12.4g} "
                          f"{entry['max']:>12.4g}")
    if "env_config" in env_args:
        console.print(f"env_config: {json.dumps(env_args['env_config'])}")
