"""A demonstration file's summary: demos, samples, success, episode lengths, per-key shapes and ranges.

A LeRobot dataset (lerobot:FOLDER, or a folder) is reported in the same form (jaxrl.data.lerobot.summarize),
with its features' names, its format and the features it does not read.
"""

from __future__ import annotations

import json

import numpy as np

from jaxrl.data import lerobot
from jaxrl.data.reader import lerobot_folder
from jaxrl.data.validate import (
    check_finite,
    check_structure,
    demo_arrays,
    file_obs_keys,
    open_file,
    read_env_args,
)


def _report(path, lengths: list[int], successes: list[bool], keys: dict, env_args, **more) -> dict:
    return {
        "path": str(path),
        "num_demos": len(lengths),
        "total_samples": int(sum(lengths)),
        "success_rate": float(np.mean(successes)) if successes else None,
        "episode_length": {"min": int(min(lengths)), "mean": float(np.mean(lengths)),
                           "max": int(max(lengths))} if lengths else None,
        "keys": keys,
        "env_args": env_args,
        **more,
    }


def inspect(path) -> dict:
    """The report of the file at `path`, after checking all of it (DatasetError when it is malformed).

    Keys: path, num_demos, total_samples, success_rate (None when no demo says),
    episode_length ({min, mean, max} or None), keys ({"obs/state": {shape, dtype, min, max}, ...}),
    env_args (dict or None); of a LeRobot dataset also format (a line) and not_read ({feature: what}),
    its keys named by feature ("observation.state").
    """
    folder = lerobot_folder(path)
    if folder is not None:
        info, lengths, successes, keys = lerobot.summarize(folder)
        return _report(info.folder, lengths, successes, keys, info.env_args,
                       format=f"LeRobot {info.version}, {info.fps:g} fps",
                       not_read=lerobot.unread_features(info))
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
    return _report(path, lengths, successes, keys, env_args)


def print_report(report: dict, console) -> None:
    """`report` (from `inspect`) as a few lines and a table of keys on a rich Console."""
    success = "n/a" if report["success_rate"] is None else f"{100 * report['success_rate']:.1f}%"
    console.print(f"[bold]{report['path']}[/bold]: {report['num_demos']:,} demos, "
                  f"{report['total_samples']:,} samples, success {success}")
    if "format" in report:
        console.print(report["format"])
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
    for name, what in report.get("not_read", {}).items():
        console.print(f"  {name:<28} {what}: not read (camera frames and text are not decoded)")
    if "env_config" in env_args:
        console.print(f"env_config: {json.dumps(env_args['env_config'])}")
