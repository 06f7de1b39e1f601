"""Compare edgekit's TRM/HRM with the reference implementations on identical weights.

    git clone https://github.com/sapientinc/HRM /tmp/ref/hrm
    git clone https://github.com/SamsungSAILMontreal/TinyRecursiveModels /tmp/ref/trm
    python examples/compare_reference.py --hrm-repo /tmp/ref/hrm --trm-repo /tmp/ref/trm

For each model, the weights are written as a reference-format checkpoint (torch.save of a state dict with keys
prefixed `_orig_mod.model.inner.` and, separately, `model.inner.`, next to an `all_config.yaml`), loaded by
edgekit's loader, and loaded into the reference model class. Both run the reference eval loop (16 ACT steps, no
halting) on the same Sudoku puzzles; the script prints max |Δlogits|, max |Δq| and argmax agreement per step.
HRM's layers import flash_attn unconditionally; a stand-in module computing the same attention with PyTorch SDPA
is injected (as a pull request to sapientinc/HRM proposes). No reference code is copied into edgekit.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch
import yaml

from edgekit.models.act import build_act_model
from edgekit.models.checkpoint import load_model, save_act
from edgekit.models.config import ACTConfig
from edgekit.tasks import sudoku


def _flash_attn_stub() -> types.ModuleType:
    mod = types.ModuleType("flash_attn")

    def flash_attn_func(q, k, v, causal=False, **_):  # [B, S, H, D] layout, default scale 1/sqrt(D)
        out = torch.nn.functional.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=causal
        )
        return out.transpose(1, 2)

    mod.flash_attn_func = flash_attn_func
    return mod


def import_reference(repo: Path, arch_name: str):
    """Import the class an arch name points at (`hrm.hrm_act_v1@Cls` -> models.hrm.hrm_act_v1.Cls), as the
    reference training code does, from a checked-out repo (both repos use the top-level name `models`)."""
    for name in [m for m in sys.modules if m == "models" or m.startswith("models.")]:
        del sys.modules[name]
    sys.modules.setdefault("flash_attn", _flash_attn_stub())
    sys.path.insert(0, str(repo))
    try:
        module_name, cls = arch_name.split("@")
        module = __import__("models." + module_name, fromlist=[cls])
        return getattr(module, cls)
    finally:
        sys.path.remove(str(repo))


def reference_rollout(ref_cls, arch: dict, sd: dict, inputs: torch.Tensor, steps: int, prefix: str):
    cfg = {k: v for k, v in arch.items() if k not in ("name", "loss")}
    cfg.update(
        batch_size=inputs.shape[0],
        seq_len=inputs.shape[1],
        vocab_size=sd[prefix + "embed_tokens.embedding_weight"].shape[0],
        num_puzzle_identifiers=sd[prefix + "puzzle_emb.weights"].shape[0],
        halt_exploration_prob=0.1,
    )
    model = ref_cls(cfg)
    # The reference evaluate.py strips `_orig_mod.`; the ACTLossHead wrapper adds `model.`.
    inner = {k[len(prefix) :]: v for k, v in sd.items()}
    missing, unexpected = model.inner.load_state_dict(inner, strict=False)
    assert not unexpected and all("local_" in m or "cached" in m for m in missing), (missing, unexpected)
    model.eval()
    batch = {
        "inputs": inputs.int(),
        "labels": inputs.int(),
        "puzzle_identifiers": torch.zeros(inputs.shape[0], dtype=torch.int32),
    }
    carry = model.initial_carry(batch)
    logits, qs = [], []
    with torch.no_grad():
        for _ in range(steps):
            carry, out = model(carry, batch)
            logits.append(out["logits"].float())
            qs.append(torch.stack([out["q_halt_logits"], out["q_continue_logits"]], -1).float())
    return logits, qs


def compare(
    name: str,
    model_dir: Path | None,
    family_preset: dict | None,
    repos: dict[str, Path],
    dtype: str,
    inputs: torch.Tensor,
    steps: int,
) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if model_dir is None:  # random init (per-step parity only: random recursive models are chaotic)
            torch.manual_seed(0)
            src = build_act_model(ACTConfig(**family_preset))
            save_act(src, Path(tmp) / "src")
            model_dir = Path(tmp) / "src"
        raw = yaml.safe_load((model_dir / "all_config.yaml").read_text())
        base = load_model(model_dir)
        # sapientinc/HRM for `hrm.hrm_act_v1`; the TRM repository for `recursive_reasoning.*` (its TRM and HRM copy)
        repo = repos["hrm"] if raw["arch"]["name"].startswith("hrm.") else repos["trm"]
        ref_cls = import_reference(repo, raw["arch"]["name"])
        arch = {**raw["arch"], "forward_dtype": dtype}
        plain = base.state_dict()
        for prefix in ("_orig_mod.model.inner.", "model.inner."):
            ckpt_dir = Path(tmp) / prefix.strip(".").replace(".", "_")
            ckpt_dir.mkdir()
            sd = {prefix + k: v.clone() for k, v in plain.items()}
            torch.save(sd, ckpt_dir / "step_1000")
            (ckpt_dir / "all_config.yaml").write_text(yaml.safe_dump({"arch": arch, "edgekit": raw.get("edgekit", {})}))
            ours = load_model(ckpt_dir)  # through the reference-format loader
            r = ours.rollout(inputs, steps, keep_states=True)
            # both q logits per step (the rollout keeps only the combined halting logit)
            with torch.no_grad():
                q_steps = [ours.q_logits(state) for state in r.states]
            ref_logits, ref_q = reference_rollout(
                ref_cls,
                arch,
                sd,
                inputs,
                steps,
                "_orig_mod.model.inner." if prefix.startswith("_orig") else "model.inner.",
            )
            for t in (0, steps - 1):
                a, b = r.logits[t].float(), ref_logits[t]
                rows.append(
                    {
                        "model": name,
                        "dtype": dtype,
                        "prefix": prefix,
                        "step": t + 1,
                        "max_abs_dlogits": float((a - b).abs().max()),
                        "max_abs_dq": float((q_steps[t] - ref_q[t]).abs().max()),
                        "argmax_agreement": float((a.argmax(-1) == b.argmax(-1)).float().mean()),
                        "bitwise_equal": bool(torch.equal(a, b)),
                    }
                )
        # Negative control: the comparison must see a 1e-3 change of one weight in the reference copy.
        pre = "model.inner."
        sd = {pre + k: v.clone() for k, v in plain.items()}
        sd[pre + "lm_head.weight"] += 1e-3
        bad_logits, _ = reference_rollout(ref_cls, arch, sd, inputs, 1, pre)
        control = float((ours.rollout(inputs, 1).logits[0].float() - bad_logits[0]).abs().max())
        if control == 0.0:
            raise SystemExit(f"negative control failed for {name}: a perturbed reference gave identical logits")
        rows[-1]["negative_control_dlogits"] = control
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hrm-repo", type=Path, required=True)
    ap.add_argument("--trm-repo", type=Path, required=True)
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--extra", type=Path, nargs="*", default=[], help="more checkpoint folders to compare")
    args = ap.parse_args(argv)
    pool = sudoku.SudokuPool.generate(args.n, seed=7)
    inputs = torch.from_numpy(pool.sample(args.n, (28, 40), np.random.default_rng(7))[0])
    models = Path(__file__).parent / "models"
    att = {
        "family": "trm",
        "seq_len": 81,
        "vocab_size": 11,
        "puzzle_emb_ndim": 128,
        "H_cycles": 2,
        "L_cycles": 3,
        "L_layers": 2,
        "hidden_size": 128,
        "expansion": 4,
        "num_heads": 4,
        "pos_encodings": "rope",
        "halt_max_steps": 16,
        "forward_dtype": "float32",
    }
    hrm_att = {**att, "family": "hrm", "H_layers": 2, "H_cycles": 2, "L_cycles": 2}
    # the Sudoku demos only: the inputs are Sudoku puzzles (examples/make_arc_dataset.py writes its random ARC model
    # beside them, which takes 900-cell grids)
    demos = sorted(models.glob("*-sudoku"))
    cases = [(f"{d.name} (demo)", d, None) for d in demos if (d / "all_config.yaml").is_file()]
    cases += [(f"{d.name} (extra)", d, None) for d in args.extra]
    cases += [("trm-att (random init)", None, att), ("hrm-att (random init)", None, hrm_att)]
    repos = {"hrm": args.hrm_repo, "trm": args.trm_repo}
    rows = []
    for dtype in ("float32", "bfloat16"):
        for name, d, preset in cases:
            rows += compare(name, d, preset, repos, dtype, inputs, args.steps)
    print(
        f"{'model':26} {'dtype':9} {'prefix':24} {'step':>4} {'max|dlogits|':>12} {'max|dq|':>10} {'argmax':>7} bitwise"
    )
    for r in rows:
        print(
            f"{r['model']:26} {r['dtype']:9} {r['prefix']:24} {r['step']:>4} "
            f"{r['max_abs_dlogits']:12.3e} {r['max_abs_dq']:10.3e} {r['argmax_agreement']:7.4f} {r['bitwise_equal']}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
