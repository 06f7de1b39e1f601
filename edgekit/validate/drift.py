"""Per-step fidelity of a compressed recursion to the float32 one, each following its own trajectory from the
same inputs: relative state drift, and the cosine similarity of the carried state — a label-free measure a CI
gate can use when a user has no labels (how well it predicts halting disagreement is reported with it)."""

from __future__ import annotations

import numpy as np

from .. import progress


def _flat(state: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([s.reshape(len(s), -1).astype(np.float64) for s in state], axis=1)


def trajectory_fidelity(
    a, others: list, inputs: np.ndarray, steps: int | None = None, batch: int = 64, puzzle_ids: np.ndarray | None = None
) -> list[dict]:
    """Runner `a` (float32) and each of `others` (compressed) from the same inputs for `steps` steps without
    halting; `a`'s trajectory is computed once for all of them. Per runner in `others`: `drift` (‖s_b − s_a‖ /
    ‖s_a‖ of the first state tensor over all samples, per step), `cosine_mean` / `cosine_p05` (per-sample cosine
    of all carried state tensors, mean and 5th percentile per step) and `cosine` (samples × steps) for the
    predictive check."""
    steps = steps or a.graph.step_budget
    # as the runners chunk their own calls: within their memory budget (ARC's 900-token samples at 64 a batch
    # peaked at 3.6 GB here; the budget keeps a chunk's activations within 1 GiB)
    batch = max(1, min(batch, a.chunk_size, *(b.chunk_size for b in others)))
    cos = [np.zeros((len(inputs), steps)) for _ in others]
    num, den = np.zeros((len(others), steps)), np.zeros(steps)
    with progress.task("trajectory fidelity per step", len(inputs)) as bar:
        for i in range(0, len(inputs), batch):
            chunk = inputs[i : i + batch]
            ids = None if puzzle_ids is None else puzzle_ids[i : i + batch]
            xa = a.encode(a.check_inputs(chunk), ids)
            xb = [b.encode(b.check_inputs(chunk), ids) for b in others]
            sa, sb = a.initial_state(xa), [b.initial_state(x) for b, x in zip(others, xb)]
            for t in range(steps):
                sa = a._call("step", {**dict(zip(a.state_names, sa)), "x": xa})[:-1]
                fa = _flat(sa)
                den[t] += float(np.sum(sa[0].astype(np.float64) ** 2))
                for j, b in enumerate(others):
                    sb[j] = b._call("step", {**dict(zip(b.state_names, sb[j])), "x": xb[j]})[:-1]
                    fb = _flat(sb[j])
                    norms = np.maximum(np.linalg.norm(fa, axis=1) * np.linalg.norm(fb, axis=1), 1e-30)
                    cos[j][i : i + len(chunk), t] = np.sum(fa * fb, axis=1) / norms
                    d0 = sb[j][0].astype(np.float64) - sa[0]
                    num[j, t] += float(np.sum(d0 * d0))
            bar.advance(len(chunk))
    return [
        {
            "samples": len(inputs),
            "drift": [round(float(np.sqrt(n / max(d, 1e-24))), 6) for n, d in zip(num[j], den)],
            "cosine_mean": [round(float(c), 6) for c in cos[j].mean(0)],
            "cosine_p05": [round(float(c), 6) for c in np.quantile(cos[j], 0.05, axis=0)],
            "cosine": cos[j],
        }
        for j in range(len(others))
    ]


def auroc(score: np.ndarray, positive: np.ndarray) -> float | None:
    """Area under the ROC curve of `score` ranking the `positive` samples first (ties count half); None when
    one class is empty. 0.5 = no better than chance."""
    pos, neg = score[positive], score[~positive]
    if not len(pos) or not len(neg):
        return None
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def cosine_predicts_halting(cos: np.ndarray, steps_a: np.ndarray, steps_b: np.ndarray) -> dict:
    """How well the label-free cosine predicts a changed halting step, per sample: the score is 1 − the lowest
    cosine up to the float32 halting step; AUROC over the samples both were measured on."""
    n = len(cos)
    upto = np.clip(steps_a[:n], 1, cos.shape[1])
    low = np.array([cos[i, : upto[i]].min() for i in range(n)])
    changed = steps_a[:n] != steps_b[:n]
    return {
        "samples": n,
        "halting_changed": int(changed.sum()),
        "auroc": auroc(1 - low, changed),
        "mean_min_cosine_changed": float(low[changed].mean()) if changed.any() else None,
        "mean_min_cosine_same": float(low[~changed].mean()) if (~changed).any() else None,
    }
