"""tune_front.png: every configuration's accuracy against its per-puzzle latency, the front, the budget and the
chosen point, so a reader sees what a millisecond buys."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ..artefact import replace_file


def plot_front(path: Path, configs, front, chosen, result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter, ScalarFormatter

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    variants = sorted({c.variant for c in configs})
    markers = ["o", "s", "^", "D", "v", "P", "X", "*"]
    for i, v in enumerate(variants):
        pts = [c for c in configs if c.variant == v]
        ax.scatter([c.latency_ms for c in pts], [c.exact for c in pts], s=12, alpha=0.35,
                   marker=markers[i % len(markers)], label=f"{v} (threshold x step cap)")  # fmt: skip
    ax.step([c.latency_ms for c in front], [c.exact for c in front], where="post", color="black", lw=1.2,
            label="front: nothing both faster and more accurate")  # fmt: skip
    ax.axvline(result["budget_ms"], color="tab:red", ls="--", lw=1, label=f"budget {result['budget_ms']:g} ms")
    if chosen is not None:
        ax.scatter([chosen.latency_ms], [chosen.exact], s=120, facecolors="none", edgecolors="tab:red", lw=2,
                   label=f"chosen: {chosen.variant}, cap {chosen.cap} ({chosen.latency_source})")  # fmt: skip
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ScalarFormatter())  # 30, 40, 60 ms rather than 3x10^1
    ax.xaxis.set_minor_formatter(ScalarFormatter())
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel(f"ms per puzzle at batch {result['batch']} (this machine; predicted unless marked measured)")
    ax.set_ylabel("exact accuracy (tuning set)")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_title(f"{result['recipe']}: accuracy vs latency over {result['configurations']} configurations")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    _save(fig, path)


def plot_depth(path: Path, result: dict) -> None:
    """tune_depth.png: exact accuracy against the step cap up to the deepest explored, per variant and halting rule,
    the trained budget marked, and the predicted ms per puzzle on a second axis: where depth stops paying."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    depth = result["depth"]
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    ms_ax = ax.twinx()
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    i = 0
    for curve in depth["curves"]:
        caps = list(range(1, curve["deepest"] + 1))
        for rule in curve["rules"]:
            color = colors[i % len(colors)]
            i += 1
            label = f"{curve['variant']}, {rule['rule']} (saturates at cap {rule['saturates_at']})"
            ax.plot(caps, rule["exact"], color=color, lw=1.5, label=label)
            ms_ax.plot(caps, rule["ms_per_puzzle"], color=color, lw=0.8, ls=":")
    ax.axvline(depth["budget"], color="tab:red", ls="--", lw=1, label=f"trained budget {depth['budget']} steps")
    ax.set_xscale("log", base=2)
    ax.set_xlim(1, depth["deepest"])
    ax.set_xticks(sorted({1, depth["budget"], depth["deepest"], *(2**k for k in range(depth["deepest"].bit_length()))}))
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("step cap (test-time depth)")
    ax.set_ylabel("exact accuracy (tuning set)")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ms_ax.set_ylabel(f"ms per puzzle at batch {result['batch']}, dotted (predicted)")
    ax.set_title(f"{result['recipe']}: accuracy vs step cap, up to {depth['factor']}x the trained budget")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    _save(fig, path)


def _save(fig: Any, path: Path) -> None:
    """The figure as PNG through one atomic write (never a half-written plot), then closed."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=100)
    finally:
        plt.close(fig)
    replace_file(path, buf.getvalue())
