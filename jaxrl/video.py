"""Rollout videos: MP4 files of rendered frames (envs_mjx.rendering), and the policy videos training
records."""

from __future__ import annotations

import functools
import io
import itertools
import math
import os
from collections.abc import Callable, Iterable
from fractions import Fraction
from pathlib import Path

import jax
import numpy as np
from rich.console import Console
from rich.markup import escape

from envs_mjx.rendering import DEFAULT_HEIGHT, DEFAULT_WIDTH, FrameRenderer, OffscreenGLError

GIF_MIN_FRAME_SECONDS = 0.02  # viewers show shorter GIF frames for 0.1 s: drop frames instead
TENSORBOARD_TAG = "eval/video"


def _import_av():
    try:
        import av
    except ImportError:
        raise ImportError("MP4 videos need PyAV: pip install -e '.[video]'") from None
    return av


def write_mp4(path: Path, frames: Iterable[np.ndarray], fps: float) -> int:
    """Write uint8 RGB frames [H, W, 3] as an H.264 MP4 at `fps`; the number of frames.

    H and W must be even (yuv420p stores colour at half resolution). The file
    is written beside `path` and then renamed, so `path` never holds part of a video.
    """
    av = _import_av()
    path = Path(path)
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError(f"{path}: no frames to write")
    height, width, _ = first.shape
    if height % 2 or width % 2:
        raise ValueError(f"{path}: H.264 video needs an even width and height, got {width} x {height}")
    partial = path.with_name(f".{path.name}.partial")
    count = 0
    try:
        with av.open(str(partial), mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for frame in itertools.chain([first], frames):
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
                count += 1
            container.mux(stream.encode())  # flush the frames the encoder still holds
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return count


def encode_gif(frames: np.ndarray, fps: float) -> bytes:
    """A looping animated GIF of uint8 RGB frames [T, H, W, 3], at most 1 / GIF_MIN_FRAME_SECONDS fps."""
    from PIL import Image

    stride = max(1, math.ceil(fps * GIF_MIN_FRAME_SECONDS))
    images = [Image.fromarray(frame) for frame in frames[::stride]]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:],
                   duration=round(1000 * stride / fps), loop=0)
    return buffer.getvalue()


def frame_rate(env) -> float:
    """Frames per second for real time: one frame per control step."""
    return 1.0 / env.dt


def render_episode(env, state, qpos: np.ndarray, width: int = DEFAULT_WIDTH,
                   height: int = DEFAULT_HEIGHT) -> np.ndarray:
    """Frames [T, height, width, 3] of one episode's poses `qpos` [T, nq] in an MJX env.

    `state` is any unbatched state of that episode: it picks the episode's
    model (`env.episode_mj_model`). The camera is `env.render_camera`.
    """
    model = env.episode_mj_model(state)
    with FrameRenderer(model, width, height, env.render_camera) as renderer:
        return np.stack([renderer.render_qpos(pose) for pose in qpos])


def _batch_of_one(obs):
    return jax.tree.map(lambda leaf: leaf[None], obs)


@functools.lru_cache(maxsize=8)  # the same rollout in the same process traces and compiles once
def make_policy_rollout(env, policy: tuple[Callable, Callable], steps: int):
    """jit-compiled (policy_params, key) -> (first state, qpos [steps, nq], done [steps]).

    One episode in the unbatched `env` of `policy`, a policy with memory as
    `jaxrl.evaluation.policy_with_memory` gives it: (initial_memory(params,
    obs[B, ...]), act(params, obs[B, ...], memory, key) -> (action[B, A],
    memory)), run as evaluation runs it, with its memory, here on a batch of
    one env, and without a key (deterministic). `key` starts the episode. qpos
    and done are those after each step. Steps past the episode's end (done)
    are not part of it.
    """
    initial_memory, act = policy

    def rollout(params, key):
        first = env.reset(key)

        def step(carry, _):
            state, memory = carry
            action, memory = act(params, _batch_of_one(state.obs), memory, None)
            state = env.step(state, action[0])
            return (state, memory), (state.data.qpos, state.done)

        start = (first, initial_memory(params, _batch_of_one(first.obs)))
        _, (qpos, done) = jax.lax.scan(step, start, None, length=steps)
        return first, qpos, done

    return jax.jit(rollout)


def episode_length(done: np.ndarray) -> int:
    """Steps up to and including the first done, or all of them."""
    ended = np.flatnonzero(done > 0)
    return int(ended[0]) + 1 if ended.size else len(done)


def unavailable_reason(env) -> str | None:
    """Why this process cannot make videos of `env` (no PyAV, no offscreen GL), or None."""
    try:
        _import_av()
        FrameRenderer(env.mj_model, 16, 16, env.render_camera).close()
    except (ImportError, OffscreenGLError) as error:
        return str(error)
    return None


def _compile_now(jitted, *args):
    return jitted.lower(*args).compile()


class TrainingVideos:
    """Videos of the deterministic policy during training: VIDEO_DIR/<env_steps>.mp4 and TensorBoard.

    Videos are extras: where they cannot be made (no offscreen GL, no PyAV),
    a warning says why, once, and training goes on without them.
    """

    def __init__(self, env, policy: tuple[Callable, Callable], params, key: jax.Array, steps: int,
                 video_dir: Path, console: Console, compile: Callable = _compile_now):
        """`env`: unbatched; `policy`: (initial_memory, act), see `make_policy_rollout`; `params`, `key`:
        examples of what `record` gets (arrays or jax.ShapeDtypeStructs), to compile the rollout now with
        `compile(jitted, params, key)` -> a callable (jaxrl.train passes its Compiler's, which times it)."""
        self.env, self.video_dir, self._console = env, Path(video_dir), console
        self._rollout = None
        reason = unavailable_reason(self.env)
        if reason is not None:
            self._warn(reason)
            return
        steps = min(steps, self.env.config.episode_length)
        self._rollout = compile(make_policy_rollout(self.env, policy, steps), params, key)

    def _warn(self, reason: str) -> None:
        self._rollout = None
        self._console.print(f"[yellow]warning:[/yellow] no videos in this run: {escape(reason)}")

    def record(self, params, key: jax.Array, env_steps: int, logger) -> Path | None:
        """Roll out, render and write one video (and hand it to `logger`); its path, or None if off."""
        if self._rollout is None:
            return None
        first, qpos, done = jax.device_get(self._rollout(params, key))
        try:
            frames = render_episode(self.env, first, qpos[:episode_length(done)])
        except OffscreenGLError as error:
            self._warn(str(error))
            return None
        self.video_dir.mkdir(parents=True, exist_ok=True)
        path = self.video_dir / f"{env_steps}.mp4"
        rate = frame_rate(self.env)
        write_mp4(path, frames, rate)
        logger.image(TENSORBOARD_TAG, encode_gif(frames, rate), frames.shape[1], frames.shape[2], env_steps)
        return path
