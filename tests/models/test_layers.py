"""Reference math details that are easy to get subtly wrong."""

import math

import torch

from edgekit.models.act import build_act_model
from edgekit.models.config import ACTConfig
from edgekit.models.layers import apply_rope, rms_norm, swiglu_width, trunc_normal_init_


def test_swiglu_width_rule_matches_reference_sizes():
    assert swiglu_width(512, 4) == 1536  # HRM/TRM hidden 512
    assert swiglu_width(97, 4) == 512  # TRM-MLP Sudoku token mixer (L = 81 + 16)
    assert swiglu_width(916, 4) == 2560  # Maze/ARC token mixer


def test_rms_norm_is_parameter_free_fp32_math_and_keeps_dtype():
    x = torch.randn(2, 5, 64, dtype=torch.bfloat16) * 30
    y = rms_norm(x, 1e-5)
    assert y.dtype == torch.bfloat16
    ref = (x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + 1e-5)).to(torch.bfloat16)
    assert torch.equal(y, ref)


def test_rope_is_half_split_not_interleaved():
    d = 8
    q = torch.zeros(1, 1, 1, d)
    q[..., 0] = 1.0  # first element of the first half pairs with element d/2
    angle = 0.7
    cos = torch.full((1, d), math.cos(angle))
    sin = torch.full((1, d), math.sin(angle))
    out, _ = apply_rope(q, q.clone(), cos, sin)
    assert torch.allclose(out[0, 0, 0, 0], torch.tensor(math.cos(angle)))
    assert torch.allclose(out[0, 0, 0, d // 2], torch.tensor(math.sin(angle)))
    assert torch.count_nonzero(out) == 2


def test_trunc_normal_has_requested_std():
    t = trunc_normal_init_(torch.empty(200_000), std=0.5)
    assert abs(float(t.std()) - 0.5) < 0.01 and float(t.abs().max()) <= 2 * 0.5 * 1.2


def _keys(family, **kw):
    cfg = ACTConfig(
        family=family,
        seq_len=81,
        vocab_size=11,
        puzzle_emb_ndim=64,
        H_cycles=2,
        L_cycles=2,
        H_layers=1 if family == "hrm" else 0,
        L_layers=1,
        hidden_size=64,
        expansion=4,
        num_heads=2,
        **kw,
    )
    return set(build_act_model(cfg).state_dict())


def test_state_dict_keys_follow_reference_layout():
    common = {
        "H_init",
        "L_init",
        "embed_tokens.embedding_weight",
        "lm_head.weight",
        "q_head.weight",
        "q_head.bias",
        "puzzle_emb.weights",
    }
    att = {"self_attn.qkv_proj.weight", "self_attn.o_proj.weight", "mlp.gate_up_proj.weight", "mlp.down_proj.weight"}
    assert _keys("hrm") == common | {f"{lvl}.layers.0.{k}" for lvl in ("H_level", "L_level") for k in att}
    assert _keys("trm") == common | {f"L_level.layers.0.{k}" for k in att}
    mlp_t = {"mlp_t.gate_up_proj.weight", "mlp_t.down_proj.weight", "mlp.gate_up_proj.weight", "mlp.down_proj.weight"}
    assert _keys("trm", mlp_t=True, pos_encodings="none") == common | {f"L_level.layers.0.{k}" for k in mlp_t}
    assert "embed_pos.embedding_weight" in _keys("hrm", pos_encodings="learned")


def test_prefix_lengths_hrm_one_row_trm_sixteen():
    base = {
        "seq_len": 81,
        "vocab_size": 11,
        "puzzle_emb_ndim": 512,
        "H_cycles": 1,
        "L_cycles": 1,
        "L_layers": 1,
        "hidden_size": 512,
        "expansion": 4,
        "num_heads": 8,
    }
    assert ACTConfig(family="hrm", H_layers=1, **base).prefix_len == 1
    assert ACTConfig(family="trm", **base).prefix_len == 16


def test_q_head_reads_position_zero_and_logits_skip_prefix():
    torch.manual_seed(0)
    cfg = ACTConfig(
        family="trm",
        seq_len=9,
        vocab_size=5,
        puzzle_emb_ndim=32,
        puzzle_emb_len=2,
        H_cycles=1,
        L_cycles=1,
        L_layers=1,
        hidden_size=32,
        expansion=2,
        num_heads=2,
        forward_dtype="float32",
    )
    m = build_act_model(cfg)
    torch.nn.init.normal_(m.q_head.weight)
    z = torch.randn(1, 11, 32)
    r = m.readout((z, z))
    assert r.logits.shape == (1, 9, 5)
    z2 = z.clone()
    z2[:, 1:] += 1.0  # changing every position but 0 leaves q unchanged
    assert torch.equal(m.readout((z2, z2)).halt_logit, r.halt_logit)
