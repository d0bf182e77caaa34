"""The plots of a `jaxrl bench` run, from its step records (benchmarks.suite)."""

from __future__ import annotations

from pathlib import Path


def env_rates(records: dict) -> dict[str, list[tuple[int, float]]]:
    """env -> [(batch, training env steps/s)] of each env_throughput step that ran."""
    rates = {}
    for name, record in records.items():
        if name.startswith("env_throughput:") and "error" not in record:
            rates[record["env"]] = [
                (row["batch"], row["training"]["steps_per_second"])
                for row in record["results"]
                if "training" in row
            ]
    return rates


def learner_rates(records: dict) -> dict[str, float]:
    """learner -> its training steps/s (the largest batch each throughput step timed)."""
    rates = {}
    ppo, sac, dreamer = (
        records.get(name, {"error": ""})
        for name in ("ppo_throughput", "sac_throughput", "dreamer_throughput")
    )
    if "error" not in ppo:
        rates["ppo (env steps/s)"] = ppo["results"][-1]["ours"]["steps_per_s"]
        rates["brax ppo (env steps/s)"] = ppo["results"][-1]["brax"]["steps_per_s"]
    if "error" not in sac:
        rows = sac["throughput"]["results"]
        rates["sac (gradient steps/s)"] = rows[-1]["ours"]["grad_steps_per_s"]
        rates["brax sac (gradient steps/s)"] = rows[-1]["brax"]["grad_steps_per_s"]
    if "error" not in dreamer:
        for setting, row in dreamer["settings"].items():
            rates[f"dreamer {setting} (updates/s)"] = row["updates_per_s"]
    demos = records.get("demo_learning", {"error": ""})
    for row in demos.get("results", []) if "error" not in demos else []:
        if "grad_steps_per_second" in row:  # the first seed's of each learner
            rates.setdefault(f"{row['method']} (gradient steps/s)", row["grad_steps_per_second"])
    return rates


def compile_seconds(records: dict) -> dict[str, dict[str, float]]:
    """ENV:ALGO -> {cold, warm, resume}: `jaxrl train`'s compile seconds to the first call."""
    record = records.get("compile_time", {"error": ""})
    if "error" in record:
        return {}
    return {
        pair: {case: row[case]["compile_seconds"] for case in ("cold", "warm", "resume")}
        for pair, row in record["pairs"].items()
    }


def plot_all(records: dict, stem: Path) -> list[Path]:
    """Write <stem>_<plot>.png for each plot the records have data for; their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []

    def save(fig, suffix: str) -> None:
        path = stem.parent / f"{stem.name}_{suffix}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    if rates := env_rates(records):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for env, points in sorted(rates.items()):
            ax.plot(*zip(*points, strict=True), marker="o", label=env)
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="envs in the batch",
            ylabel="env steps/s (auto-reset included)",
            title="MJX env throughput",
        )
        ax.legend(fontsize=7)
        save(fig, "env_throughput")
    if rates := learner_rates(records):
        fig, ax = plt.subplots(figsize=(7, 0.5 * len(rates) + 1.5))
        ax.barh(list(rates), list(rates.values()), color="C0")
        ax.set(xscale="log", xlabel="steps per second (see each label's unit)", title="training throughput")
        ax.tick_params(axis="y", labelsize=8)
        save(fig, "training_throughput")
    if seconds := compile_seconds(records):
        fig, ax = plt.subplots(figsize=(max(5, 1.4 * len(seconds)), 4))
        for c, case in enumerate(("cold", "warm", "resume")):
            ax.bar(
                [i + (c - 1) * 0.27 for i in range(len(seconds))],
                [row[case] for row in seconds.values()],
                0.27,
                label=case,
            )
        ax.set_xticks(range(len(seconds)), [pair.replace(":", "\n") for pair in seconds], fontsize=8)
        ax.set(ylabel="seconds", title="jaxrl train: compile time to the first call")
        ax.legend()
        save(fig, "compile_time")
    return written
