"""MuJoCo's offscreen OpenGL backend, chosen before anything imports MuJoCo.

`import mujoco` reads MUJOCO_GL once and fixes how every later render makes
its GL context; unset on Linux, that is GLFW, which needs a display. On a
headless machine (a server, CI, a container) every offscreen render would then
fail, so when the user has chosen no backend and there is no display, we
choose one: EGL (GPU drivers, or Mesa on the CPU), else OSMesa (Mesa's software
renderer).

envs_mjx's package import runs this: envs_mjx is where MuJoCo enters the
project, so that is the earliest point every path shares (the CLI, library use,
the tests), and it is the least surprising one: it only replaces a default
that could not render. A MUJOCO_GL the user set always wins.
"""

from __future__ import annotations

import ctypes.util
import os
import sys
from collections.abc import Callable, Mapping

# (MUJOCO_GL value, the shared library it loads), in order of preference.
HEADLESS_BACKENDS = (("egl", "EGL"), ("osmesa", "OSMesa"))


def headless_backend(environ: Mapping[str, str], platform: str = sys.platform,
                     find_library: Callable[[str], str | None] = ctypes.util.find_library) -> str | None:
    """The MUJOCO_GL value to set, or None to leave MuJoCo's own choice."""
    has_display = environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY")
    if environ.get("MUJOCO_GL") or platform != "linux" or has_display:
        return None
    # PyOpenGL reads PYOPENGL_PLATFORM; MuJoCo refuses a backend that disagrees with it.
    if environ.get("PYOPENGL_PLATFORM") in ("egl", "osmesa"):
        return environ["PYOPENGL_PLATFORM"]
    return next((backend for backend, library in HEADLESS_BACKENDS if find_library(library)), None)


def can_open_windows(environ: Mapping[str, str] = os.environ, platform: str = sys.platform) -> bool:
    """Whether MuJoCo's interactive viewer can open here: it needs GLFW (MUJOCO_GL unset or glfw) and,
    on Linux, a display. Without them, GLFW's failure ends the process instead of raising."""
    if environ.get("MUJOCO_GL", "glfw") != "glfw":
        return False
    return platform != "linux" or bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))


def choose_headless_backend() -> None:
    """Set MUJOCO_GL per `headless_backend`, unless MuJoCo is already imported (then it is too late)."""
    backend = headless_backend(os.environ)
    if backend is not None and "mujoco" not in sys.modules:
        os.environ["MUJOCO_GL"] = backend


choose_headless_backend()  # on import: envs_mjx/__init__ imports this module before anything imports MuJoCo
