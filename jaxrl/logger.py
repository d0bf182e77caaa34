"""Run logging: metrics.jsonl, a progress display, learning_curve.png, and sinks that mirror the
records elsewhere: TensorBoard events (`TensorBoardSink`), Weights & Biases (`jaxrl.wandb_sink`).

One record per device call, a flat dict of floats keyed like "train/episode_return",
"eval/episode_return", "loss/value", plus "call" and the progress count, "env_steps"
(or "grad_steps" for learners that train on demonstrations: the loop's `step_key`). Keys under
"time/" are wall-clock figures: everything else is reproducible from the seed.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

PLAIN_LINE_SECONDS = 15.0  # without a terminal, print a progress line at most this often


def read_metrics(path: Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# What the progress line shows of a record, the first key it has: a policy's success or return, or the
# validation loss of a learner without a policy (a world model).
SCORES = (("eval/success", lambda value: f"success {value:.0%}"),
          ("eval/episode_return", lambda value: f"return {value:.1f}"),
          ("train/episode_return", lambda value: f"return {value:.1f}"),
          ("val/loss", lambda value: f"val loss {value:.3g}"))
EVALUATED = {"eval/episode_return", "val/loss"}  # an evaluation's record: its line is printed at once


class TensorBoardSink:
    """TensorBoard events in the run directory."""

    def __init__(self, run_dir: Path, purge_step: int | None):
        """`purge_step`: on resume, the first step to write again (events a crashed process wrote from
        there on are dropped); None for a fresh run."""
        from tensorboardX import SummaryWriter  # imported lazily: it is slow to import

        self._writer = SummaryWriter(str(run_dir), purge_step=purge_step)

    def scalars(self, record: dict, step: int, step_key: str) -> None:
        for key, value in record.items():
            if key not in (step_key, "call"):
                self._writer.add_scalar(key, value, step)

    def image(self, tag: str, encoded: bytes, height: int, width: int, step: int) -> None:
        """A PNG, or an animated GIF, which TensorBoard plays."""
        from tensorboardX.proto.summary_pb2 import Summary

        image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=encoded)
        self._writer.file_writer.add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)

    def close(self, curve_png: Path) -> None:
        self._writer.close()


class RunLogger:
    def __init__(self, run_dir: Path, total_steps: int, start_steps: int = 0,
                 resume_call: int | None = None, sinks: Sequence = (), console: Console | None = None,
                 step_key: str = "env_steps"):
        """`resume_call`: the device call a resumed run restarts after (None: a fresh run). `sinks`: where
        records, images and the final curve also go (`TensorBoardSink`, `jaxrl.wandb_sink.WandbSink`)."""
        self.run_dir = Path(run_dir)
        self.console = console or Console()
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.step_key = step_key
        # On resume, records past the restored checkpoint were computed by the
        # crashed process and will be computed again: drop them.
        kept = [] if resume_call is None else [
            r for r in read_metrics(self.metrics_path) if r["call"] <= resume_call]
        self.metrics_path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        self._file = self.metrics_path.open("a")
        self.sinks = list(sinks)
        self._start_steps = start_steps
        self._start_time = time.monotonic()
        self._last_plain = -math.inf
        self._last_score = "return n/a"
        self._progress = None
        if self.console.is_terminal:
            self._progress = Progress(
                TextColumn("[bold]training"), BarColumn(),
                TextColumn("{task.completed:,.0f}/{task.total:,.0f} steps"),
                TextColumn("{task.fields[sps]} steps/s"),
                TextColumn("{task.fields[score]}"),
                TextColumn("ETA"), TimeRemainingColumn(),
                console=self.console, transient=False)
            self._task = self._progress.add_task("train", total=total_steps, completed=start_steps,
                                                 sps="-", score=self._last_score)
            self._progress.start()
        self.total_steps = total_steps

    def log(self, record: dict) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        steps = record[self.step_key]
        for sink in self.sinks:
            sink.scalars(record, steps, self.step_key)
        for key, shown in SCORES:
            if key in record:
                self._last_score = shown(record[key])
                break
        sps = record.get("time/sps", 0.0)
        if self._progress is not None:
            self._progress.update(self._task, completed=steps, sps=f"{sps:,.0f}", score=self._last_score)
        elif time.monotonic() - self._last_plain > PLAIN_LINE_SECONDS or EVALUATED & record.keys():
            self._last_plain = time.monotonic()
            done = steps - self._start_steps
            eta = f"{(self.total_steps - steps) / sps:,.0f} s" if sps > 0 and done > 0 else "-"
            self.console.print(f"{steps:>12,} / {self.total_steps:,} steps  {sps:>9,.0f} steps/s  "
                               f"{self._last_score}  ETA {eta}")

    def image(self, tag: str, encoded: bytes, height: int, width: int, env_steps: int) -> None:
        """An encoded image (a PNG, or an animated GIF) for the sinks."""
        for sink in self.sinks:
            sink.image(tag, encoded, height, width, env_steps)

    def message(self, text: str) -> None:
        """A line above the progress bar (or plain)."""
        (self._progress.console if self._progress else self.console).print(text)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
        self._file.close()
        curve_png = self.run_dir / "learning_curve.png"
        plot_learning_curve(self.metrics_path, curve_png, self.step_key)
        for sink in self.sinks:
            sink.close(curve_png)


def plot_learning_curve(metrics_path: Path, png_path: Path, step_key: str = "env_steps") -> None:
    """Episode return (training and evaluation) against the run's progress count; for a population,
    each sweep point's mean over its seeds with its 95% interval as a band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_path)
    fig, ax = plt.subplots(figsize=(7, 4))
    for base, label, style in (("train/episode_return", "training episodes", "-"),
                               ("eval/episode_return", "evaluation (deterministic)", "o-")):
        for key, point in _curves(records, base):
            rows = [r for r in records if key in r]
            if not rows:
                continue
            xs = [r[step_key] for r in rows]
            line, = ax.plot(xs, [r[key] for r in rows], style, markersize=4,
                            label=f"{label}, {point}" if point else label)
            banded = [r for r in rows if f"{key}/ci95_low" in r]
            if banded:
                ax.fill_between([r[step_key] for r in banded], [r[f"{key}/ci95_low"] for r in banded],
                                [r[f"{key}/ci95_high"] for r in banded], color=line.get_color(), alpha=0.2)
    ax.set_xlabel(step_key.replace("_", " ").replace("grad", "gradient"))
    ax.set_ylabel("episode return" + (" (band: 95% interval over seeds)" if any(
        k.endswith("/ci95_low") for r in records for k in r) else ""))
    ax.set_title(metrics_path.parent.name)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


def _curves(records: list[dict], base: str) -> list[tuple[str, str]]:
    """(key, sweep point) of each curve of `base`: the key itself, or in a sweep one mean per point
    ("eval/episode_return/learning_rate=0.001"), leaving out members' keys (".../seed_3") and bands."""
    keys = dict.fromkeys(k for r in records for k in r if k == base or k.startswith(f"{base}/"))
    curves = []
    for key in keys:
        last = key.rsplit("/", 1)[-1]
        if key == base or not (last.startswith("seed_") or last in ("ci95_low", "ci95_high")):
            curves.append((key, key[len(base) + 1:]))
    return curves
