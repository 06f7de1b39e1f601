"""Fixed-point validation for DEQs: is the state a compressed / exported solver returns still a fixed point of
the *original* model, and a stable one?

- residual ‖f(z) − z‖ / ‖f(z)‖ of the returned z under the original PyTorch f (not the graph that produced it);
- iterations to tolerance, share not converged, NaN/Inf counts;
- spectral radius of the Jacobian ∂f/∂z at z (power iteration on Jacobian-vector products): < 1 means the
  fixed point attracts, so small errors from quantization die out instead of growing;
- decay of a small perturbation: ‖f^k(z + εδ) − f^k(z)‖ / ‖εδ‖ for k = 1..5.
"""

from __future__ import annotations

import numpy as np
import torch


@torch.no_grad()
def fixed_point_report(
    model,
    inputs: np.ndarray,
    z: np.ndarray,
    steps: np.ndarray,
    done: np.ndarray,
    power_iters: int = 30,
    eps: float = 1e-3,
    seed: int = 0,
) -> dict:
    x = model.encode(torch.from_numpy(np.asarray(inputs, np.float32)))
    zt = torch.from_numpy(np.asarray(z, np.float32))
    finite = torch.isfinite(zt).all(dim=1)
    f = lambda v: model.f(v, x)  # noqa: E731
    fz = f(zt)
    res = (fz - zt).norm(dim=1) / fz.norm(dim=1).clamp_min(1e-12)
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(zt.shape, generator=g)
    v = v / v.norm(dim=1, keepdim=True)
    rho = torch.zeros(len(zt))
    with torch.enable_grad():
        for _ in range(power_iters):
            jv = torch.func.jvp(f, (zt,), (v,))[1]  # (f(z), J v): without has_aux jvp returns a pair
            rho = jv.norm(dim=1)
            v = jv / rho.clamp_min(1e-12)[:, None]
    delta = torch.randn(zt.shape, generator=g)
    delta = eps * delta / delta.norm(dim=1, keepdim=True)
    a, b, decay = zt + delta, zt, []
    for _ in range(5):
        a, b = f(a), f(b)
        decay.append(float(((a - b).norm(dim=1) / eps).mean()))
    return {
        "residual_under_original_max": float(res[finite].max()) if finite.any() else None,
        "residual_under_original_mean": float(res[finite].mean()) if finite.any() else None,
        "mean_iterations": float(np.mean(steps)),
        "not_converged": float(1 - np.mean(done)),
        "nan_or_inf_samples": int((~finite).sum()),
        "spectral_radius_max": float(rho.max()),
        "spectral_radius_mean": float(rho.mean()),
        "perturbation_decay": [round(d, 6) for d in decay],
    }
