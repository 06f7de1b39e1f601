"""Train the demo DEQ with phantom gradients: solve without grad, then backprop through a few f-steps."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..models.deq import DEQModel


@dataclass
class DEQTrainSettings:
    epochs: int = 60
    batch_size: int = 64
    lr: float = 3e-3
    train_iters: int = 30  # solver iterations (no grad) per training forward
    grad_steps: int = 3  # phantom-gradient steps
    max_spectral_norm: float = 0.9
    seed: int = 0


def train_deq(model: DEQModel, x: np.ndarray, y: np.ndarray, s: DEQTrainSettings, log=print) -> float:
    torch.manual_seed(s.seed)
    rng = np.random.default_rng(s.seed)
    opt = torch.optim.Adam(model.parameters(), lr=s.lr)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    t0 = time.time()
    for epoch in range(1, s.epochs + 1):
        order = rng.permutation(len(x))
        total = 0.0
        for i in range(0, len(x), s.batch_size):
            idx = torch.from_numpy(order[i : i + s.batch_size])
            inj = model.encode(xt[idx])
            z = model.initial_state(inj)[0]
            with torch.no_grad():
                for _ in range(s.train_iters):
                    z = model.f(z, inj)
            for _ in range(s.grad_steps):
                z = model.f(z, inj)
            loss = F.cross_entropy(model.head(z), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():  # keep f a contraction so fixed-point iteration provably converges
                W = model.f.get_parameter("W.weight")  # TanhCell's linear map
                sigma = torch.linalg.matrix_norm(W, ord=2)
                if sigma > s.max_spectral_norm:
                    W.mul_(s.max_spectral_norm / sigma)
            total += float(loss.detach()) * len(idx)
        if epoch % 10 == 0 or epoch == s.epochs:
            log(f"epoch {epoch} loss {total / len(x):.4f} ({time.time() - t0:.0f}s)")
    model.eval()
    return time.time() - t0
