"""Typed run configuration: dataclass defaults <- YAML recipe <- CPU preset <- key=value.

A recipe (configs/<env>_<algo>.yaml) has the sections

    env_name: cartpole-balance     # optional when given on the command line
    algo_name: ppo
    env:   {...}                   # fields of the env's Config
    algo:  {...}                   # fields of the algorithm's Config
    train: {...}                   # fields of TrainConfig
    sweep: {learning_rate: [1e-4, 3e-4]}   # optional: float algo settings that vary across a population
    cpu:   {algo: {...}, ...}      # applied on top when JAX finds no accelerator

Overrides are `section.field=value`, or a bare `field=value` when exactly one
section has that field; groups of settings nest (`env.rewards.torques=-1e-4`).
Every key is checked: an unknown one is an error that names the closest valid
key, a wrong type names the field and the type wanted. `sweep.FIELD=[a, b]`
lists values of a float algo setting; with `train.num_seeds` they make the
population one program trains (jaxrl.population).
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

import envs_mjx
from envs_mjx.registry import UnknownEnvError
from jaxrl import algos
from jaxrl.algos import UnknownAlgorithmError

# The recipes ship inside the package (a wheel holds no top-level configs/); in the repo
# jaxrl/recipes is a link to configs/, where people read them.
CONFIG_DIR = (Path(__file__).parent / "recipes").resolve()
SECTIONS = ("env", "algo", "train")
SWEEP = "sweep"  # the section of swept algo settings: its keys are the algo's, its values lists
RECIPE_KEYS = ("env_name", "algo_name") + SECTIONS + (SWEEP, "cpu")


class ConfigError(ValueError):
    """A configuration the user must fix; the message says how."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The outer loop's settings (shared by every algorithm)."""

    num_timesteps: int = 1_000_000  # env steps to train (bc, diffusion: gradient steps), in whole calls
    seed: int = 0  # one seed fixes every random draw: same seed, same numbers
    num_seeds: int = 1  # independent runs (seeds seed, seed+1, ...) per sweep point, trained as one program
    population_devices: int = 1  # devices the population's members are split over; the rest split the envs
    iterations_per_call: int = 10  # training iterations compiled into one device call
    eval_every: int = 100_000  # env (or gradient) steps between evaluations of the deterministic policy
    num_eval_envs: int = 16  # episodes per evaluation (one per env)
    checkpoint_every: int = 500_000  # env (or gradient) steps between periodic checkpoints, and a final one
    keep_checkpoints: int = 3  # periodic checkpoints kept on disk (plus the best)
    run_dir: str = ""  # empty: runs/<env>-<algo>-<timestamp>
    init_from: str = ""  # a run whose best checkpoint a new run starts from (dreamer: a world_model run)
    prefill: str = ""  # recorded episodes (HDF5 files, a,b) a new run's replay starts with (dreamer)
    tensorboard: bool = True  # also write TensorBoard events
    wandb: bool = False  # also log to Weights & Biases (the wandb extra; offline without credentials)
    wandb_project: str = "jaxrl"  # the W&B project of train.wandb
    video_every: int = 0  # env (or gradient) steps between videos of the policy, and one at the end; 0: none
    video_steps: int = 250  # control steps a video shows at most (it ends with the episode)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    env_name: str
    algo_name: str
    env: Any  # the env's Config dataclass
    algo: Any  # the algorithm's Config dataclass
    train: TrainConfig
    preset: str = "full"  # "full" or "cpu": which recipe variant was applied
    sweep: tuple = ()  # ((algo field, (its values...)), ...): see jaxrl.population.check_sweep


def default_recipe(env_name: str, algo_name: str) -> Path:
    return CONFIG_DIR / f"{env_name.replace('-', '_')}_{algo_name}.yaml"


def recipe_for(env_name: str, algo_name: str, recipe: Path | None = None) -> Path | None:
    """The recipe `load` reads: `recipe` if given, else configs/<env>_<algo>.yaml when it exists."""
    if recipe is not None:
        return recipe
    path = default_recipe(env_name, algo_name)
    return path if path.exists() else None


def list_recipes() -> list[Path]:
    return sorted(CONFIG_DIR.glob("*.yaml")) if CONFIG_DIR.is_dir() else []


def _closest_hint(key: str, candidates) -> str:
    close = difflib.get_close_matches(key, list(candidates), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def _describe(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value, tp, where: str):
    """`value` as type `tp`, or ConfigError naming `where` and the type wanted."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, where)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0])
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list like [64, 64], got {value!r}")
        item_type = args[0] if len(args) == 2 and args[1] is Ellipsis else None
        if item_type is None:
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(v, t, where) for v, t in zip(value, args, strict=True))
        return tuple(_coerce(v, item_type, where) for v in value)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where)  # a group of settings, e.g. env.rewards
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)  # 1e6 is written as a float in YAML
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:
        raise ConfigError(f"{where}: fields of type {_describe(tp)} cannot be set from a config")
    raise ConfigError(f"{where}: expected {_describe(tp)}, got {type(value).__name__} {value!r}")


def build(cls, data: Mapping[str, Any], where: str):
    """An instance of dataclass `cls` from `data`, every key and type checked."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of field: value, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in data.items():
        if key not in fields:
            raise ConfigError(f"unknown key {where}.{key}{_closest_hint(key, fields)} "
                              f"Valid keys of {where}: {', '.join(fields)}")
        values[key] = _coerce(value, hints[key], f"{where}.{key}")
    return cls(**values)


def as_dict(config) -> dict:
    """Plain YAML-able dict of a (nested) config dataclass."""
    def plain(value):
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        return value
    return plain(config)


def _merge(base: dict, overlay: Mapping) -> dict:
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_value(text: str):
    """YAML scalars and lists, plus floats YAML would keep as strings (1e-3)."""
    value = yaml.safe_load(text) if text.strip() else ""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _section_classes(env_name: str, algo_name: str) -> dict[str, type]:
    return {"env": envs_mjx.config_class(env_name), "algo": algos.get(algo_name).Config,
            "train": TrainConfig}


def _override_path(key: str, classes: Mapping[str, type], names_hint: str) -> list[str]:
    """The full path [section, field, (subfield...)] that override `key` names, checked field by field.

    `key` may start with its section (algo.learning_rate) or leave it out when
    exactly one section has that first field (learning_rate, rewards.torques).
    `names_hint` is "ENV ALGO" as `jaxrl config` takes them, for the message of an unknown key.
    """
    parts = key.split(".")
    if parts[0] in classes:
        section, names = parts[0], parts[1:]
        if not names:
            raise ConfigError(f"{key!r} names a section, not a setting (e.g. {key}.FIELD=value)")
    else:
        owners = [s for s, cls in classes.items() if parts[0] in {f.name for f in dataclasses.fields(cls)}]
        if len(owners) > 1:
            raise ConfigError(f"{parts[0]!r} is in several sections; write one of "
                              f"{', '.join(f'{s}.{key}' for s in owners)}")
        if not owners:
            if len(parts) > 1:
                hint = _closest_hint(parts[0], classes)
                raise ConfigError(f"unknown section {parts[0]!r} in {key!r}{hint} "
                                  f"Sections: {', '.join(classes)}")
            every = [f"{s}.{f.name}" for s, cls in classes.items() for f in dataclasses.fields(cls)]
            names = {e.split(".", 1)[1]: e for e in every}
            close = difflib.get_close_matches(key, list(names), n=1, cutoff=0.5)
            hint = f"; did you mean {names[close[0]]!r}?" if close else ""
            raise ConfigError(f"unknown key {key!r}{hint} (`jaxrl config {names_hint}` shows every key)")
        section, names = owners[0], parts
    cls, where = classes[section], section
    for depth, name in enumerate(names):
        fields = {f.name for f in dataclasses.fields(cls)}
        if name not in fields:
            raise ConfigError(f"unknown key {where}.{name}{_closest_hint(name, fields)} "
                              f"Valid keys of {where}: {', '.join(sorted(fields))}")
        where = f"{where}.{name}"
        field_type = typing.get_type_hints(cls)[name]
        if depth < len(names) - 1:
            if not dataclasses.is_dataclass(field_type):
                raise ConfigError(f"{where} is a single setting, not a group: write {where}=value")
            cls = field_type
    return [section, *names]


def apply_overrides(tree: dict, overrides, classes: Mapping[str, type], env_name: str,
                    algo_name: str) -> dict:
    """Fold `key=value` strings into the section tree of `env_name` and `algo_name`."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value (e.g. train.seed=1)")
        key, text = item.split("=", 1)
        nested = parse_value(text)
        path = key.split(".") if key.startswith(f"{SWEEP}.") else _override_path(
            key, classes, f"{env_name} {algo_name}")  # a sweep's keys are checked with its values
        for name in reversed(path):
            nested = {name: nested}
        tree = _merge(tree, nested)
    return tree


def read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections, got {type(data).__name__}")
    return data


def resolve(tree: Mapping, env_name: str, algo_name: str, preset: str, check: bool = True) -> RunConfig:
    """Build a RunConfig from a section tree; `check`: also the algorithm's validation (`check_algo`)."""
    try:
        classes = _section_classes(env_name, algo_name)
    except (UnknownEnvError, UnknownAlgorithmError) as error:
        raise ConfigError(str(error)) from None
    for key in tree:
        if key not in (*SECTIONS, SWEEP):
            raise ConfigError(f"unknown section {key!r}{_closest_hint(key, RECIPE_KEYS)} "
                              f"Sections: {', '.join(RECIPE_KEYS)}")
    sections = {name: build(cls, tree.get(name) or {}, name) for name, cls in classes.items()}
    sweep = check_sweep(sections["algo"], tree.get(SWEEP) or {})
    if sections["train"].num_seeds < 1:
        raise ConfigError(f"train.num_seeds must be at least 1, got {sections['train'].num_seeds}")
    config = RunConfig(env_name=env_name, algo_name=algo_name, preset=preset, sweep=sweep, **sections)
    if check:
        check_algo(config)
    return config


def check_sweep(algo_cfg, sweep: Mapping[str, Any]) -> tuple[tuple[str, tuple[float, ...]], ...]:
    """`sweep` (algo field: list of values) as RunConfig holds it; ConfigError for a key that is not a
    float setting of the algorithm: an int or a size changes the program's shapes, a string or a bool
    its code, and one program cannot vary either."""
    if not isinstance(sweep, Mapping):
        raise ConfigError(f"{SWEEP}: expected a mapping of algo setting: [values], got {sweep!r}")
    hints = typing.get_type_hints(type(algo_cfg))
    checked = []
    for name, values in sweep.items():
        if name not in hints:
            raise ConfigError(f"{SWEEP}.{name}: the algorithm has no setting {name!r}"
                              f"{_closest_hint(name, hints)}")
        if hints[name] not in (float, float | None):
            raise ConfigError(
                f"{SWEEP}.{name}: only float settings can vary inside one program, and {name} is "
                f"{_describe(hints[name])}: it shapes the program (sizes, counts) or chooses its code. "
                f"Train one run per value instead")
        try:  # YAML reads 1e-4 (no dot) as a string
            if isinstance(values, (str, bytes)) or any(isinstance(v, bool) for v in values) or not values:
                raise TypeError
            checked.append((name, tuple(float(v) for v in values)))
        except (TypeError, ValueError):
            raise ConfigError(
                f"{SWEEP}.{name}: expected a list of numbers like [1e-4, 3e-4], got {values!r}") from None
    return tuple(checked)


def sweep_points(sweep: tuple) -> list[dict[str, float]]:
    """Every combination of a RunConfig's swept values, the last setting varying fastest; [{}] if none."""
    names = [name for name, _ in sweep]
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*(v for _, v in sweep))]


def check_algo(config: RunConfig) -> None:
    """ConfigError for algorithm settings that cannot run (the algorithm's own `validate`), at every
    point of the sweep."""
    for point in sweep_points(config.sweep):
        where = "".join(f", sweep.{name}={value:g}" for name, value in point.items())
        try:
            algos.get(config.algo_name).validate(dataclasses.replace(config.algo, **point))
        except ValueError as error:
            raise ConfigError(f"algo{where}: {error}") from None


def load(env_name: str | None, algo_name: str | None, recipe: Path | None = None,
         overrides=(), preset: str = "full", check: bool = True) -> RunConfig:
    """The run configuration for `jaxrl train`.

    `recipe` defaults to configs/<env>_<algo>.yaml when that file exists;
    `preset` "cpu" applies the recipe's cpu section. `check` False leaves out the
    algorithm's validation, which `jaxrl config` reports instead of stopping at.
    """
    data = read_yaml(recipe) if recipe is not None else {}
    for key in data:
        if key not in RECIPE_KEYS:
            raise ConfigError(f"{recipe}: unknown top-level key {key!r}{_closest_hint(key, RECIPE_KEYS)} "
                              f"Valid: {', '.join(RECIPE_KEYS)}")
    env_name = env_name or data.get("env_name")
    algo_name = algo_name or data.get("algo_name")
    if not env_name or not algo_name:
        raise ConfigError("name the env and the algorithm: jaxrl train ENV ALGO (see `jaxrl list`)")
    if recipe is None and (default := recipe_for(env_name, algo_name)) is not None:
        return load(env_name, algo_name, default, overrides, preset, check)
    tree = {s: data.get(s) or {} for s in (*SECTIONS, SWEEP)}
    if preset == "cpu":
        tree = _merge(tree, data.get("cpu") or {})
    try:
        classes = _section_classes(env_name, algo_name)
    except (UnknownEnvError, UnknownAlgorithmError) as error:
        raise ConfigError(str(error)) from None
    tree = apply_overrides(tree, overrides, classes, env_name, algo_name)
    return resolve(tree, env_name, algo_name, preset, check)


def save(config: RunConfig, path: Path) -> None:
    data = {"env_name": config.env_name, "algo_name": config.algo_name, "preset": config.preset}
    data.update({s: as_dict(getattr(config, s)) for s in SECTIONS})
    if config.sweep:
        data[SWEEP] = {name: list(values) for name, values in config.sweep}
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False))


def load_saved(path: Path, overrides=()) -> RunConfig:
    """A run directory's config.yaml, with optional overrides (e.g. more num_timesteps)."""
    data = read_yaml(path)
    env_name, algo_name, preset = data.get("env_name"), data.get("algo_name"), data.get("preset", "full")
    tree = {s: data.get(s) or {} for s in (*SECTIONS, SWEEP)}
    try:
        classes = _section_classes(env_name, algo_name)
    except (UnknownEnvError, UnknownAlgorithmError) as error:
        raise ConfigError(f"{path}: {error}") from None
    tree = apply_overrides(tree, overrides, classes, env_name, algo_name)
    return resolve(tree, env_name, algo_name, preset)
