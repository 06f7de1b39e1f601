"""Load and save recursive-model checkpoints safely.

Accepted: reference-format state dicts (`torch.save(state_dict)` of the compiled ACTLossHead, keys prefixed
`_orig_mod.model.inner.` or `model.inner.`), plain key sets, and safetensors files; each next to an
`all_config.yaml` whose `arch` section describes the model. Sizes the references keep outside that file
(vocab, sequence length, puzzle ids) are read from tensor shapes. Pickles are only ever loaded with
`weights_only=True`, so a file carrying code cannot run it.
"""

from __future__ import annotations

import json
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
import yaml
from pydantic import ValidationError

from ..errors import CheckpointError, first_line
from ..safe_yaml import YAMLFileError, load_yaml_file
from .act import ACTModel, build_act_model
from .config import ACTConfig
from .families import get_family

PREFIXES = ("_orig_mod.model.inner.", "model.inner.", "_orig_mod.", "inner.")
WEIGHT_NAMES = ("model.safetensors", "checkpoint", "model.pt", "model.pth")
CONFIG_NAME = "all_config.yaml"


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file, prefixes stripped. Never executes code from the file."""
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {path} does not exist",
            "check the path (a folder with model.safetensors or step_N, or the file itself)",
        )
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty", "re-copy or re-save the checkpoint")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path), device="cpu")
        else:
            with warnings.catch_warnings():  # torch warns about old pickle protocols; the error below says it all
                warnings.simplefilter("ignore")
                sd = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"checkpoint {path} contains objects that safe loading refuses "
            f"({first_line(e, default='unsupported content')})",
            "save only the state_dict (torch.save(model.state_dict(), ...)) or convert to safetensors; "
            "edgekit never unpickles code",
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt ({first_line(e)})", "re-copy or re-save the checkpoint"
        ) from None
    except Exception as e:  # safetensors raises its own error type
        raise CheckpointError(
            f"checkpoint {path} could not be read ({type(e).__name__}: {first_line(e)})",
            "re-copy or re-save the checkpoint",
        ) from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()):
        raise CheckpointError(
            f"checkpoint {path} is not a state dict of tensors",
            "save model.state_dict(), not the module or a training state",
        )
    return strip_prefixes(sd)


def strip_prefixes(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in sd.items():
        for p in PREFIXES:
            if k.startswith(p):
                k = k[len(p) :]
                break
        out[k] = v
    return out


def find_files(path: Path) -> tuple[Path, Path | None]:
    """(weights file, config file or None) for a checkpoint folder or file."""
    if path.is_dir():
        for name in WEIGHT_NAMES:
            if (path / name).is_file():
                weights = path / name
                break
        else:
            steps = sorted(
                path.glob("step_*"), key=lambda p: int(p.name.split("_")[1]) if p.name.split("_")[1].isdigit() else -1
            )
            steps = [p for p in steps if p.is_file() and p.name.split("_")[1].isdigit()]
            if not steps:
                raise CheckpointError(
                    f"no checkpoint file in {path}", f"expected one of {', '.join(WEIGHT_NAMES)} or step_<N>"
                )
            weights = steps[-1]
        folder = path
    else:
        weights, folder = path, path.parent
    cfg = folder / CONFIG_NAME
    return weights, (cfg if cfg.is_file() else None)


def read_config(path: Path) -> dict[str, Any]:
    try:
        data = load_yaml_file(path, "checkpoint config")
    except YAMLFileError as e:
        raise CheckpointError(e.problem, "use the all_config.yaml written by the reference training run") from None
    if not isinstance(data, dict) or not isinstance(data.get("arch"), dict):
        raise CheckpointError(
            f"{path} has no 'arch' section", "use the all_config.yaml written by the reference training run"
        )
    return data


def _family(arch: dict[str, Any]) -> str:
    """The registered family whose reference module path is exactly arch.name's (models/families.py)."""
    from .families import family_for_arch

    return family_for_arch(str(arch.get("name", ""))).name


def infer_act_config(
    arch: dict[str, Any], sd: dict[str, torch.Tensor], seq_len: int | None = None, extra: dict[str, Any] | None = None
) -> ACTConfig:
    """Reference arch section + tensor shapes (+ an explicit seq_len where shapes cannot tell) -> ACTConfig."""
    family = _family(arch)
    fields = set(ACTConfig.model_fields)
    cfg = {k: v for k, v in arch.items() if k in fields}
    cfg["family"] = family
    if family == "hrm":
        cfg.pop("puzzle_emb_len", None)  # HRM always uses ceil(puzzle_emb_ndim / hidden) prefix rows
    if isinstance(cfg.get("puzzle_emb_ndim"), str):  # "${.hidden_size}" left unresolved by a hand-written config
        cfg["puzzle_emb_ndim"] = cfg.get("hidden_size")
    emb = sd.get("embed_tokens.embedding_weight")
    if emb is None:
        raise CheckpointError(
            "checkpoint has no embed_tokens.embedding_weight",
            "is this an HRM/TRM checkpoint? keys start with _orig_mod.model.inner.",
        )
    cfg["vocab_size"] = int(emb.shape[0])
    if "hidden_size" in cfg and int(emb.shape[1]) != int(cfg["hidden_size"]):
        raise CheckpointError(
            f"embed_tokens.embedding_weight has width {emb.shape[1]} but arch.hidden_size is {cfg['hidden_size']}",
            "use the all_config.yaml that belongs to this checkpoint",
        )
    pe = sd.get("puzzle_emb.weights")
    if pe is not None:
        cfg["num_puzzle_identifiers"] = int(pe.shape[0])
        cfg["puzzle_emb_ndim"] = int(pe.shape[1])
    else:
        cfg["puzzle_emb_ndim"] = 0
    if "batch_size" in arch:
        pass  # only sizes the reference's training buffers
    try:
        probe = ACTConfig(**{**cfg, "seq_len": 1})
    except ValidationError as e:
        raise CheckpointError(
            f"arch section does not describe a valid model: {_first_error(e)}", "check all_config.yaml"
        ) from None
    prefix = probe.prefix_len
    inferred = None
    t = sd.get("L_level.layers.0.mlp_t.gate_up_proj.weight")
    if family == "trm" and cfg.get("mlp_t") and t is not None:
        inferred = int(t.shape[1]) - prefix
    elif "embed_pos.embedding_weight" in sd:
        inferred = int(sd["embed_pos.embedding_weight"].shape[0]) - prefix
    if inferred is not None and seq_len is not None and inferred != seq_len:
        raise CheckpointError(
            f"checkpoint was trained for sequence length {inferred}, but {seq_len} was requested",
            "drop the explicit seq_len or use a matching task",
        )
    seq = inferred or seq_len or (extra or {}).get("seq_len")
    if not seq:
        raise CheckpointError(
            "sequence length cannot be read from a RoPE checkpoint",
            "set model.seq_len in the recipe (Sudoku 81, Maze 900) or edgekit.seq_len in all_config.yaml",
        )
    cfg["seq_len"] = int(seq)
    try:
        return ACTConfig(**cfg)
    except ValidationError as e:
        raise CheckpointError(
            f"arch section does not describe a valid model: {_first_error(e)}", "check all_config.yaml"
        ) from None


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    return f"{loc}: {err['msg']}" if loc else err["msg"]


MAX_ABS_WEIGHT = 1e4  # trained weights (and the learned initial states) are O(1); 1e4 is far outside any of them


def load_into(model: torch.nn.Module, sd: dict[str, torch.Tensor], source: str) -> None:
    """Strict load that names the first missing, unexpected or mis-shaped key instead of a torch traceback."""
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    if missing:
        raise CheckpointError(
            f"{source} lacks tensor {missing[0]!r} ({len(missing)} missing)",
            "the checkpoint does not match the architecture config; use the matching all_config.yaml",
        )
    if unexpected:
        raise CheckpointError(
            f"{source} has unexpected tensor {unexpected[0]!r} ({len(unexpected)} unexpected)",
            "the checkpoint does not match the architecture config (e.g. layers, mlp_t, pos_encodings)",
        )
    for k, v in own.items():
        if tuple(sd[k].shape) != tuple(v.shape):
            raise CheckpointError(
                f"{source}: tensor {k!r} has shape {tuple(sd[k].shape)}, the config expects {tuple(v.shape)}",
                "the checkpoint does not match the architecture config (hidden_size, expansion, heads, seq_len)",
            )
        if v.is_floating_point() and not sd[k].is_floating_point():
            raise CheckpointError(
                f"{source}: tensor {k!r} is {str(sd[k].dtype).removeprefix('torch.')}, the model needs floating point",
                "the checkpoint was cast or corrupted; use the file the training run saved",
            )
        if not torch.isfinite(sd[k].float()).all():
            raise CheckpointError(
                f"{source}: tensor {k!r} contains NaN or Inf",
                "the checkpoint is corrupt or training diverged; use an earlier checkpoint",
            )
        peak = float(sd[k].float().abs().max()) if sd[k].numel() else 0.0
        if peak > MAX_ABS_WEIGHT:
            raise CheckpointError(
                f"{source}: tensor {k!r} holds a value of magnitude {peak:.3g} (limit {MAX_ABS_WEIGHT:g})",
                "no trained HRM/TRM/DEQ has weights that large; the checkpoint is corrupt",
            )
    with torch.no_grad():
        for k, v in own.items():
            if k in ("H_init", "L_init"):
                setattr(model, k, sd[k].clone())  # initial states keep their stored dtype (bf16 in references)
            else:
                v.copy_(sd[k].to(v.dtype))


def load_act(
    path: str | Path, seq_len: int | None = None, forward_dtype: str | None = None, data_seq_len: int | None = None
) -> ACTModel:
    """Load an HRM/TRM checkpoint folder or file into an eval-mode ACTModel. The sequence length comes from the
    weights' shapes, else `seq_len`, else all_config.yaml's edgekit section, else the task data's dataset.json
    (`data_seq_len`): reference configs do not record it, the dataset the model was trained on does."""
    path = Path(path)
    weights, cfg_path = find_files(path)
    if cfg_path is None:
        raise CheckpointError(
            f"no {CONFIG_NAME} next to {weights}",
            f"put the reference run's {CONFIG_NAME} (its arch section) beside the checkpoint",
        )
    raw = read_config(cfg_path)
    sd = read_state_dict(weights)
    arch = dict(raw["arch"])
    if forward_dtype:
        arch["forward_dtype"] = forward_dtype
    section = raw.get("edgekit")
    extra: dict[str, Any] = section if isinstance(section, dict) else {}
    if data_seq_len and "seq_len" not in extra:
        extra = {**extra, "seq_len": data_seq_len}
    config = infer_act_config(arch, sd, seq_len, extra)
    model = build_act_model(config)
    load_into(model, sd, str(weights))
    return model.eval().requires_grad_(False)


def save_act(model: ACTModel, folder: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write model.safetensors + a reference-style all_config.yaml (with an `edgekit` section)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    c = model.config
    arch = c.model_dump()
    family = arch.pop("family")
    saved_name = get_family(family).saved_arch_name
    if saved_name is None:
        raise CheckpointError(f"model family {family!r} has no reference arch name to save", "save it another way")
    arch = {
        "name": saved_name(c),
        "loss": {"name": "losses@ACTLossHead", "loss_type": "stablemax_cross_entropy"},
        **arch,
    }
    arch.pop("seq_len")
    arch.pop("vocab_size")
    arch.pop("num_puzzle_identifiers")
    if family == "hrm":
        if not c.mlp_t:
            arch.pop("mlp_t")
        arch.pop("puzzle_emb_len")
        arch.pop("no_ACT_continue")
    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(sd, str(folder / "model.safetensors"))
    doc = {"arch": arch, "edgekit": {"seq_len": c.seq_len, **(metadata or {})}}
    (folder / CONFIG_NAME).write_text(yaml.safe_dump(json.loads(json.dumps(doc)), sort_keys=False))
    return folder / "model.safetensors"


DEQ_CONFIG_NAME = "deq_config.yaml"


def save_deq(model, config, folder: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write model.safetensors + deq_config.yaml for a demo DEQ built by `build_deq`."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    doc = {"deq": config.model_dump(), "edgekit": metadata or {}}
    (folder / DEQ_CONFIG_NAME).write_text(yaml.safe_dump(json.loads(json.dumps(doc)), sort_keys=False))
    return folder / "model.safetensors"


def load_deq(path: str | Path):
    from pydantic import ValidationError as _VE

    from .config import DEQConfig
    from .deq import build_deq

    folder = Path(path) if Path(path).is_dir() else Path(path).parent
    cfg_path = folder / DEQ_CONFIG_NAME
    if not cfg_path.is_file():
        raise CheckpointError(
            f"no {DEQ_CONFIG_NAME} in {folder}", "a DEQ checkpoint folder holds model.safetensors and deq_config.yaml"
        )
    try:
        raw = load_yaml_file(cfg_path, "DEQ config") or {}
        config = DEQConfig(**raw.get("deq", {}))
    except YAMLFileError as e:
        raise CheckpointError(e.problem, "re-save the model with examples/train_digits_deq.py") from None
    except (_VE, TypeError, AttributeError) as e:
        raise CheckpointError(
            f"{cfg_path} is invalid ({first_line(e)})", "re-save the model with examples/train_digits_deq.py"
        ) from None
    model = build_deq(config)
    weights = Path(path) if Path(path).is_file() else folder / "model.safetensors"
    load_into(model, read_state_dict(weights), str(weights))
    return model.eval().requires_grad_(False)


def load_model(
    path: str | Path, seq_len: int | None = None, forward_dtype: str | None = None, data_seq_len: int | None = None
):
    """Any supported checkpoint folder or file -> eval-mode RecursiveModel (HRM, TRM or DEQ)."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint {p} does not exist", "check the model path in the recipe")
    folder = p if p.is_dir() else p.parent
    if (folder / DEQ_CONFIG_NAME).is_file():
        return load_deq(p)
    return load_act(p, seq_len=seq_len, forward_dtype=forward_dtype, data_seq_len=data_seq_len)
