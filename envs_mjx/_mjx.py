"""The one place that imports MuJoCo's MJX.

MJX prints "Failed to import warp" to stdout on import when the optional GPU
backend (warp-lang) is absent. That line is noise for every user without the
warp extra, so the import runs with stdout captured and only those lines are
dropped; anything else MJX prints still reaches the terminal.
"""

import contextlib
import io
import sys

_captured = io.StringIO()
with contextlib.redirect_stdout(_captured):
    from mujoco import mjx  # noqa: E402

for _line in _captured.getvalue().splitlines():
    if not _line.startswith(("Failed to import warp", "Failed to import mujoco_warp")):
        print(_line, file=sys.stdout)

__all__ = ["mjx"]
