"""numpy pieces of the host loop that are not graphs: Anderson acceleration's history and mixing step.

Mirrors `edgekit.models.deq.anderson` (the PyTorch reference) so that the host loop takes the same number of
iterations per sample: alpha = A^-1 1 / (1^T A^-1 1), A = G G^T + lam * mean(diag(G G^T)) * I.
"""

from __future__ import annotations

import numpy as np


def push_history(H: np.ndarray, v: np.ndarray, m: int) -> np.ndarray:
    """Append v [B, D] to the history H [B, n, D], keeping the most recent m entries (oldest first)."""
    return np.concatenate([H, v[:, None]], 1)[:, -m:]


def anderson_mix(X: np.ndarray, F: np.ndarray, lam: float, beta: float) -> np.ndarray:
    """Next iterate from the histories of iterates X and their images F ([B, n, D])."""
    n = X.shape[1]
    if n == 1:
        return beta * F[:, 0] + (1 - beta) * X[:, 0]
    G = (F - X).astype(np.float32)
    GG = G @ G.transpose(0, 2, 1)
    scale = np.maximum(np.einsum("bii->b", GG) / n, 1e-30)[:, None, None]
    A = GG + lam * scale * np.eye(n, dtype=np.float32)
    w = np.linalg.solve(A, np.ones((len(X), n, 1), np.float32))
    alpha = w / w.sum(1, keepdims=True)
    return np.asarray((beta * (alpha * F).sum(1) + (1 - beta) * (alpha * X).sum(1)).astype(np.float32))
