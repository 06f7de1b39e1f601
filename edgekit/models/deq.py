"""Deep-equilibrium models: z* = f(z*, x), found by a solver, then read out.

A DEQ here is f(z, x) plus an encoder, a readout head and the solver settings (damped fixed-point iteration or
Anderson acceleration, tolerance, iteration cap). The recursion `step` is one damped application of f, the unit
every export form and the runtime build on; `solve` runs the configured solver in PyTorch and is the reference
the exported forms are validated against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

if TYPE_CHECKING:
    from torchdeq.core import DEQBase

from ..errors import CheckpointError
from .base import Readout, RecursiveModel, State
from .config import DEQConfig, SolverConfig


@dataclass
class SolveResult:
    z: torch.Tensor  # per-sample state at its first convergence (or the last iterate)
    iterations: torch.Tensor  # per-sample f-evaluations until tolerance (max_iter where it never got there)
    converged: torch.Tensor  # bool per sample
    trace: list[torch.Tensor]  # per-iteration residuals [B]


def residual(fz: torch.Tensor, z: torch.Tensor, mode: str = "rel") -> torch.Tensor:
    """Per-sample ‖f(z) − z‖ (abs) or ‖f(z) − z‖ / ‖f(z)‖ (rel), always in fp32."""
    b = z.shape[0]
    d = (fz.float() - z.float()).reshape(b, -1).norm(dim=1)
    if mode == "abs":
        return d
    return d / (fz.float().reshape(b, -1).norm(dim=1) + 1e-9)


def fixed_point(fn, z0: torch.Tensor, s: SolverConfig) -> SolveResult:
    """Damped iteration z <- tau f(z) + (1 - tau) z; each sample keeps its first iterate within tolerance."""
    z = z0
    best = z0.clone()
    its = torch.full((z0.shape[0],), s.max_iter, dtype=torch.long)
    done = torch.zeros(z0.shape[0], dtype=torch.bool)
    trace = []
    for k in range(1, s.max_iter + 1):
        fz = fn(z)
        r = residual(fz, z, s.stop_mode)
        trace.append(r)
        z = s.damping * fz + (1 - s.damping) * z
        newly = (~done) & (r <= s.tol)
        its[newly] = k
        best[~done] = z[~done]
        done |= newly
        if bool(done.all()):
            break
    return SolveResult(best, its, done, trace)


def anderson(fn, z0: torch.Tensor, s: SolverConfig) -> SolveResult:
    """Anderson acceleration (type II, memory m, Tikhonov lam, mixing beta) on flattened states.
    The constrained least-squares step uses the closed form alpha = A^-1 1 / (1^T A^-1 1), A = G G^T + lam I."""
    b = z0.shape[0]
    shape = z0.shape
    m = s.anderson_m
    X, F = [], []
    z = z0.reshape(b, -1).float()
    best = z0.clone()
    its = torch.full((b,), s.max_iter, dtype=torch.long)
    done = torch.zeros(b, dtype=torch.bool)
    trace = []
    for k in range(1, s.max_iter + 1):
        fz = fn(z.reshape(shape)).reshape(b, -1).float()
        r = residual(fz, z, s.stop_mode)
        trace.append(r)
        X.append(z)
        F.append(fz)
        X, F = X[-m:], F[-m:]
        n = len(X)
        if n == 1:
            z_new = s.anderson_beta * fz + (1 - s.anderson_beta) * z
        else:
            G = torch.stack(F, 1) - torch.stack(X, 1)  # [B, n, D]
            GG = G @ G.transpose(1, 2)
            # Tikhonov term relative to the Gram scale: an absolute lam dominates near convergence and
            # degrades Anderson to plain averaging.
            scale = GG.diagonal(dim1=1, dim2=2).mean(-1).clamp_min(1e-30)[:, None, None]
            A = GG + s.anderson_lam * scale * torch.eye(n)
            w = torch.linalg.solve(A, torch.ones(b, n, 1))
            alpha = w / w.sum(1, keepdim=True)  # [B, n, 1]
            fx = (alpha * torch.stack(F, 1)).sum(1)
            xx = (alpha * torch.stack(X, 1)).sum(1)
            z_new = s.anderson_beta * fx + (1 - s.anderson_beta) * xx
        newly = (~done) & (r <= s.tol)
        its[newly] = k
        # The iterate whose residual was just measured is z; keep f(z) (one more contraction) as the answer.
        best[~done] = fz.reshape(shape)[~done].to(best.dtype)
        done |= newly
        z = z_new
        if bool(done.all()):
            break
    return SolveResult(best, its, done, trace)


SOLVERS = {"fixed_point": fixed_point, "anderson": anderson}


class DEQModel(RecursiveModel):
    """encoder(inputs) -> x;  z* = f(z*, x) from z0 = 0;  head(z*) -> logits."""

    family: Literal["deq"] = "deq"
    state_names = ("z",)
    solver: SolverConfig

    def __init__(
        self, f: nn.Module, encoder: nn.Linear, head: nn.Module, hidden_size: int, solver: SolverConfig
    ) -> None:
        super().__init__()
        self.f, self.encoder, self.head = f, encoder, head
        self.hidden_size = hidden_size
        self.solver = solver

    @property
    def step_budget(self) -> int:
        return self.solver.max_iter

    def initial_vectors(self) -> dict[str, torch.Tensor]:
        return {"z": torch.zeros(self.hidden_size)}

    def manifest_config(self) -> dict[str, Any]:
        return {"hidden_size": self.hidden_size, "solver": self.solver.model_dump()}

    def encode(self, inputs: torch.Tensor, puzzle_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.encoder(inputs.float())

    def initial_state(self, x: torch.Tensor) -> State:
        return (torch.zeros(x.shape[0], self.hidden_size, dtype=x.dtype),)

    def step(self, state: State, x: torch.Tensor) -> State:
        return self.step_with_residual(state, x)[0]

    def step_with_residual(self, state: State, x: torch.Tensor) -> tuple[State, torch.Tensor]:
        """One damped application of f and the solver's own convergence measure of f(z) against z, so every
        exported form stops on exactly the quantity `solve` stops on."""
        z = state[0]
        fz = self.f(z, x)
        tau = self.solver.damping
        return (fz if tau == 1.0 else tau * fz + (1 - tau) * z,), residual(fz, z, self.solver.stop_mode)

    def readout(self, state: State) -> Readout:
        return Readout(logits=self.head(state[0]))

    @torch.no_grad()
    def solve(self, inputs: torch.Tensor, solver: SolverConfig | None = None) -> SolveResult:
        s = solver or self.solver
        x = self.encode(inputs)
        z0 = self.initial_state(x)[0]
        return SOLVERS[s.name](lambda z: self.f(z, x), z0, s)


class TanhCell(nn.Module):
    """f(z, x) = tanh(W z + x): a contraction whenever ‖W‖₂ < 1, which the demo trainer enforces."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.W = nn.Linear(hidden, hidden, bias=False)
        nn.init.normal_(self.W.weight, std=0.3 / hidden**0.5)

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.W(z) + x)


def build_deq(config: DEQConfig) -> DEQModel:
    """The demo DEQ classifier (digits): linear encoder, tanh cell, linear head."""
    enc = nn.Linear(config.in_features, config.hidden_size)
    head = nn.Linear(config.hidden_size, config.num_classes)
    return DEQModel(TanhCell(config.hidden_size), enc, head, config.hidden_size, config.solver)


_TORCHDEQ_SOLVERS = {
    "fixed_point_iter": "fixed_point",
    "simple_fixed_point_iter": "fixed_point",
    "anderson_solver": "anderson",
}


def solver_from_torchdeq(deq: DEQBase, solver_kwargs: dict[str, Any] | None = None) -> SolverConfig:
    """Effective test-time solver settings of a module built by `torchdeq.get_deq`.

    Read from the built module, not from the user's arguments: torchdeq silently ignores unknown keys, and
    its test-time cap is `eval_f_max_iter` (already resolved from `eval_factor`). Anderson's m / lam / tau are
    call-time `solver_kwargs` in torchdeq, so pass the ones your forward uses.
    """
    fn = getattr(deq, "f_solver", None)
    name = getattr(fn, "__name__", str(fn))
    if name not in _TORCHDEQ_SOLVERS:
        raise CheckpointError(
            f"torchdeq solver {name!r} has no edgekit equivalent",
            "use f_solver='anderson' or 'fixed_point_iter' (Broyden is not exportable yet)",
        )
    kw = dict(solver_kwargs or {})
    max_iter = int(getattr(deq, "eval_f_max_iter", 0) or deq.f_max_iter)
    # torchdeq's stop mode is a plain string: pydantic checks it is one edgekit knows ("rel" / "abs").
    return SolverConfig.model_validate(
        {
            "name": _TORCHDEQ_SOLVERS[name],
            "max_iter": int(kw.get("f_max_iter", max_iter)),
            "tol": float(deq.f_tol),
            "stop_mode": str(getattr(deq, "f_stop_mode", "abs")),
            "damping": float(kw.get("tau", 1.0)) if _TORCHDEQ_SOLVERS[name] == "fixed_point" else 1.0,
            "anderson_m": int(kw.get("m", 6)),
            "anderson_lam": float(kw.get("lam", 1e-4)),
            "anderson_beta": float(kw.get("tau", 1.0)) if _TORCHDEQ_SOLVERS[name] == "anderson" else 1.0,
        }
    )


def from_torchdeq(
    deq: DEQBase,
    f: nn.Module,
    encoder: nn.Linear,
    head: nn.Module,
    hidden_size: int,
    solver_kwargs: dict[str, Any] | None = None,
) -> DEQModel:
    """Wrap a torchdeq-built DEQ (its f, encoder and head modules) as an edgekit DEQModel."""
    return DEQModel(f, encoder, head, hidden_size, solver_from_torchdeq(deq, solver_kwargs))
