"""bench.png (`edgekit bench --plot`): per-puzzle latency per variant and batch size, the two numbers a device
user weighs: how long a request waits for its answer (the whole batch's solve call, since a batch returns
together) and what one puzzle costs in throughput (call time / batch). Needs matplotlib (the `export` extra)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ..artefact import replace_file


def write_bench_plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['config'] + ' ' if 'config' in r else ''}{r['variant']}\n{r['mode']}, b{r['batch']}" for r in rows]
    fig, (wait, cost) = plt.subplots(1, 2, figsize=(max(8.0, 1.3 * len(rows) + 4), 4.5))
    wait.boxplot([r["latencies_ms"] for r in rows], showfliers=True, whis=(1, 99))
    wait.set_xticks(range(1, len(rows) + 1), labels, fontsize=7)
    wait.set_yscale("log")
    wait.set(ylabel="ms per solve call (log)", title="What a request waits (box: quartiles, whiskers: p1-p99)")
    wait.grid(True, which="both", axis="y", alpha=0.3)
    bars = cost.bar(range(1, len(rows) + 1), [r["per_sample_ms"] for r in rows], color="tab:blue")
    cost.bar_label(bars, fmt="%.2f", fontsize=7)
    cost.set_xticks(range(1, len(rows) + 1), labels, fontsize=7)
    cost.set(ylabel="ms per puzzle (call time / batch)", title="What a puzzle costs in throughput")
    cost.grid(True, axis="y", alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=100)
    finally:
        plt.close(fig)
    replace_file(path, buf.getvalue())  # never a half-written plot
