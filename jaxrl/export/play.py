"""`jaxrl play`: an exported policy driving plain MuJoCo.

Playback runs what a deployment runs: onnxruntime computes the action from
an observation that the env's own code computes in NumPy (`envs_mjx.plain`),
and `mujoco.mj_step` moves the robot on the CPU with the env's control
decimation. JAX only draws each episode's start (the env's reset), so
episodes start as they did in training. A policy with memory starts every
episode from zero memory (`OnnxPolicy.reset`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence

import jax
import numpy as np

import envs_mjx
from envs_mjx.plain import PlainEnv
from jaxrl import config
from jaxrl.export import PolicyMismatchError
from jaxrl.export.onnx_policy import OnnxPolicy, PolicyMetadata

TRACKING_METRICS = ("lin_vel_error", "ang_vel_error")  # reported when the env has them (Go1)


@dataclasses.dataclass(frozen=True)
class EpisodeReport:
    episode_return: float
    length: int  # control steps played
    terminated: bool  # ended by the env (a fall...), not by the step limit
    metric_means: dict[str, float]  # each per-step metric averaged over the episode

    def summary(self) -> str:
        tracking = "".join(f", mean {name} {self.metric_means[name]:.3f}" for name in TRACKING_METRICS
                           if name in self.metric_means)
        ending = "terminated" if self.terminated else "step limit"
        return f"return {self.episode_return:9.3f} over {self.length:4d} steps ({ending}){tracking}"


def build_env(metadata: PolicyMetadata, env_name: str | None = None):
    """The MJX env the policy was trained on, from the file's env config; `env_name` must agree."""
    if env_name is not None and env_name != metadata.env_name:
        raise PolicyMismatchError(f"the policy was trained on {metadata.env_name}, not {env_name}; leave "
                                  f"--env out or export a policy trained on {env_name}")
    env_config = config.build(envs_mjx.config_class(metadata.env_name), metadata.env_config,
                              where=f"the env config stored in the policy file ({metadata.env_name})")
    return envs_mjx.make(metadata.env_name, env_config)


def env_action(output: np.ndarray, metadata: PolicyMetadata) -> np.ndarray:
    """The env's [-1, 1] action behind a policy output in control units (undoes the graph's scaling)."""
    if metadata.action_offset is None:
        return output
    return (output - np.asarray(metadata.action_offset)) / np.asarray(metadata.action_scale)


def onnx_actor(policy: OnnxPolicy) -> Callable[[np.ndarray], np.ndarray]:
    """flat observation -> the env's [-1, 1] action, by the ONNX policy."""
    return lambda obs: env_action(policy(obs), policy.metadata)


def episode_key(seed: int, episode) -> jax.Array:
    """Episode i of a playback with `seed` starts from the env's reset with this key."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), episode)


def play_episode(act: Callable[[np.ndarray], np.ndarray], twin: PlainEnv, start,
                 max_steps: int) -> Iterator[EpisodeReport | None]:
    """One episode of `act` (flat observation -> env action) in `twin`, from the MJX state `start`.

    Yields None after every step (the twin then holds the new state) and the
    episode's report last.
    """
    obs, total, sums, length, done = twin.reset(start), 0.0, {}, 0, False
    while length < max_steps and not done:
        obs, reward, done, metrics = twin.step(act(obs))
        length, total = length + 1, total + reward
        for name, value in metrics.items():
            sums[name] = sums.get(name, 0.0) + value
        yield None
    yield EpisodeReport(total, length, done, {name: value / max(length, 1) for name, value in sums.items()})


class Playback:
    """An exported policy in its env's plain MuJoCo twin (`twin.data` is the state to show)."""

    def __init__(self, policy: OnnxPolicy, env_name: str | None = None, seed: int = 0,
                 command: Sequence[float] | None = None):
        self.policy, self.seed = policy, seed
        twin_class = envs_mjx.plain_class(policy.metadata.env_name)  # first: a peer's env has no twin
        self.env = build_env(policy.metadata, env_name)
        policy.check_env(self.env, env_name)
        self.twin = twin_class(self.env)
        if command is not None:
            self.twin.hold_command(command)
        self._reset = jax.jit(self.env.reset)
        self.act = onnx_actor(policy)

    def run(self, steps: int) -> Iterator[EpisodeReport | None]:
        """Play `steps` control steps, episode after episode; yields as `play_episode` does."""
        played, episode = 0, 0
        while played < steps:
            start = self._reset(episode_key(self.seed, episode))
            self.policy.reset()
            budget = min(self.env.config.episode_length, steps - played)
            for event in play_episode(self.act, self.twin, start, budget):
                if event is not None:
                    played += event.length
                yield event
            episode += 1


def record_episodes(policy: OnnxPolicy, env, env_name: str, starts,
                    steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(observations [T, B, n], policy outputs [T, B, a]) of `policy` playing the B episodes that the
    batched MJX states `starts` begin, each in its own twin of `env` (named `env_name`), for T = `steps`
    control steps, all envs in one batch (one memory row each). An episode the env ends keeps playing:
    its observations are still inputs the policy can be checked on."""
    starts = jax.device_get(starts)  # one transfer; then each env's start is NumPy slices, not device ops
    count = len(jax.tree.leaves(starts)[0])
    twins = [envs_mjx.make_plain(env_name, env) for _ in range(count)]
    obs = np.stack([twin.reset(jax.tree.map(lambda leaf, i=i: leaf[i], starts))
                    for i, twin in enumerate(twins)])
    policy.reset()
    observations, outputs = [], []
    for _ in range(steps):
        output = policy(obs)
        observations.append(obs)
        outputs.append(output)
        actions = env_action(output, policy.metadata)
        obs = np.stack([twin.step(action).obs for twin, action in zip(twins, actions, strict=True)])
    return np.stack(observations), np.stack(outputs)


def episode_reports(events: Iterator[EpisodeReport | None],
                    on_episode: Callable[[EpisodeReport], None]) -> Iterator[None]:
    """Hands every episode report to `on_episode`; yields once per step."""
    for event in events:
        if event is None:
            yield None
        else:
            on_episode(event)
