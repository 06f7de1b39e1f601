"""Random-init checkpoints written the way the reference training runs write them (never committed): a
`torch.save(state_dict)` file named `checkpoint` or `step_<N>` with `_orig_mod.model.inner.` keys, next to an
`all_config.yaml` that has no edgekit section (the reference records neither seq_len nor vocab_size)."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
import yaml

from edgekit.models.act import build_act_model
from edgekit.models.checkpoint import save_act
from edgekit.models.config import ACTConfig

# Official sizes: the configurations the references train and publish.
OFFICIAL = {
    "hrm-sudoku": {
        "family": "hrm",
        "seq_len": 81,
        "vocab_size": 11,
        "hidden_size": 512,
        "num_heads": 8,
        "H_layers": 4,
        "L_layers": 4,
        "H_cycles": 2,
        "L_cycles": 2,
        "expansion": 4,
        "pos_encodings": "rope",
        "puzzle_emb_ndim": 512,
    },
    "trm-att-maze": {
        "family": "trm",
        "seq_len": 900,
        "vocab_size": 6,
        "hidden_size": 512,
        "num_heads": 8,
        "L_layers": 2,
        "H_cycles": 3,
        "L_cycles": 4,
        "expansion": 4,
        "pos_encodings": "rope",
        "puzzle_emb_ndim": 512,
        "puzzle_emb_len": 16,
    },
    "trm-mlp-sudoku": {
        "family": "trm",
        "seq_len": 81,
        "vocab_size": 11,
        "hidden_size": 512,
        "num_heads": 8,
        "L_layers": 2,
        "H_cycles": 3,
        "L_cycles": 6,
        "expansion": 4,
        "pos_encodings": "none",
        "mlp_t": True,
        "puzzle_emb_ndim": 512,
        "puzzle_emb_len": 16,
    },
}


def write_reference_checkpoint(
    folder: Path,
    config: dict,
    name: str = "checkpoint",
    prefix: str = "_orig_mod.model.inner.",
    seed: int = 0,
    top: dict | None = None,
) -> Path:
    """Write a random-init model as the reference does; returns the folder. `top`: extra top-level config keys
    (e.g. {"ema": True}: TRM then saves the EMA copy, whose keys are the model's own)."""
    torch.manual_seed(seed)
    cfg = ACTConfig(**{"forward_dtype": "bfloat16", **config})
    model = build_act_model(cfg)
    src = folder.parent / f".{folder.name}-src"
    save_act(model, src)
    arch = yaml.safe_load((src / "all_config.yaml").read_text())["arch"]
    shutil.rmtree(src)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({prefix + k: v for k, v in model.state_dict().items()}, folder / name)
    doc = {"arch": arch, "global_batch_size": 768, "lr": 1e-4, "epochs": 20000, **(top or {})}
    (folder / "all_config.yaml").write_text(yaml.safe_dump(doc))
    return folder
