"""HRM and TRM as edgekit recursive models, reproducing the reference forward pass exactly.

One ACT step of each, as the references compute it:
- HRM: H_cycles x (L_cycles L-updates `L(z_L, z_H + x)`, then one H-update `H(z_H, z_L)`), two stacks.
- TRM: H_cycles x (L_cycles z-updates `net(z_L, z_H + x)`, then `net(z_H, z_L)`), one shared stack.
At inference the reference's no_grad / grad split changes nothing numerically, so `step` is the plain schedule.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import nn

from .base import Readout, RecursiveModel, State
from .config import ACTConfig
from .layers import (
    CastedEmbedding,
    CastedLinear,
    PostNormBlock,
    PuzzleEmbedding,
    ReasoningModule,
    RotaryEmbedding,
    trunc_normal_init_,
)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ACTModel(RecursiveModel):
    """Common body of HRM and TRM: embeddings, heads, initial states and the module layout whose parameter
    names equal the reference state-dict keys (after the `model.inner.` prefix)."""

    state_names = ("z_H", "z_L")
    family: Literal["trm", "hrm"]  # for the type checker; any registered token family at run time (families.py)
    # Buffers registered in __init__ (declared so type checkers see tensors, not `Tensor | Module`).
    H_init: torch.Tensor
    L_init: torch.Tensor

    def __init__(self, config: ACTConfig) -> None:
        super().__init__()
        self.config = config
        self.family = config.family  # type: ignore[assignment]
        self.dtype = _DTYPES[config.forward_dtype]
        h = config.hidden_size
        self.embed_scale = math.sqrt(h)
        self.embed_tokens = CastedEmbedding(config.vocab_size, h, init_std=1.0 / self.embed_scale, cast_to=self.dtype)
        self.lm_head = CastedLinear(h, config.vocab_size, bias=False)
        self.q_head = CastedLinear(h, 2, bias=True)
        self.prefix_len = config.prefix_len
        if config.puzzle_emb_ndim > 0:
            self.puzzle_emb = PuzzleEmbedding(config.num_puzzle_identifiers, config.puzzle_emb_ndim, self.dtype)
        if config.pos_encodings == "rope":
            self.rotary_emb = RotaryEmbedding(h // config.num_heads, config.total_len, config.rope_theta)
        elif config.pos_encodings == "learned":
            self.embed_pos = CastedEmbedding(config.total_len, h, init_std=1.0 / self.embed_scale, cast_to=self.dtype)
        mlp_t_len = config.total_len if config.mlp_t else None

        def stack(n: int) -> ReasoningModule:
            return ReasoningModule(
                [PostNormBlock(h, config.num_heads, config.expansion, config.rms_norm_eps, mlp_t_len) for _ in range(n)]
            )

        if config.family == "hrm":
            self.H_level = stack(config.H_layers)
        self.L_level = stack(config.L_layers)
        # Fixed random initial states, stored as bf16 buffers like the reference checkpoints.
        self.register_buffer("H_init", trunc_normal_init_(torch.empty(h, dtype=torch.bfloat16), std=1))
        self.register_buffer("L_init", trunc_normal_init_(torch.empty(h, dtype=torch.bfloat16), std=1))
        with torch.no_grad():
            assert self.q_head.bias is not None, "q_head is built with bias=True"
            self.q_head.weight.zero_()
            self.q_head.bias.fill_(-5)

    # -- the four pieces ---------------------------------------------------------------------------------------
    @property
    def step_budget(self) -> int:
        return self.config.halt_max_steps

    @property
    def forward_dtype(self) -> str:
        return self.config.forward_dtype

    def initial_vectors(self) -> dict[str, torch.Tensor]:
        """The learned (fixed random) initial states of the reference checkpoints."""
        return {"z_H": self.H_init, "z_L": self.L_init}

    def manifest_config(self) -> dict[str, Any]:
        """The architecture, and the solver settings where the family stops at a fixed point."""
        solver = {} if self.solver is None else {"solver": self.solver.model_dump()}
        return {**self.config.model_dump(), **solver}

    def encode(self, inputs: torch.Tensor, puzzle_ids: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.embed_tokens(inputs.to(torch.int32))
        if self.config.puzzle_emb_ndim > 0:
            if puzzle_ids is None:
                puzzle_ids = torch.zeros(inputs.shape[0], dtype=torch.int32, device=inputs.device)
            pe = self.puzzle_emb(puzzle_ids)
            pad = self.prefix_len * self.config.hidden_size - pe.shape[-1]
            if pad > 0:
                pe = nn.functional.pad(pe, (0, pad))
            emb = torch.cat((pe.view(-1, self.prefix_len, self.config.hidden_size), emb), dim=-2)
        if self.config.pos_encodings == "learned":
            emb = 0.707106781 * (emb + self.embed_pos.embedding_weight.to(self.dtype))
        return self.embed_scale * emb

    def initial_state(self, x: torch.Tensor) -> State:
        shape = x.shape
        return (
            self.H_init.to(self.dtype).expand(shape).contiguous(),
            self.L_init.to(self.dtype).expand(shape).contiguous(),
        )

    def step(self, state: State, x: torch.Tensor) -> State:
        return self.step_with_grad(state, x, grad_last=False)

    def readout(self, state: State) -> Readout:
        z_h = state[0]
        logits = self.lm_head(z_h)[:, self.prefix_len :]
        q = self.q_head(z_h[:, 0]).to(torch.float32)
        return Readout(logits=logits, halt_logit=self.halt_logit(q))

    # -- family specifics ---------------------------------------------------------------------------------------
    def cos_sin(self):
        return self.rotary_emb() if hasattr(self, "rotary_emb") else None

    @property
    def q_continue(self) -> bool:
        """Whether the continue logit takes part in halting (HRM; TRM without no_ACT_continue), as in training."""
        return not (self.family == "trm" and self.config.no_ACT_continue)

    def halt_logit(self, q: torch.Tensor) -> torch.Tensor:
        """Single halting logit, halt when > 0: TRM `q_halt` (no_ACT_continue), HRM `q_halt - q_continue`."""
        return q[..., 0] - q[..., 1] if self.q_continue else q[..., 0]

    def q_logits(self, state: State) -> torch.Tensor:
        return self.q_head(state[0][:, 0]).to(torch.float32)

    def step_with_grad(self, state: State, x: torch.Tensor, grad_last: bool) -> State:
        """One ACT step; with `grad_last` only the reference's gradient-carrying tail records autograd
        (TRM: the last full H-cycle; HRM: the final L- and H-update, the "1-step gradient")."""
        raise NotImplementedError


class TRM(ACTModel):
    def step_with_grad(self, state: State, x: torch.Tensor, grad_last: bool) -> State:
        z_h, z_l = state
        cs = self.cos_sin()
        cfg = self.config
        with torch.set_grad_enabled(torch.is_grad_enabled() and not grad_last):
            for _ in range(cfg.H_cycles - 1):
                for _ in range(cfg.L_cycles):
                    z_l = self.L_level(z_l, z_h + x, cs)
                z_h = self.L_level(z_h, z_l, cs)
        for _ in range(cfg.L_cycles):
            z_l = self.L_level(z_l, z_h + x, cs)
        z_h = self.L_level(z_h, z_l, cs)
        return z_h, z_l


class HRM(ACTModel):
    def step_with_grad(self, state: State, x: torch.Tensor, grad_last: bool) -> State:
        z_h, z_l = state
        cs = self.cos_sin()
        cfg = self.config
        with torch.set_grad_enabled(torch.is_grad_enabled() and not grad_last):
            for h in range(cfg.H_cycles):
                for lc in range(cfg.L_cycles):
                    if not (h == cfg.H_cycles - 1 and lc == cfg.L_cycles - 1):
                        z_l = self.L_level(z_l, z_h + x, cs)
                if h != cfg.H_cycles - 1:
                    z_h = self.H_level(z_h, z_l, cs)
        z_l = self.L_level(z_l, z_h + x, cs)
        z_h = self.H_level(z_h, z_l, cs)
        return z_h, z_l


def build_act_model(config: ACTConfig) -> ACTModel:
    from .families import get_family

    model: ACTModel = get_family(config.family).build(config)
    return model


def reference_parameter_count(model: ACTModel) -> int:
    """Parameter count as the references log it: puzzle-embedding table excluded (it is a buffer there)."""
    return sum(p.numel() for n, p in model.named_parameters() if not n.startswith("puzzle_emb."))
