"""Wrappers that turn one environment into a batch of self-resetting episodes.

Order for training (innermost first): EpisodeWrapper -> VmapWrapper ->
AutoResetWrapper; `wrap_for_training` builds it and has the signature brax's
trainers expect of `wrap_env_fn`, so brax can train our envs too.

Info keys the wrappers add (the names brax's trainers read):
  steps            control steps taken in the current episode
  truncation       1.0 when the episode was cut by the time limit, not ended by the env
  episode_done     the `done` flag, repeated for brax's episode logging
  episode_metrics  running sums over the episode: "return" (raw reward),
                   "length", and every metric the env reports
  final_obs        the observation this step produced, before an auto-reset
                   replaced `obs`: the learner bootstraps truncated episodes on it
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from envs_mjx.core import Env, State

# Keys owned by EpisodeWrapper: an auto-reset keeps them from the finished
# episode, so the learner can read the final return at the step where done=1.
EPISODE_KEYS = ("steps", "truncation", "episode_done", "episode_metrics")


class Wrapper(Env):
    """Forwards everything to the wrapped env; subclasses override what they change."""

    def __init__(self, env: Env):
        self.env = env

    def reset(self, key: jax.Array) -> State:
        return self.env.reset(key)

    def step(self, state: State, action: jax.Array) -> State:
        return self.env.step(state, action)

    @property
    def action_size(self) -> int:
        return self.env.action_size

    @property
    def dt(self) -> float:
        return self.env.dt

    @property
    def observation_size(self):
        return self.env.observation_size

    @property
    def unwrapped(self) -> Env:
        return self.env.unwrapped

    def __getattr__(self, name):
        if name == "env":  # not yet set: avoid infinite recursion during init
            raise AttributeError(name)
        return getattr(self.env, name)


class EpisodeWrapper(Wrapper):
    """Time limit and episode bookkeeping.

    The counters restart lazily: a step taken from a state whose `done` is set
    starts a new episode's sums. That lets an auto-reset leave the finished
    episode's totals in place for one step, where the learner reads them.

    A step whose reward or metrics are not finite (physics that blew up) ends its
    episode, and those values count as 0: one env's NaN must not reach the
    learner's loss or the logged means of the whole batch. Sums are kept with
    selects, not by multiplying with masks, because NaN * 0 is NaN.
    """

    def __init__(self, env: Env, episode_length: int, action_repeat: int = 1):
        super().__init__(env)
        if episode_length < 1 or action_repeat < 1:
            raise ValueError(
                f"episode_length ({episode_length}) and action_repeat ({action_repeat}) must be >= 1"
            )
        self.episode_length = episode_length
        self.action_repeat = action_repeat

    def reset(self, key: jax.Array) -> State:
        state = self.env.reset(key)
        zero = jnp.zeros_like(state.reward)
        episode_metrics = {"return": zero, "length": zero}
        episode_metrics.update({k: jnp.zeros_like(v) for k, v in state.metrics.items()})
        info = dict(state.info, steps=zero, truncation=zero, episode_done=zero,
                    episode_metrics=episode_metrics)
        return state.replace(info=info)

    def step(self, state: State, action: jax.Array) -> State:
        new_episode = state.done
        total_reward = jnp.zeros_like(state.reward)
        # The inner env decides `done` afresh; it never inherits the last episode's flag.
        next_state = state.replace(done=jnp.zeros_like(state.done))
        for _ in range(self.action_repeat):  # unrolled: action_repeat is small and static
            next_state = self.env.step(next_state, action)
            total_reward = total_reward + next_state.reward
        finite = jnp.isfinite(total_reward)
        for value in next_state.metrics.values():
            finite = finite & jnp.isfinite(value)
        metrics = {name: jnp.where(finite, value, 0.0) for name, value in next_state.metrics.items()}
        total_reward = jnp.where(finite, total_reward, 0.0)
        terminated = jnp.where(finite, next_state.done, 1.0)
        next_state = next_state.replace(reward=total_reward, metrics=metrics)

        steps = jnp.where(new_episode > 0, 0.0, state.info["steps"]) + self.action_repeat
        timed_out = steps >= self.episode_length
        truncation = jnp.where(timed_out, 1.0 - terminated, 0.0)
        done = jnp.maximum(terminated, timed_out.astype(terminated.dtype))

        previous = state.info["episode_metrics"]

        def running(name, value):
            return jnp.where(new_episode > 0, 0.0, previous[name]) + value

        episode_metrics = {"return": running("return", total_reward),
                           "length": running("length", self.action_repeat)}
        for name, value in metrics.items():
            episode_metrics[name] = running(name, value)
        info = dict(next_state.info, steps=steps, truncation=truncation, episode_done=done,
                    episode_metrics=episode_metrics)
        return next_state.replace(done=done, info=info)


class AutoResetWrapper(Wrapper):
    """Starts a new episode (with a fresh random draw) wherever `done` is set.

    Wraps a *batched* env (a VmapWrapper): the reset is computed only on steps
    where some env of the batch finished, a real branch that skips the reset's
    physics on the other steps. Unlike caching the first state, every episode
    gets its own initial state and randomization. The pre-reset observation
    stays in info["final_obs"]; reward, done and metrics stay those of the
    final step.
    """

    def reset(self, key: jax.Array) -> State:
        keys = jax.vmap(jax.random.split)(key)  # [batch, 2, 2]
        state = self.env.reset(keys[:, 1])
        info = dict(state.info, final_obs=state.obs, autoreset_key=keys[:, 0])
        return state.replace(info=info)

    def step(self, state: State, action: jax.Array) -> State:
        keys = jax.vmap(jax.random.split)(state.info["autoreset_key"])
        key_next, key_reset = keys[:, 0], keys[:, 1]
        inner_info = {k: v for k, v in state.info.items() if k not in ("final_obs", "autoreset_key")}
        stepped = self.env.step(state.replace(info=inner_info), action)

        def start_new_episodes(stepped: State) -> State:
            fresh = self.env.reset(key_reset)

            def pick(fresh_leaf, stepped_leaf):
                extra_axes = (1,) * (stepped_leaf.ndim - stepped.done.ndim)
                done = jnp.reshape(stepped.done, stepped.done.shape + extra_axes)
                return jnp.where(done > 0, fresh_leaf, stepped_leaf)

            info = {k: jax.tree.map(pick, fresh.info[k], v) if k not in EPISODE_KEYS else v
                    for k, v in stepped.info.items()}
            # mjx.Data merges itself: under MuJoCo Warp some of its arrays are shared by the batch.
            data = jax.vmap(lambda done, f, s: s.where(done > 0, f))(stepped.done, fresh.data, stepped.data)
            return stepped.replace(data=data,
                                   obs=jax.tree.map(pick, fresh.obs, stepped.obs), info=info)

        new = jax.lax.cond(jnp.any(stepped.done > 0), start_new_episodes, lambda s: s, stepped)
        return new.replace(info=dict(new.info, final_obs=stepped.obs, autoreset_key=key_next))


class VmapWrapper(Wrapper):
    """Runs a batch of envs: reset takes keys of shape [batch, 2]."""

    def reset(self, key: jax.Array) -> State:
        return jax.vmap(self.env.reset)(key)

    def step(self, state: State, action: jax.Array) -> State:
        return jax.vmap(self.env.step)(state, action)


def wrap_for_training(
    env: Env,
    episode_length: int,
    action_repeat: int = 1,
    randomization_fn: Callable | None = None,
) -> Env:
    """Batched, time-limited, self-resetting episodes (brax's `wrap_env_fn` signature)."""
    if randomization_fn is not None:
        raise ValueError(
            "randomization_fn is not supported by envs_mjx.wrap_for_training; "
            "randomize inside the env's reset instead, per episode (as go1-joystick does: "
            "env.randomization in its config)"
        )
    return AutoResetWrapper(VmapWrapper(EpisodeWrapper(env, episode_length, action_repeat)))


def wrap_for_eval(env: Env, episode_length: int) -> Env:
    """Batched, time-limited episodes that are not reset: one episode per env."""
    return VmapWrapper(EpisodeWrapper(env, episode_length))
