"""Loading reference-format checkpoints safely, and refusing bad ones with one clear line."""

from pathlib import Path

import pytest
import torch
import yaml

from edgekit.errors import CheckpointError
from edgekit.models.act import build_act_model
from edgekit.models.checkpoint import load_model, save_act
from edgekit.models.config import ACTConfig


def _cfg(**kw):
    base = {
        "family": "trm",
        "seq_len": 81,
        "vocab_size": 11,
        "puzzle_emb_ndim": 32,
        "H_cycles": 1,
        "L_cycles": 2,
        "L_layers": 1,
        "hidden_size": 32,
        "expansion": 2,
        "num_heads": 2,
        "mlp_t": True,
        "pos_encodings": "none",
        "forward_dtype": "float32",
    }
    return ACTConfig(**{**base, **kw})


def _reference_dir(tmp: Path, model, prefix: str, name="step_100", arch_override=None) -> Path:
    """Write a checkpoint the way the reference training does: torch.save(state_dict) + all_config.yaml."""
    save_act(model, tmp / "src")
    raw = yaml.safe_load((tmp / "src" / "all_config.yaml").read_text())
    arch = {**raw["arch"], **(arch_override or {})}
    d = tmp / "ref"
    d.mkdir(exist_ok=True)
    torch.save({prefix + k: v for k, v in model.state_dict().items()}, d / name)
    (d / "all_config.yaml").write_text(yaml.safe_dump({"arch": arch, "global_batch_size": 768, "lr": 1e-4}))
    return d


@pytest.mark.parametrize("prefix", ["_orig_mod.model.inner.", "model.inner.", ""])
def test_reference_checkpoint_roundtrip_gives_identical_outputs(tmp_path, prefix):
    torch.manual_seed(0)
    m = build_act_model(_cfg()).eval()
    d = _reference_dir(tmp_path, m, prefix)
    loaded = load_model(d)  # seq_len inferred from the mlp_t weight shape, vocab from the embedding
    assert loaded.config.seq_len == 81 and loaded.config.vocab_size == 11
    x = torch.randint(1, 11, (3, 81))
    a, b = m.rollout(x, 3), loaded.rollout(x, 3)
    assert all(torch.equal(p, q) for p, q in zip(a.logits, b.logits))


def test_safetensors_and_latest_step_file_are_found(tmp_path):
    torch.manual_seed(0)
    m = build_act_model(_cfg())
    save_act(m, tmp_path / "st")
    assert load_model(tmp_path / "st").config.hidden_size == 32
    d = _reference_dir(tmp_path, m, "model.inner.", name="step_5")
    torch.save({"model.inner." + k: v * 0 for k, v in m.state_dict().items()}, d / "step_40")
    loaded = load_model(d)  # must pick step_40 (numeric order, not lexicographic)
    assert float(loaded.lm_head.weight.detach().abs().sum()) == 0.0


def test_rope_checkpoint_needs_explicit_seq_len(tmp_path):
    m = build_act_model(_cfg(mlp_t=False, pos_encodings="rope"))
    save_act(m, tmp_path / "m")
    cfg_file = tmp_path / "m" / "all_config.yaml"
    raw = yaml.safe_load(cfg_file.read_text())
    del raw["edgekit"]["seq_len"]
    cfg_file.write_text(yaml.safe_dump(raw))
    with pytest.raises(CheckpointError, match="sequence length cannot be read"):
        load_model(tmp_path / "m")
    assert load_model(tmp_path / "m", seq_len=81).config.seq_len == 81


def test_shape_mismatch_names_the_key(tmp_path):
    m = build_act_model(_cfg())
    d = _reference_dir(tmp_path, m, "_orig_mod.model.inner.", arch_override={"expansion": 4})
    with pytest.raises(CheckpointError, match=r"L_level\.layers\.0\.mlp_t\.gate_up_proj\.weight.*shape"):
        load_model(d)


def test_missing_key_is_named(tmp_path):
    m = build_act_model(_cfg())
    d = _reference_dir(tmp_path, m, "model.inner.")
    sd = torch.load(d / "step_100", weights_only=True)
    del sd["model.inner.q_head.bias"]
    torch.save(sd, d / "step_100")
    with pytest.raises(CheckpointError, match="q_head.bias"):
        load_model(d)


def test_truncated_checkpoint(tmp_path):
    m = build_act_model(_cfg())
    d = _reference_dir(tmp_path, m, "model.inner.")
    data = (d / "step_100").read_bytes()
    (d / "step_100").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_model(d)


def test_nan_weights_are_refused(tmp_path):
    m = build_act_model(_cfg())
    with torch.no_grad():
        m.lm_head.weight[0, 0] = float("nan")
    d = _reference_dir(tmp_path, m, "model.inner.")
    with pytest.raises(CheckpointError, match="NaN"):
        load_model(d)


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/edgekit_pwned_marker",))


def test_pickle_with_code_is_not_executed(tmp_path):
    marker = Path("/tmp/edgekit_pwned_marker")
    marker.unlink(missing_ok=True)
    m = build_act_model(_cfg())
    d = _reference_dir(tmp_path, m, "model.inner.")
    sd = torch.load(d / "step_100", weights_only=True)
    sd["evil"] = _Evil()
    torch.save(sd, d / "step_100")
    with pytest.raises(CheckpointError, match="safe loading refuses"):
        load_model(d)
    assert not marker.exists()


def test_unsupported_variant_and_missing_config(tmp_path):
    m = build_act_model(_cfg())
    d = _reference_dir(tmp_path, m, "model.inner.", arch_override={"name": "recursive_reasoning.trm_hier6@X"})
    with pytest.raises(CheckpointError, match="not supported"):
        load_model(d)
    (d / "all_config.yaml").unlink()
    with pytest.raises(CheckpointError, match="all_config.yaml"):
        load_model(d)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "nope")
