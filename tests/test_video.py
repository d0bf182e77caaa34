"""Rollout videos: MP4 files, offscreen frames of env states, and the videos training records."""

import io
import struct

import av
import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from conftest import with_train
from PIL import Image
from rich.console import Console

import envs_mjx
from envs_mjx import _gl
from envs_mjx.classic.cartpole import CartpoleConfig
from envs_mjx.grasp import randomize
from jaxrl import video
from jaxrl.algos import bc
from jaxrl.data.demos import make_demo_set
from jaxrl.evaluation import policy_with_memory
from jaxrl.train import train

WIDTH, HEIGHT = 64, 48


def moving_square(count: int) -> list[np.ndarray]:
    """Frames of a white square crossing a dark background."""
    frames = []
    for i in range(count):
        frame = np.full((HEIGHT, WIDTH, 3), 30, np.uint8)
        frame[10:26, 4 * i:4 * i + 16] = 255
        frames.append(frame)
    return frames


def mp4_frames(path) -> tuple[int, int, int, float]:
    """(decoded frames, width, height, frames per second) of an MP4."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        count = sum(1 for _ in container.decode(stream))
        return count, stream.width, stream.height, float(stream.average_rate)


def tensorboard_images(run_dir) -> list[tuple[str, int, bytes]]:
    """(tag, step, encoded image) of each image in a run's TensorBoard event files (TFRecords)."""
    from tensorboardX.proto.event_pb2 import Event

    images = []
    for path in run_dir.glob("events.out.tfevents.*"):
        data, offset = path.read_bytes(), 0
        while offset < len(data):
            (length,) = struct.unpack_from("<Q", data, offset)  # then a CRC, the event, a CRC
            event = Event.FromString(data[offset + 12:offset + 12 + length])
            offset += 12 + length + 4
            images += [(value.tag, event.step, value.image.encoded_image_string)
                       for value in event.summary.value if value.HasField("image")]
    return images


def test_an_mp4_holds_every_frame_at_the_size_and_rate_written(tmp_path):
    path = tmp_path / "clip.mp4"
    assert video.write_mp4(path, iter(moving_square(7)), fps=50.0) == 7
    assert mp4_frames(path) == (7, WIDTH, HEIGHT, 50.0)
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]  # no partial file left behind


def test_odd_frame_sizes_and_no_frames_are_refused_without_a_file(tmp_path):
    with pytest.raises(ValueError, match="even width and height"):
        video.write_mp4(tmp_path / "odd.mp4", [np.zeros((HEIGHT, WIDTH - 1, 3), np.uint8)], fps=50.0)
    with pytest.raises(ValueError, match="no frames"):
        video.write_mp4(tmp_path / "empty.mp4", [], fps=50.0)
    assert not list(tmp_path.iterdir())


def test_a_gif_drops_frames_faster_than_viewers_show():
    gif = Image.open(io.BytesIO(video.encode_gif(np.stack(moving_square(8)), fps=100.0)))
    assert (gif.n_frames, gif.info["duration"]) == (4, 20)


@pytest.mark.parametrize("env_name", ["grasp-lift-cube", "go1-joystick"])
def test_an_env_renders_from_its_camera(env_name):
    env = envs_mjx.make(env_name)
    with video.FrameRenderer(env.mj_model, WIDTH, HEIGHT, env.render_camera) as renderer:
        frame = renderer.render_qpos(env.mj_model.key("home").qpos)
    assert frame.shape == (HEIGHT, WIDTH, 3) and frame.dtype == np.uint8
    assert frame.std() > 10, "a blank frame"


def red_pixels(frame: np.ndarray) -> int:
    red, green, blue = frame.astype(int).transpose(2, 0, 1)
    return int(np.sum((red > 120) & (green < 80) & (blue < 80)))


def test_the_grasp_cube_is_rendered_at_its_episode_size():
    env = envs_mjx.make("grasp-lift-cube")
    cube = env.mj_model.geom("cube").id
    nominal = env.mj_model.geom_size[cube].copy()
    qpos = env.mj_model.key("home").qpos

    def episode_frame(half_size: float) -> np.ndarray:
        cube_params = randomize.CubeParams(half_size=np.float32(half_size), mass=0.1, friction=1.0)
        state = envs_mjx.State(data=None, obs=None, reward=0.0, done=0.0, info={"cube": cube_params})
        np.testing.assert_allclose(env.episode_mj_model(state).geom_size[cube], half_size)
        return video.render_episode(env, state, qpos[None], WIDTH, HEIGHT)[0]

    assert red_pixels(episode_frame(0.03)) > 1.5 * red_pixels(episode_frame(0.02)) > 0
    np.testing.assert_array_equal(env.mj_model.geom_size[cube], nominal)  # the env's own model is untouched


def no_gl_context(*args, **kwargs):
    raise mujoco.FatalError("an OpenGL platform library has not been loaded")


def test_without_gl_the_renderer_says_what_to_install(monkeypatch):
    monkeypatch.setattr(mujoco, "Renderer", no_gl_context)
    with pytest.raises(video.OffscreenGLError, match="libosmesa6.*MUJOCO_GL=osmesa"):
        video.FrameRenderer(envs_mjx.make("cartpole-balance").mj_model, WIDTH, HEIGHT)


class TensorBoardImages:
    """Stands in for the run logger: keeps what `image` receives."""

    def __init__(self):
        self.images = []

    def image(self, *args):
        self.images.append(args)


@pytest.mark.parametrize("gl_fails", ["at the start", "later"])
def test_without_gl_a_run_warns_once_and_goes_on_without_videos(gl_fails, tmp_path, monkeypatch):
    if gl_fails == "at the start":
        monkeypatch.setattr(mujoco, "Renderer", no_gl_context)
    output, logger = io.StringIO(), TensorBoardImages()
    constant = (lambda params, obs: (), lambda params, obs, memory, key: (params * jnp.ones((1, 1)), memory))
    videos = video.TrainingVideos(envs_mjx.make("cartpole-balance"), constant, jnp.float32(0.0),
                                  jax.random.PRNGKey(0), 5, tmp_path, Console(file=output, width=300))
    monkeypatch.setattr(mujoco, "Renderer", no_gl_context)
    assert [videos.record(jnp.float32(0.0), jax.random.PRNGKey(step), step, logger) for step in (1, 2)] == [
        None, None]
    assert output.getvalue().count("no videos in this run") == 1
    assert not list(tmp_path.iterdir()) and not logger.images


@pytest.mark.parametrize("environ, libraries, backend", [
    ({}, {"EGL", "OSMesa"}, "egl"),
    ({}, {"OSMesa"}, "osmesa"),
    ({}, set(), None),  # nothing can render: FrameRenderer's error says what to install
    ({"PYOPENGL_PLATFORM": "osmesa"}, {"EGL", "OSMesa"}, "osmesa"),
    ({"MUJOCO_GL": "glfw"}, {"EGL"}, None),  # the user's choice stands
    ({"DISPLAY": ":0"}, {"EGL"}, None),  # a display: MuJoCo's own default works
])
def test_a_headless_linux_machine_gets_an_offscreen_backend(environ, libraries, backend):
    def find_library(name):
        return f"lib{name}.so" if name in libraries else None

    assert _gl.headless_backend(environ, "linux", find_library) == backend
    assert _gl.headless_backend(environ, "darwin", find_library) is None


def test_the_rollout_runs_a_policy_with_its_memory_as_evaluation_does():
    """A bc policy with an observation history and action chunks: the video's episode is `act`'s, run
    with its memory on a batch of one env, not the memoryless `policy`'s."""
    env = envs_mjx.make("cartpole-balance", CartpoleConfig(episode_length=20))
    rng = np.random.default_rng(0)
    demos = make_demo_set(rng.normal(size=(60, 5)), rng.uniform(-1, 1, (60, 1)), [30, 30], val_fraction=0)
    cfg = bc.Config(data="unused.hdf5", obs_keys=("state",), hidden_layer_sizes=(16,), obs_history=3,
                    action_horizon=4, ensemble_decay=0.5)
    params = bc.policy_params(bc.init(jax.random.PRNGKey(0), env, cfg, demos))
    steps, key = 20, jax.random.PRNGKey(1)
    _, qpos, _ = video.make_policy_rollout(env, policy_with_memory(bc), steps)(params, key)

    reset, env_step = jax.jit(env.reset), jax.jit(env.step)

    def episode(act):
        """qpos after each step of act(obs [1, 5], memory) -> (action [1, 1], memory) from `key`'s start."""
        state = reset(key)
        memory = bc.initial_memory(params, state.obs[None])
        poses = []
        for _ in range(steps):
            action, memory = act(state.obs[None], memory)
            state = env_step(state, action[0])
            poses.append(state.data.qpos)
        return np.stack(poses)

    with_memory = episode(jax.jit(lambda obs, memory: bc.act(params, obs, memory)))
    memoryless = episode(jax.jit(lambda obs, memory: (bc.policy(params, obs), memory)))
    # Equal up to float32 rounding of differently compiled programs (2e-9 seen); the memoryless policy's
    # poses part by 3.6e-3 within the 20 steps.
    np.testing.assert_allclose(qpos, with_memory, atol=1e-6)
    assert np.abs(qpos - memoryless).max() > 1e-4


def test_training_records_videos_of_the_policy(tiny_config, tmp_path):
    cfg = with_train(tiny_config, video_every=512, video_steps=10, tensorboard=True)
    result = train(cfg, tmp_path)
    assert result.steps == 1024
    videos = sorted((tmp_path / "videos").iterdir())
    assert [p.name for p in videos] == ["1024.mp4", "512.mp4"]
    fps = round(1 / envs_mjx.make("cartpole-balance").dt)
    assert all(mp4_frames(p) == (10, video.DEFAULT_WIDTH, video.DEFAULT_HEIGHT, fps) for p in videos)
    images = tensorboard_images(tmp_path)
    assert [(tag, step) for tag, step, _ in images] == [(video.TENSORBOARD_TAG, 512),
                                                          (video.TENSORBOARD_TAG, 1024)]
    assert Image.open(io.BytesIO(images[0][2])).n_frames == 5  # 100 fps: every other frame
