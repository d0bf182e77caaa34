"""Offscreen frames of MuJoCo states: what videos, `jaxrl play --video` and the Gymnasium env's
`rgb_array` mode render with.

Rendering needs an offscreen OpenGL backend; on a headless Linux machine that
is EGL or OSMesa, which `import mujoco` fixes once (MUJOCO_GL). Importing
envs_mjx picks one when the user has not (envs_mjx/_gl.py), which is why this
module lives in envs_mjx and is imported after it.
"""

from __future__ import annotations

import copy
import os

import mujoco
import numpy as np

DEFAULT_WIDTH, DEFAULT_HEIGHT = 320, 240
# MuJoCo's default 4096 x 4096 shadow map takes most of a software-rendered frame's time
# (0.10 s of 0.13 s at 320 x 240 on a CPU); 1024 renders 3x faster and still casts clear shadows.
SHADOW_MAP_SIZE = 1024


class OffscreenGLError(RuntimeError):
    """No OpenGL context for offscreen rendering; the message says what to install and set."""


def _gl_error(error: Exception) -> OffscreenGLError:
    backend = os.environ.get("MUJOCO_GL") or "unset (MuJoCo then uses GLFW, which needs a display)"
    return OffscreenGLError(
        f"offscreen rendering failed with MUJOCO_GL={backend}: {error}. Install an offscreen OpenGL "
        f"library, EGL (apt-get install libegl1) or OSMesa (apt-get install libosmesa6), and set "
        f"MUJOCO_GL=egl or MUJOCO_GL=osmesa (PYOPENGL_PLATFORM, if set, to the same) before Python starts")


class FrameRenderer:
    """RGB frames of one MjModel's states from one camera, rendered offscreen.

    A context manager: it holds a GL context, which `close` (or leaving the
    `with` block) releases.
    """

    def __init__(self, mj_model: mujoco.MjModel, width: int = DEFAULT_WIDTH, height: int = DEFAULT_HEIGHT,
                 camera: str | None = None):
        """`camera`: the name of one of the model's cameras; None: the free camera on the whole model."""
        model = copy.copy(mj_model)  # the render settings below stay on this copy
        self._camera = -1 if camera is None else model.camera(camera).id  # an unknown name: KeyError
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, height)
        model.vis.quality.shadowsize = min(model.vis.quality.shadowsize, SHADOW_MAP_SIZE)
        try:
            self._renderer = mujoco.Renderer(model, height, width)
        except Exception as error:  # each backend fails its own way: ImportError, FatalError, GLError...
            raise _gl_error(error) from error
        self._model, self._data = model, mujoco.MjData(model)

    def render(self, data: mujoco.MjData) -> np.ndarray:
        """The frame of `data` (a state of this model, forward-computed): uint8 [height, width, 3]."""
        self._renderer.update_scene(data, camera=self._camera)
        return self._renderer.render()

    def render_qpos(self, qpos: np.ndarray) -> np.ndarray:
        """The frame of the model posed at `qpos` (velocities do not show)."""
        self._data.qpos[:] = qpos
        mujoco.mj_forward(self._model, self._data)
        return self.render(self._data)

    def close(self) -> None:
        self._renderer.close()

    def __enter__(self) -> FrameRenderer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
