"""The DEQ demo task: scikit-learn's 8x8 handwritten digits (shipped inside scikit-learn, nothing downloaded)."""

from __future__ import annotations

import numpy as np

NUM_FEATURES = 64
NUM_CLASSES = 10


def load(split: str = "test", seed: int = 0, test_fraction: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """(features in [0, 1] as float32 [N, 64], labels int64 [N]) for a fixed, seeded train/test split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    idx = order[:n_test] if split == "test" else order[n_test:]
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}: use 'train' or 'test'")
    return x[idx], y[idx]
