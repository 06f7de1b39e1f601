"""Building blocks shared by HRM and TRM, written to reproduce the reference math exactly.

Why each detail matters (as the reference implementations do it):
- weights are fp32 masters cast to the compute dtype at every op (bf16 rounding happens per call);
- RMSNorm has no learnable scale and always computes in fp32;
- RoPE uses the half-split ("rotate_half") convention and rotates in fp32.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

CosSin = tuple[torch.Tensor, torch.Tensor]


def trunc_normal_init_(tensor: torch.Tensor, std: float = 1.0, lower: float = -2.0, upper: float = 2.0) -> torch.Tensor:
    """JAX-style truncated normal whose *actual* std equals `std` (torch's trunc_normal_ does not correct it)."""
    with torch.no_grad():
        if std == 0:
            return tensor.zero_()
        sqrt2 = math.sqrt(2)
        a, b = math.erf(lower / sqrt2), math.erf(upper / sqrt2)
        z = (b - a) / 2
        c = (2 * math.pi) ** -0.5
        pdf_u, pdf_l = c * math.exp(-0.5 * lower**2), c * math.exp(-0.5 * upper**2)
        comp_std = std / math.sqrt(1 - (upper * pdf_u - lower * pdf_l) / z - ((pdf_u - pdf_l) / z) ** 2)
        tensor.uniform_(a, b).erfinv_().mul_(sqrt2 * comp_std).clip_(lower * comp_std, upper * comp_std)
    return tensor


def swiglu_width(hidden: int, expansion: float) -> int:
    """Reference SwiGLU inner width: round(expansion * hidden * 2/3) rounded up to a multiple of 256."""
    inter = round(expansion * hidden * 2 / 3)
    return -(inter // -256) * 256


def rms_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """Parameter-free RMSNorm over the last axis, fp32 math, result in the input dtype."""
    dtype = x.dtype
    x = x.to(torch.float32)
    x = x * torch.rsqrt(x.square().mean(-1, keepdim=True) + eps)
    return x.to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate q, k ([B, S, H, D]) in the tables' dtype (fp32), then return to the activation dtype."""
    dtype = q.dtype
    q, k = q.to(cos.dtype), k.to(cos.dtype)
    c, s = cos.unsqueeze(-2), sin.unsqueeze(-2)
    return (q * c + rotate_half(q) * s).to(dtype), (k * c + rotate_half(k) * s).to(dtype)


class CastedLinear(nn.Module):
    """Linear layer whose fp32 weight is cast to the activation dtype at every call."""

    def __init__(self, in_features: int, out_features: int, bias: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(trunc_normal_init_(torch.empty(out_features, in_features), std=in_features**-0.5))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias.to(x.dtype) if self.bias is not None else None
        return F.linear(x, self.weight.to(x.dtype), bias)


class CastedEmbedding(nn.Module):
    """Embedding table kept in fp32 and cast to the compute dtype on lookup."""

    def __init__(self, num: int, dim: int, init_std: float, cast_to: torch.dtype) -> None:
        super().__init__()
        self.cast_to = cast_to
        self.embedding_weight = nn.Parameter(trunc_normal_init_(torch.empty(num, dim), std=init_std))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.embedding_weight.to(self.cast_to))


class PuzzleEmbedding(nn.Module):
    """Eval-mode equivalent of the reference CastedSparseEmbedding: a table of per-puzzle vectors.

    The reference keeps it as a persistent buffer named `weights` trained by SignSGD; here it is a parameter with
    the same key so reference checkpoints load unchanged and our trainer can optimise it with everything else.
    """

    def __init__(self, num: int, dim: int, cast_to: torch.dtype) -> None:
        super().__init__()
        self.cast_to = cast_to
        self.weights = nn.Parameter(torch.zeros(num, dim))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.weights[ids].to(self.cast_to)


class RotaryEmbedding(nn.Module):
    """RoPE tables (not saved in checkpoints, recomputed here exactly as the reference does)."""

    cos_cached: torch.Tensor
    sin_cached: torch.Tensor

    def __init__(self, dim: int, max_positions: int, base: float) -> None:
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
        freqs = torch.outer(torch.arange(max_positions, dtype=torch.float32), inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.register_buffer("cos_cached", emb.cos(), persistent=False)
        self.register_buffer("sin_cached", emb.sin(), persistent=False)

    def forward(self) -> CosSin:
        return self.cos_cached, self.sin_cached


class Attention(nn.Module):
    """Non-causal multi-head attention with a fused QKV projection split Q|K|V by head groups."""

    def __init__(self, hidden: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = hidden // num_heads
        self.qkv_proj = CastedLinear(hidden, 3 * num_heads * self.head_dim, bias=False)
        self.o_proj = CastedLinear(num_heads * self.head_dim, hidden, bias=False)

    def forward(self, x: torch.Tensor, cos_sin: CosSin | None) -> torch.Tensor:
        b, s, _ = x.shape
        qkv = self.qkv_proj(x).view(b, s, 3 * self.num_heads, self.head_dim)
        q, k, v = qkv.split(self.num_heads, dim=2)
        if cos_sin is not None:
            q, k = apply_rope(q, k, *cos_sin)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, is_causal=False)
        return self.o_proj(out.transpose(1, 2).reshape(b, s, self.num_heads * self.head_dim))


class SwiGLU(nn.Module):
    """SwiGLU MLP; `gate_up_proj` holds gate rows first, then up rows (reference order)."""

    def __init__(self, hidden: int, expansion: float) -> None:
        super().__init__()
        inter = swiglu_width(hidden, expansion)
        self.gate_up_proj = CastedLinear(hidden, 2 * inter, bias=False)
        self.down_proj = CastedLinear(inter, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        return self.down_proj(F.silu(gate) * up)


class PostNormBlock(nn.Module):
    """One reference block: post-norm token mixing (attention, or a SwiGLU across positions for TRM `mlp_t`)
    followed by a post-norm SwiGLU over channels."""

    def __init__(self, hidden: int, num_heads: int, expansion: float, eps: float, mlp_t_len: int | None = None) -> None:
        super().__init__()
        self.eps = eps
        self.mlp_t_len = mlp_t_len
        if mlp_t_len is not None:
            self.mlp_t = SwiGLU(mlp_t_len, expansion)
        else:
            self.self_attn = Attention(hidden, num_heads)
        self.mlp = SwiGLU(hidden, expansion)

    def forward(self, h: torch.Tensor, cos_sin: CosSin | None) -> torch.Tensor:
        if self.mlp_t_len is not None:
            # The first norm runs over the sequence axis (per channel), exactly as the reference does.
            t = h.transpose(1, 2)
            h = rms_norm(t + self.mlp_t(t), self.eps).transpose(1, 2)
        else:
            h = rms_norm(h + self.self_attn(h, cos_sin), self.eps)
        return rms_norm(h + self.mlp(h), self.eps)


class ReasoningModule(nn.Module):
    """A stack of blocks applied to `state + injection` (the addition order matters for bf16 rounding)."""

    def __init__(self, layers: list[PostNormBlock]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, h: torch.Tensor, injection: torch.Tensor, cos_sin: CosSin | None) -> torch.Tensor:
        h = h + injection
        for layer in self.layers:
            h = layer(h, cos_sin)
        return h
