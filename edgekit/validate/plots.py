"""PNG plots for report.md: what changed step by step, where samples halt, accuracy per step budget, time."""

from __future__ import annotations

from pathlib import Path


def write_plots(results: dict, folder: Path) -> list[str]:
    """Write the plots the results support; return their file names (relative to `folder`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made: list[str] = []
    variants = results["variants"]

    def save(fig, name: str) -> None:
        fig.tight_layout()
        fig.savefig(folder / name, dpi=90)
        plt.close(fig)
        made.append(name)

    per_step = [v for v in variants if v.get("metrics", {}).get("exact_per_step")]
    if per_step:
        fig, ax = plt.subplots(figsize=(6, 3.6))
        for v in per_step:
            ys = v["metrics"]["exact_per_step"]
            ax.plot(range(1, len(ys) + 1), ys, marker=".", label=v["name"])
        ax.set(xlabel="step budget", ylabel="exact accuracy", title="accuracy vs step budget")
        ax.legend(fontsize=7)
        save(fig, "accuracy_vs_steps.png")
    drift = [v for v in variants if "vs_reference" in v]
    if drift:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
        for v in drift:
            ys = v["vs_reference"]["argmax_agreement_per_step"]
            axes[0].plot(range(1, len(ys) + 1), [1 - y for y in ys], marker=".", label=v["name"])
            if v.get("state_drift_vs_onnx_float32"):
                d = v["state_drift_vs_onnx_float32"]
                axes[1].plot(range(1, len(d) + 1), d, marker=".", label=v["name"])
        axes[0].set(
            xlabel="step",
            ylabel="argmax disagreement",
            title="vs reference, per step",
            yscale="symlog",
        )
        axes[0].set_yscale("symlog", linthresh=1e-4)
        axes[1].set(xlabel="step", ylabel="‖Δstate‖ / ‖state‖", title="state drift vs ONNX float32")
        for ax in axes:
            if ax.lines:
                ax.legend(fontsize=7)
        save(fig, "error_vs_step.png")
    halting = [v for v in variants if v.get("halting_histogram")]
    if halting:
        fig, ax = plt.subplots(figsize=(6, 3.6))
        width = 0.8 / len(halting)
        for i, v in enumerate(halting):
            h = v["halting_histogram"]
            ax.bar([s + i * width for s in range(1, len(h) + 1)], h, width=width, label=v["name"])
        ax.set(xlabel="halting step", ylabel="samples", title="where samples halt")
        ax.legend(fontsize=7)
        save(fig, "halting_histogram.png")
    timed = [v for v in variants if v.get("seconds")]
    if timed:
        fig, ax = plt.subplots(figsize=(6, 0.5 + 0.4 * len(timed)))
        ax.barh([v["name"] for v in timed], [v["seconds"] for v in timed])
        ax.set(xlabel="seconds for the validation set (all steps recorded)", title="validation time per variant")
        ax.tick_params(axis="y", labelsize=7)
        save(fig, "latency.png")
    return made
