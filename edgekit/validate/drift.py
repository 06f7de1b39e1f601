"""Per-step state drift between two variants of one model, each following its own trajectory from the same
inputs: how far a compressed recursion wanders from the float32 one as steps accumulate."""

from __future__ import annotations

import numpy as np

from .. import progress


def state_drift(a, b, inputs: np.ndarray, steps: int | None = None) -> list[float]:
    """Relative L2 distance ‖s_b − s_a‖ / ‖s_a‖ of the first state tensor after every step (runtime Runners)."""
    steps = steps or a.graph["step_budget"]
    xa = a._call("encode", {"inputs": a.check_inputs(inputs)})[0]
    xb = b._call("encode", {"inputs": b.check_inputs(inputs)})[0]
    sa, sb = a.initial_state(xa), b.initial_state(xb)
    out = []
    with progress.task("state drift per step", steps) as bar:
        for _ in range(steps):
            sa = a._call("step", {**dict(zip(a.state_names, sa)), "x": xa})[:-1]
            sb = b._call("step", {**dict(zip(b.state_names, sb)), "x": xb})[:-1]
            ref = max(np.linalg.norm(sa[0].astype(np.float64)), 1e-12)
            out.append(round(float(np.linalg.norm(sb[0].astype(np.float64) - sa[0]) / ref), 6))
            bar.advance()
    return out
