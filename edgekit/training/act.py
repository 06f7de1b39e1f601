"""Deep-supervision trainer for HRM/TRM, following the references' training loop.

Each optimizer step is one ACT step for a batch of "slots". A slot keeps its puzzle and carried state across
optimizer steps until it halts (halting logit > 0, with the reference's exploration), or reaches the step cap;
then it is refilled with a fresh puzzle. Gradients flow only through the reference's gradient-carrying tail of
the step (TRM: last H-cycle; HRM: last L- and H-update). Loss: stablemax CE over tokens (per-sequence mean)
+ 0.5 * BCE(q_halt, sequence correct) [+ HRM's bootstrapped q_continue target].
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..models.act import ACTModel
from .losses import stablemax_cross_entropy

Sampler = Callable[[int, np.random.Generator], tuple[np.ndarray, np.ndarray]]


@dataclass
class TrainSettings:
    steps: int
    batch_size: int = 128
    lr: float = 1e-3
    warmup: int = 200
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    ema: float = 0.999
    halt_exploration_prob: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    log_every: int = 100
    max_minutes: float | None = None


@dataclass
class TrainLog:
    rows: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    steps_done: int = 0


def train_act(
    model: ACTModel, sampler: Sampler, s: TrainSettings, log: Callable[[str], None] = print
) -> tuple[ACTModel, TrainLog]:
    """Train in place; return the EMA copy (what gets shipped, as TRM does) and a log."""
    torch.manual_seed(s.seed)
    rng = np.random.default_rng(s.seed)
    model.train()
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=s.lr, betas=s.betas, weight_decay=s.weight_decay)
    b, cap = s.batch_size, model.config.halt_max_steps
    dev = next(model.parameters()).device
    inputs = torch.zeros(b, model.config.seq_len, dtype=torch.long, device=dev)
    labels = torch.zeros_like(inputs)
    steps = torch.zeros(b, dtype=torch.long, device=dev)
    halted = torch.ones(b, dtype=torch.bool, device=dev)
    state = None
    out = TrainLog()
    t0 = time.time()
    acc = {"loss": 0.0, "exact": 0.0, "count": 0.0, "steps": 0.0, "qacc": 0.0, "n": 0.0}
    for it in range(1, s.steps + 1):
        # Refill halted slots with fresh puzzles and reset their carried state.
        n_new = int(halted.sum())
        if n_new:
            xi, yi = sampler(n_new, rng)
            inputs[halted] = torch.from_numpy(xi).to(dev)
            labels[halted] = torch.from_numpy(yi).to(dev)
            steps[halted] = 0
        x = model.encode(inputs)
        init = model.initial_state(x)
        if state is None:
            state = init
        else:
            m = halted.view(-1, 1, 1)
            state = tuple(torch.where(m, i, z) for i, z in zip(init, state))
        lr = s.lr * min(1.0, it / max(1, s.warmup))
        for g in opt.param_groups:
            g["lr"] = lr
        new_state = model.step_with_grad(state, x, grad_last=True)
        r = model.readout(new_state)
        q = model.q_logits(new_state)
        with torch.no_grad():
            correct = r.logits.argmax(-1) == labels
            seq_ok = correct.all(-1)
        lm = (stablemax_cross_entropy(r.logits, labels).mean(-1)).mean()
        q_halt_loss = F.binary_cross_entropy_with_logits(q[:, 0], seq_ok.float())
        loss = lm + 0.5 * q_halt_loss
        steps = steps + 1
        last = steps >= cap
        if model.q_continue:
            # HRM: bootstrapped continue target from one more no-grad step (PQN-style, as the reference).
            with torch.no_grad():
                nq = model.q_logits(model.step(tuple(z.detach() for z in new_state), x.detach()))
                target = torch.sigmoid(torch.where(last, nq[:, 0], torch.maximum(nq[:, 0], nq[:, 1])))
            loss = loss + 0.5 * F.binary_cross_entropy_with_logits(q[:, 1], target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if s.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), s.grad_clip)
        opt.step()
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.lerp_(pm, 1 - s.ema)
            # Halting as in training mode of the references, with exploration.
            assert r.halt_logit is not None, "ACT readouts always carry a halting logit"
            hl = r.halt_logit.detach()
            halt = last | (hl > 0)
            explore = (torch.rand(b, device=dev) < s.halt_exploration_prob) * torch.randint(
                2, cap + 1, (b,), device=dev
            )
            halt = halt & (steps >= explore)
            acc["loss"] += float(loss.detach())
            acc["exact"] += float((seq_ok & halt).sum())
            acc["count"] += float(halt.sum())
            acc["steps"] += float((steps * halt).sum())
            acc["qacc"] += float(((hl > 0) == seq_ok).float().mean())
            acc["n"] += 1
            halted = halt
            state = tuple(z.detach() for z in new_state)
        if it % s.log_every == 0 or it == s.steps:
            n = max(acc["count"], 1)
            row = {
                "step": it,
                "lr": lr,
                "loss": acc["loss"] / acc["n"],
                "halted_exact": acc["exact"] / n,
                "mean_halt_step": acc["steps"] / n,
                "q_acc": acc["qacc"] / acc["n"],
                "minutes": (time.time() - t0) / 60,
            }
            out.rows.append(row)
            log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
            acc = dict.fromkeys(acc, 0.0)
        out.steps_done = it
        if s.max_minutes is not None and time.time() - t0 > 60 * s.max_minutes:
            log(f"stopping at step {it}: time limit of {s.max_minutes} min reached")
            break
    out.seconds = time.time() - t0
    model.eval()
    return ema, out
