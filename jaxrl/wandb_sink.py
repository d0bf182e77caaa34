"""Weights & Biases for a run (`train.wandb=true`, the `wandb` extra): the records metrics.jsonl holds,
the run's config, its policy videos and, at the end, learning_curve.png.

Online where W&B knows the user (WANDB_API_KEY, or a `wandb login` in ~/.netrc), offline otherwise, so
a run on a machine or cluster node without network access keeps everything in
`RUN_DIR/wandb/` for `wandb sync` later; WANDB_MODE, when set, decides. The W&B run's id is kept in
the run directory, so `--resume` continues the same W&B run. Records are plotted against the run's own
progress count (env_steps or grad_steps), not W&B's step counter, which only grows: a resumed run logs
the steps after its checkpoint again, and W&B takes them.
"""

from __future__ import annotations

import io
import netrc
import os
import secrets
from pathlib import Path
from urllib.parse import urlparse

ID_FILE = "wandb_id"  # in the run directory: the W&B run this run logs to
DEFAULT_HOST = "https://api.wandb.ai"


def has_credentials(environ=os.environ) -> bool:
    """Whether W&B knows this user: an API key in the environment or in ~/.netrc for its host."""
    if environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(environ.get("WANDB_BASE_URL", DEFAULT_HOST)).hostname
    try:
        return netrc.netrc(environ.get("NETRC")).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def mode(environ=os.environ) -> str:
    return environ.get("WANDB_MODE") or ("online" if has_credentials(environ) else "offline")


class WandbSink:
    """A W&B run mirroring a jaxrl run's log (see the module's doc)."""

    def __init__(self, run_dir: Path, config: dict, step_key: str, project: str, console):
        import wandb  # the wandb extra; jaxrl.train checks it is installed before it compiles

        self._wandb, self.step_key = wandb, step_key
        id_file = Path(run_dir) / ID_FILE
        run_id = id_file.read_text().strip() if id_file.exists() else secrets.token_hex(4)
        id_file.write_text(run_id)
        chosen = mode()
        self.run = wandb.init(project=project, id=run_id, resume="allow", name=Path(run_dir).name,
                              dir=str(run_dir), config=config, mode=chosen,
                              settings=wandb.Settings(silent=True))
        self.run.define_metric(step_key)
        self.run.define_metric("*", step_metric=step_key)
        where = f"`wandb sync {run_dir}/wandb/offline-run-*` uploads it" if chosen == "offline" else (
            self.run.url or "")
        console.print(f"W&B run {run_id} ({chosen}): {where}")

    def scalars(self, record: dict, step: int, step_key: str) -> None:
        self.run.log({key: value for key, value in record.items() if key != "call"})

    def image(self, tag: str, encoded: bytes, height: int, width: int, step: int) -> None:
        """A PNG, or an animated GIF (the policy videos), which W&B plays."""
        if encoded[:3] == b"GIF":
            media = self._wandb.Video(io.BytesIO(encoded), format="gif")
        else:
            from PIL import Image

            media = self._wandb.Image(Image.open(io.BytesIO(encoded)))
        self.run.log({tag: media, self.step_key: step})

    def close(self, curve_png: Path) -> None:
        if curve_png.exists():
            self.run.log({"learning_curve": self._wandb.Image(str(curve_png))})
        self.run.finish()
