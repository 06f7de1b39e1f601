"""PNG plots for report.md, each answering one question: how accuracy grows with the step budget, where a
variant's answers part from the reference's (and how far its state drifts), how close its carried state stays to
the float32 one (cosine), where samples halt, and per compressed variant where its halting step moved from the
float32 export's (transition matrix) and how exact the answers are at each halting step.

Latency is not plotted here: validation records every step of every sample, which is not how a device runs;
`edgekit bench` measures per-puzzle latency on the device itself.
"""

from __future__ import annotations

from pathlib import Path

# every plot write_plots can make, in report order
PLOTS = ("accuracy_vs_steps.png", "error_vs_step.png", "trajectory_cosine.png", "halting_histogram.png")
HALTING_PREFIX = "halting_transition_"  # + the compressed variant's name: one figure each, after PLOTS
STYLES = [("o", "-"), ("s", "--"), ("^", ":"), ("D", "-."), ("v", "-"), ("x", "--"), ("P", ":"), ("*", "-.")]


def write_plots(results: dict, folder: Path) -> list[str]:
    """Write the plots the results support; return their file names (relative to `folder`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    made: list[str] = []
    variants = results["variants"]

    def save(fig, name: str) -> None:
        fig.tight_layout()
        fig.savefig(folder / name, dpi=100)
        plt.close(fig)
        made.append(name)

    def steps_axis(ax) -> None:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))

    per_step = [v for v in variants if v.get("metrics", {}).get("exact_per_step")]
    if per_step:
        fig, ax = plt.subplots(figsize=(7, 4))
        seen: dict[tuple, str] = {}
        for i, v in enumerate(per_step):
            ys = v["metrics"]["exact_per_step"]
            marker, line = STYLES[i % len(STYLES)]
            same = seen.get(tuple(ys))
            label = v["name"] + (f" (same as {same})" if same else "")
            seen.setdefault(tuple(ys), v["name"])
            # later lines drawn smaller and hollow, so a line hidden under an identical one still shows
            ax.plot(range(1, len(ys) + 1), ys, marker=marker, linestyle=line, markersize=7 - min(i, 4),
                    markerfacecolor="none" if i else None, label=label)  # fmt: skip
        ax.set(xlabel="step budget (steps run)", ylabel="exact accuracy", title="Exact accuracy vs step budget")
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        steps_axis(ax)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        save(fig, "accuracy_vs_steps.png")
    compared = [v for v in variants if "vs_reference" in v]
    drift = [v for v in compared if v.get("state_drift_vs_onnx_float32")]
    if compared:
        fig, axes = plt.subplots(1, 2 if drift else 1, figsize=(10 if drift else 6.5, 4), squeeze=False)
        ax = axes[0][0]
        for i, v in enumerate(compared):
            ys = [1 - y for y in v["vs_reference"]["argmax_agreement_per_step"]]
            marker, line = STYLES[i % len(STYLES)]
            ax.plot(range(1, len(ys) + 1), ys, marker=marker, linestyle=line, label=v["name"])
        ax.set(xlabel="step", ylabel="positions answered differently", title="Disagreement with the reference")
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=2))
        ax.set_ylim(bottom=0)
        steps_axis(ax)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        if not drift:
            ax.annotate("no compressed variant: no state drift to show", (0.02, 0.95), xycoords="axes fraction",
                        fontsize=8, va="top", color="grey")  # fmt: skip
        else:
            ax = axes[0][1]
            for i, v in enumerate(drift):
                d = v["state_drift_vs_onnx_float32"]
                marker, line = STYLES[i % len(STYLES)]
                ax.plot(range(1, len(d) + 1), d, marker=marker, linestyle=line, label=v["name"])
            ax.set(xlabel="step", ylabel="‖Δ state‖ / ‖state‖", title="State drift vs the float32 export")
            ax.set_ylim(bottom=0)
            steps_axis(ax)
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
        save(fig, "error_vs_step.png")
    cosine = [v for v in variants if v.get("trajectory_cosine_vs_onnx_float32")]
    if cosine:
        fig, ax = plt.subplots(figsize=(7, 4))
        for i, v in enumerate(cosine):
            c = v["trajectory_cosine_vs_onnx_float32"]
            marker, line = STYLES[i % len(STYLES)]
            xs = range(1, len(c["mean"]) + 1)
            (drawn,) = ax.plot(xs, c["mean"], marker=marker, linestyle=line, label=f"{v['name']} (mean)")
            ax.plot(xs, c["p05"], linestyle=":", color=drawn.get_color(), label=f"{v['name']} (5th percentile)")
        ax.set(xlabel="step", ylabel="cosine(carried state, float32 state)",
               title="Trajectory cosine vs the float32 export (label-free)")  # fmt: skip
        steps_axis(ax)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        save(fig, "trajectory_cosine.png")
    halting = [v for v in variants if v.get("halting_histogram")]
    if halting:
        fig, ax = plt.subplots(figsize=(7, 4))
        width = 0.8 / len(halting)
        for i, v in enumerate(halting):
            h = v["halting_histogram"]
            ax.bar([s + (i - (len(halting) - 1) / 2) * width for s in range(1, len(h) + 1)], h, width=width,
                   label=v["name"])  # fmt: skip
        ax.set(xlabel="halting step (the last bin includes samples that never halt)", ylabel="samples",
               title="Where samples halt")  # fmt: skip
        steps_axis(ax)
        ax.legend(fontsize=7)
        save(fig, "halting_histogram.png")
    parent = next((v for v in variants if v.get("name") == "float32" and v.get("halting_histogram")), None)
    for v in variants:
        counts = (v.get("vs_onnx_float32") or {}).get("halting_step_transition")
        if counts:
            fig = _halting_figure(plt, v, parent, counts)
            save(fig, halting_plot(v["name"]))
    return made


def halting_plot(variant: str) -> str:
    """The file name of a compressed variant's halting figure (its `--variant` name is a plain identifier)."""
    return f"{HALTING_PREFIX}{variant}.png"


def existing_plots(folder: Path) -> list[str]:
    """The plots a validation left in `folder`, in report order (what `edgekit tune` lists when it rewrites
    report.md)."""
    fixed = [p for p in PLOTS if (folder / p).is_file()]
    return fixed + sorted(p.name for p in folder.glob(f"{HALTING_PREFIX}*.png") if p.is_file())


def _halting_figure(plt, v: dict, parent: dict | None, counts: list[list[int]]):
    """Left: examples by float32 halting step (rows) x this variant's halting step (columns), with counts; right:
    exact accuracy at each halting step for both, from results.json's per-step counts (no extra rollout)."""
    import numpy as np
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    m = np.asarray(counts)
    used = np.flatnonzero(m.sum(0) + m.sum(1))
    lo, hi = (int(used[0]), int(used[-1]) + 1) if len(used) else (0, len(m))
    sub = m[lo:hi, lo:hi]
    n, same = int(m.sum()), int(np.trace(m))
    fig, (heat, acc) = plt.subplots(1, 2, figsize=(11, 4.6))
    heat.imshow(np.where(sub > 0, sub, np.nan), cmap="Blues", origin="upper", aspect="auto")
    ticks = range(hi - lo)
    labels = [str(s + 1) for s in range(lo, hi)]
    heat.set_xticks(ticks, labels, fontsize=7)
    heat.set_yticks(ticks, labels, fontsize=7)
    if hi - lo <= 24:  # a count in every non-empty cell while it stays legible
        big = sub.max() if sub.size else 0
        for (i, j), c in np.ndenumerate(sub):
            if c:
                ink = "white" if c > 0.6 * big else "black"
                heat.text(j, i, str(c), ha="center", va="center", fontsize=7, color=ink,
                          fontweight="bold" if i == j else None)  # fmt: skip
    heat.plot([-0.5, hi - lo - 0.5], [-0.5, hi - lo - 0.5], color="grey", lw=0.6, ls=":")
    heat.set(xlabel=f"{v['name']} halting step", ylabel="float32 halting step",
             title=f"Halting step, float32 -> {v['name']}: same on {same} of {n} ({same / max(n, 1):.1%})")  # fmt: skip
    heat.title.set_fontsize(9)
    sides = [(v["name"], v)] + ([("float32", parent)] if parent is not None else [])
    width = 0.8 / len(sides)
    for i, (label, e) in enumerate(sides):
        hist, ok = e.get("halting_histogram") or [], e.get("halting_exact") or []
        steps = [s for s in range(len(hist)) if hist[s] and s < len(ok)]
        xs = [s + 1 + (i - (len(sides) - 1) / 2) * width for s in steps]
        bars = acc.bar(xs, [ok[s] / hist[s] for s in steps], width=width, label=label, alpha=0.85 if i == 0 else 0.45)
        acc.bar_label(bars, labels=[f"n={hist[s]}" for s in steps], fontsize=6, rotation=90, padding=2)
    acc.set(xlabel="halting step", ylabel="exact accuracy at that step", ylim=(0, 1.25),
            title="Exact accuracy by halting step (n: examples halting there)")  # fmt: skip
    acc.title.set_fontsize(9)
    acc.xaxis.set_major_locator(MaxNLocator(integer=True))
    acc.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])  # the headroom above 100 % holds the n= labels
    acc.yaxis.set_major_formatter(PercentFormatter(1.0))
    acc.legend(fontsize=7, loc="upper left")
    acc.grid(alpha=0.3, axis="y")
    return fig
