"""Model configurations as versioned data (pydantic), mirroring the reference `arch` sections."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ComputeDtype = Literal["float32", "bfloat16", "float16"]


class ACTConfig(BaseModel):
    """Architecture of an HRM or TRM ACT model. Field names follow the reference configs so an
    `all_config.yaml` arch section maps onto it directly; sizes missing there come from tensor shapes."""

    model_config = ConfigDict(extra="forbid")

    family: str  # a registered token-input family (models/families.py): trm, hrm
    # Bounds: far above any published model, low enough that a hostile config cannot hang the loader.
    seq_len: int = Field(gt=0, le=65536)
    vocab_size: int = Field(gt=1, le=1_000_000)
    num_puzzle_identifiers: int = Field(default=1, ge=1, le=50_000_000)
    puzzle_emb_ndim: int = Field(default=0, ge=0, le=65536)
    puzzle_emb_len: int = Field(
        default=16, ge=0, le=1024, description="TRM only: prefix rows (0 = ceil(ndim / hidden))"
    )
    H_cycles: int = Field(gt=0, le=64)
    L_cycles: int = Field(gt=0, le=64)
    H_layers: int = Field(default=0, ge=0, le=256)
    L_layers: int = Field(gt=0, le=256)
    hidden_size: int = Field(gt=0, le=65536)
    expansion: float = Field(gt=0, le=64)
    num_heads: int = Field(gt=0, le=1024)
    pos_encodings: Literal["rope", "learned", "none"] = "rope"
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    halt_max_steps: int = Field(default=16, gt=0, le=10_000)
    forward_dtype: ComputeDtype = "bfloat16"
    mlp_t: bool = False
    no_ACT_continue: bool = True

    @model_validator(mode="after")
    def _check(self) -> ACTConfig:
        from .families import FAMILIES

        act = sorted(n for n, f in FAMILIES.items() if f.contract == "tokens")
        if self.family not in act:
            raise ValueError(f"family {self.family!r} is not one of {', '.join(act)}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if self.family == "hrm" and self.H_layers == 0:
            raise ValueError("HRM needs H_layers > 0")
        if self.family == "hrm" and self.pos_encodings == "none" and not self.mlp_t:
            raise ValueError(
                "an attention HRM needs pos_encodings rope or learned (sapientinc/HRM raises on anything else)"
            )
        if self.prefix_len and self.puzzle_emb_ndim == 0:
            raise ValueError("puzzle_emb_len > 0 needs puzzle_emb_ndim > 0 (the reference would mis-shape its carry)")
        return self

    @property
    def prefix_len(self) -> int:
        """Rows of puzzle embedding prepended to the sequence: HRM 1 (ceil), TRM `puzzle_emb_len` (16)."""
        ceil = -(self.puzzle_emb_ndim // -self.hidden_size)
        if self.family == "hrm" or self.puzzle_emb_len == 0:
            return ceil
        return self.puzzle_emb_len

    @property
    def total_len(self) -> int:
        return self.seq_len + self.prefix_len


class SolverConfig(BaseModel):
    """How a DEQ's fixed point is found: the settings an artefact records and the runtime reproduces."""

    model_config = ConfigDict(extra="forbid")

    name: Literal["fixed_point", "anderson"] = "fixed_point"
    max_iter: int = Field(default=40, gt=0, le=100_000)
    tol: float = Field(default=1e-3, ge=0)
    stop_mode: Literal["rel", "abs"] = "rel"
    damping: float = Field(default=1.0, gt=0, le=1, description="tau: z <- tau f(z) + (1 - tau) z")
    anderson_m: int = Field(default=5, ge=1, le=64)
    anderson_lam: float = Field(default=1e-4, ge=0)
    anderson_beta: float = Field(default=1.0, gt=0)


class DEQConfig(BaseModel):
    """A small DEQ classifier: encoder -> fixed point of f(z, x) -> linear head."""

    model_config = ConfigDict(extra="forbid")

    family: Literal["deq"] = "deq"
    in_features: int = Field(gt=0, le=1 << 20)
    hidden_size: int = Field(gt=0, le=65536)
    num_classes: int = Field(gt=1, le=1_000_000)
    solver: SolverConfig = SolverConfig()
