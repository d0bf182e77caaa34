"""Learning curves of several benchmarks.learning_curve records on shared axes: each one's evaluations
(return, its task measure, episode length) against env steps, one line per record.

    python -m benchmarks.curves_beside benchmarks/results/go1_joystick_learning_curve_cpu.json \\
        benchmarks/results/go1_joystick_rough_learning_curve_cpu.json \\
        --out benchmarks/results/go1_joystick_flat_and_rough_cpu.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.learning_curve import task_measure


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("records", nargs="+", type=Path, metavar="RECORD",
                        help="learning_curve JSON files (their env names label the lines)")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    return parser.parse_args(argv)


def panels(records: list[dict]) -> list[tuple[str, str]]:
    """(key of an evaluation point, axis label) for each panel: the return, the task measure the records
    have, the episode length."""
    shown = [("eval_return", "eval episode return")]
    for record in records:
        key, label, _ = task_measure(record["env"])
        if key != "none" and f"eval_{key}" not in dict(shown):
            shown.append((f"eval_{key}", f"eval {label}"))
    return shown + [("eval_episode_length", "eval episode length (steps)")]


def plot(records: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = panels(records)
    fig, axes = plt.subplots(1, len(shown), figsize=(5 * len(shown), 3.8), squeeze=False)
    for ax, (key, label) in zip(axes[0], shown, strict=True):
        for record in records:
            points = [(p["env_steps"], p[key]) for p in record["curve"] if p.get(key) is not None]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, "o-", markersize=3,
                        label=f"{record['env']} ({record['machine'].get('date_utc', '?')[:10]})")
        ax.set_xlabel("env steps")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    # Records written before learning_curve named the learner are PPO's.
    fig.suptitle(" vs ".join(f"{r.get('algo', 'ppo')} on {r['env']} ({r['preset']} preset)" for r in records))
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv=None) -> None:
    args = parse_args(argv)
    plot([json.loads(path.read_text()) for path in args.records], args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
