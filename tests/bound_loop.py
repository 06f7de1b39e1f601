"""The IO-bound host loop checked against the plain one: shared by the runtime's and the quantize stage's tests
(a quantized variant must run the bound loop bit for bit too)."""

from __future__ import annotations

import numpy as np

from edgekit.runtime import Runner


class _CountingStep:
    """Proxy for the step session that counts plain and IO-bound runs."""

    def __init__(self, sess) -> None:
        self._sess, self.plain, self.bound = sess, 0, 0

    def run(self, *a, **k):
        self.plain += 1
        return self._sess.run(*a, **k)

    def run_with_iobinding(self, *a, **k):
        self.bound += 1
        return self._sess.run_with_iobinding(*a, **k)

    def __getattr__(self, name):
        return getattr(self._sess, name)


def sudoku_mix(n: int) -> np.ndarray:
    from edgekit.tasks import sudoku

    pool = sudoku.SudokuPool.generate(n, seed=11)
    rng = np.random.default_rng(11)
    return np.concatenate([pool.sample(n // 2, g, rng, augment=False)[0] for g in ((40, 45), (17, 24))])


def runs_bound_like_plain(artefact, variant: str, x: np.ndarray) -> None:
    """The IO-bound host loop answers bit for bit as the plain one, batch after batch (buffers reused, compacted
    at every step where samples halt), and its step calls really go through IO binding."""
    bound, plain = Runner(artefact, variant=variant), Runner(artefact, variant=variant)
    plain.bind_steps = False
    counting = _CountingStep(bound.session("step"))
    bound._sessions["step"] = counting
    for b in (1, 5, len(x), 5, 1):
        for i in range(0, min(len(x), 3 * b), b):
            got, want = bound.solve(x[i : i + b]), plain.solve(x[i : i + b])
            assert np.array_equal(got.logits, want.logits), (variant, b, i)
            assert np.array_equal(got.steps, want.steps) and np.array_equal(got.done, want.done)
            assert np.array_equal(got.halt, want.halt)
    assert counting.bound > 0 and counting.plain == 0, (counting.bound, counting.plain)
    capped = bound.solve(x, max_steps=2)
    assert (capped.steps <= 2).all() and np.array_equal(capped.logits, plain.solve(x, max_steps=2).logits)
