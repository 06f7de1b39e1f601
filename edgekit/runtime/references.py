"""references.npz: what validation measured per example, so `edgekit verify --full` can re-apply the artefact's own
gates on a device with the runtime alone (no PyTorch, no task data, no recipe).

Recorded by the validation stage (`Recorder`), listed and hashed in manifest.json like golden.npz:

- the validation examples: `inputs`, `labels`, `puzzle_ids` (models that take them), in the smallest integer type
  that holds them;
- per implementation (`reference`: the PyTorch model the gates compare with; then every ONNX variant as the export
  ran it; then each backend configuration validated, e.g. `openvino-bf16`, listed in `meta.configurations` with
  the variant whose graphs it ran, its backend and precision) its `Answers`: predictions at the full budget
  (`<key>/full`), at each example's halting step (`<key>/halted`), the halting step (`<key>/steps`) and the last
  step's halting logit (`<key>/q_full`, what ARC votes break ties with) — predictions, not logits: uint8 tokens
  compress well;
- `meta` (UTF-8 JSON): the gates' settings, threshold, budget and batch size, the reference's and variants' names,
  the export's gate records, ARC identifier names.

At most MAX_EXAMPLES examples are recorded: the first MAX_EXAMPLES of the validation set (the order validation ran
them in), and `meta` says how many of how many were kept. Numpy and the standard library only.
"""

from __future__ import annotations

import io
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..manifest import InputContract
from .errors import ArtefactError
from .gate_eval import halting_steps

REFERENCES = "references.npz"
KEY = "references"  # its key in manifest.json's files and sha256
FORMAT = 1
MAX_EXAMPLES = 16_384
MAX_META_BYTES = 16 << 20
REFERENCE = "reference"  # the implementation key of the PyTorch reference
MAX_CONFIGURATIONS = 8  # recorded backend configurations (validate.openvino: at most 4)


class Rollout(Protocol):
    """Per-step predictions and halting logits of one implementation (validate.compare.Variant, RunResult)."""

    preds: list[np.ndarray]
    halt: list[np.ndarray]


def _unsigned(a: np.ndarray) -> np.ndarray:
    """Non-negative integers in the smallest unsigned type that holds them (predictions, steps, tokens)."""
    top = int(a.max()) if a.size else 0
    for t in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(t).max:
            return a.astype(t)
    return a.astype(np.int64)


def _compact(a: np.ndarray) -> np.ndarray:
    """An integer array in the smallest type that holds its values exactly; anything else unchanged."""
    a = np.asarray(a)
    if a.dtype.kind not in "iu" or a.size == 0:
        return a
    if int(a.min()) >= 0:
        return _unsigned(a)
    lo, hi = int(a.min()), int(a.max())
    for t in (np.int8, np.int16, np.int32):
        if np.iinfo(t).min <= lo and hi <= np.iinfo(t).max:
            return a.astype(t)
    return a.astype(np.int64)


@dataclass
class Answers:
    """What one implementation answered per example, reduced to what the gates read."""

    full: np.ndarray  # [N, ...] predictions after the whole step budget
    halted: np.ndarray | None = None  # [N, ...] predictions at each example's halting step (None: no halting)
    steps: np.ndarray | None = None  # [N] 1-based halting step (the budget where an example never halts)
    q_full: np.ndarray | None = None  # [N] halting logit after the last step

    @classmethod
    def of(cls, r: Rollout, threshold: float) -> Answers:
        """Reduce a per-step rollout: the halting step is the first with halting logit > threshold, exactly as
        validation's metrics choose it."""
        n = len(r.preds[-1])
        full = np.asarray(r.preds[-1]).reshape(n, -1)
        if not r.halt:
            return cls(full)
        q = np.stack([np.asarray(h).reshape(n) for h in r.halt])
        steps = halting_steps(q, threshold)
        halted = np.stack([np.asarray(p).reshape(n, -1) for p in r.preds])[steps - 1, np.arange(n)]
        return cls(full, halted, steps, q[-1])

    @staticmethod
    def concatenate(parts: Sequence[Answers]) -> Answers:
        def cat(name: str) -> np.ndarray | None:
            arrays = [getattr(p, name) for p in parts]
            return None if any(a is None for a in arrays) else np.concatenate(arrays)

        full = cat("full")
        assert full is not None
        return Answers(full, cat("halted"), cat("steps"), cat("q_full"))

    def arrays(self, key: str) -> dict[str, np.ndarray]:
        out = {f"{key}/full": _unsigned(self.full)}
        if self.halted is not None and self.steps is not None and self.q_full is not None:
            out |= {
                f"{key}/halted": _unsigned(self.halted),
                f"{key}/steps": _unsigned(self.steps),
                f"{key}/q_full": self.q_full,
            }
        return out


class Recorder:
    """Collects the reference's and each variant's answers during validation (each rollout is reduced as soon as
    it is added: the stage never holds more than one variant's per-step predictions for this) and writes
    references.npz."""

    def __init__(
        self,
        inputs: np.ndarray,
        labels: np.ndarray,
        threshold: float,
        puzzle_ids: np.ndarray | None = None,
        names: Sequence[str] | None = None,
        cap: int = MAX_EXAMPLES,
    ) -> None:
        self.total = len(inputs)
        self.n = min(self.total, cap)
        self.threshold = threshold
        self.arrays: dict[str, np.ndarray] = {
            "inputs": _compact(np.asarray(inputs)[: self.n]),
            "labels": _compact(np.asarray(labels)[: self.n]),
        }
        if puzzle_ids is not None:
            self.arrays["puzzle_ids"] = _compact(np.asarray(puzzle_ids)[: self.n])
        self.names: dict[str, str] | None = None
        if names is not None and puzzle_ids is not None:  # ARC: identifier names carry each copy's augmentation
            self.names = {str(int(i)): str(s) for i, s in zip(puzzle_ids[: self.n], names[: self.n])}
        self.entries: dict[str, str] = {}
        self.thresholds: dict[str, float] = {}  # variants validated at their own threshold
        self.configurations: dict[str, dict[str, str]] = {}  # validate.openvino's: name -> variant, backend, precision

    def add(self, key: str, name: str, rollout: Rollout, threshold: float | None = None) -> None:
        """`key`: REFERENCE or the variant's precision; `name`: its entry name in results.json; `threshold`: the
        variant's own halting threshold where it has one (default: the artefact's)."""
        cut = _Steps([np.asarray(p)[: self.n] for p in rollout.preds], [np.asarray(h)[: self.n] for h in rollout.halt])
        self.arrays |= Answers.of(cut, self.threshold if threshold is None else threshold).arrays(key)
        self.entries[key] = name
        if threshold is not None and threshold != self.threshold:
            self.thresholds[key] = float(threshold)

    def add_configuration(self, name: str, variant: str, backend: str, precision: str, rollout: Rollout) -> None:
        """A variant's graphs validated on another backend at a precision (validate.openvino: openvino-bf16 runs
        float32's graphs in bf16): its answers at the artefact's threshold, which `verify --full` on that backend
        and precision compares the device's with."""
        cut = _Steps([np.asarray(p)[: self.n] for p in rollout.preds], [np.asarray(h)[: self.n] for h in rollout.halt])
        self.arrays |= Answers.of(cut, self.threshold).arrays(name)
        self.configurations[name] = {"variant": variant, "backend": backend, "precision": precision}

    def write(self, folder: Path, meta: dict[str, Any]) -> str:
        """Write references.npz into `folder` atomically; returns its name (for the manifest's files)."""
        from ..artefact import replace_file

        m = {
            "format": FORMAT,
            "examples": self.n,
            "examples_validated": self.total,
            "kept": "all" if self.n == self.total else f"the first {self.n} in validation order",
            "threshold": self.threshold,
            **({"variant_thresholds": self.thresholds} if self.thresholds else {}),
            "reference": self.entries.get(REFERENCE),
            "variants": {k: v for k, v in self.entries.items() if k != REFERENCE},
            **({"configurations": self.configurations} if self.configurations else {}),
            **({"arc_names": self.names} if self.names else {}),
            **meta,
        }
        text = json.dumps(m).encode()  # insertion order: variants in the order the export gated them
        buf = io.BytesIO()
        arrays = {"meta": np.frombuffer(text, np.uint8), **self.arrays}
        np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as bool
        replace_file(Path(folder) / REFERENCES, buf.getvalue())
        return REFERENCES


@dataclass
class _Steps:
    """A rollout's per-step arrays (the recorded examples only)."""

    preds: list[np.ndarray]
    halt: list[np.ndarray]


@dataclass
class References:
    """references.npz read back and checked."""

    meta: dict[str, Any]
    inputs: np.ndarray
    labels: np.ndarray
    puzzle_ids: np.ndarray | None
    answers: dict[str, Answers]  # REFERENCE, each variant and configuration the export gated (its answers there)

    @property
    def n(self) -> int:
        return len(self.inputs)

    def configuration(self, variant: str, backend: str, precision: str | None) -> str | None:
        """The recorded configuration of `variant`'s graphs on `backend` at `precision` (openvino-bf16), if any."""
        for name, c in (self.meta.get("configurations") or {}).items():
            if c == {"variant": variant, "backend": backend, "precision": precision} and name in self.answers:
                return str(name)
        return None

    @property
    def variants(self) -> list[str]:
        return list(self.meta["variants"])


def _bad(path: Path, why: str) -> ArtefactError:
    return ArtefactError(f"{path} is not a references file this edgekit reads ({why}); re-run `edgekit export`")


def read_references(path: Path, contract: InputContract, step_budget: int, variants: Collection[str]) -> References:
    """Read and check references.npz against the artefact's manifest (its input contract, step budget and
    variants): bounded before anything is inflated, every array of the recorded examples' count and the input
    contract's shape, steps within the budget."""
    from ..npyio import load_npz

    width = 1
    for d in contract.sample_shape:
        width *= int(d)
    impls = 1 + len(variants) + MAX_CONFIGURATIONS
    # inputs and labels as int64, two predictions per implementation as uint32, plus steps and logits
    limit = MAX_EXAMPLES * (16 * width + impls * (8 * width + 16)) + MAX_META_BYTES
    z = load_npz(path, limit, error=ArtefactError, what=str(path), nofollow=True)
    try:
        meta = json.loads(bytes(z["meta"].astype(np.uint8, copy=False)).decode())
    except KeyError:
        raise _bad(path, "no meta") from None
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise _bad(path, "meta is not JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else None
        raise ArtefactError(
            f"{path} has references format {got!r}, this edgekit reads format {FORMAT}: use the edgekit version "
            "that exported the artefact, or re-run `edgekit export`"
        )
    _check_meta(path, meta, variants)
    for k in ("inputs", "labels"):
        if k not in z:
            raise _bad(path, f"no {k}")
    inputs, labels = z["inputs"], z["labels"]
    n = len(inputs)
    if not (0 < n <= MAX_EXAMPLES) or n != meta["examples"]:
        raise _bad(path, f"{n} examples, meta says {meta['examples']}")
    shape = list(contract.sample_shape)
    if list(inputs.shape[1:]) != shape or inputs.dtype.kind not in ("iu" if contract.tokens else "f"):
        raise _bad(path, f"inputs of shape {list(inputs.shape)} and dtype {inputs.dtype} for an input {shape}")
    if len(labels) != n or labels.dtype.kind not in "iu":
        raise _bad(path, "labels do not match the inputs")
    ids = z.get("puzzle_ids")
    if ids is not None and (ids.shape != (n,) or ids.dtype.kind not in "iu"):
        raise _bad(path, "puzzle_ids do not match the inputs")
    budget = int(step_budget)
    answers = {}
    for key in [REFERENCE, *meta["variants"], *meta.get("configurations", {})]:
        full = z.get(f"{key}/full")
        if full is None or full.ndim != 2 or len(full) != n or full.dtype.kind not in "iu":
            raise _bad(path, f"no predictions of {key} for the {n} examples")
        parts = [z.get(f"{key}/{p}") for p in ("halted", "steps", "q_full")]
        if all(p is None for p in parts):
            answers[key] = Answers(full)
            continue
        halted, steps, q = parts
        if (
            halted is None
            or steps is None
            or q is None
            or halted.shape != full.shape
            or halted.dtype.kind not in "iu"
            or steps.shape != (n,)
            or steps.dtype.kind not in "iu"
            or q.shape != (n,)
            or q.dtype.kind != "f"
        ):
            raise _bad(path, f"the halting answers of {key} do not match its predictions")
        if steps.min() < 1 or steps.max() > budget:
            raise _bad(path, f"halting steps of {key} outside 1..{budget}")
        answers[key] = Answers(full, halted, steps, q)
    kind = np.int64 if contract.tokens else np.float32
    return References(meta, inputs.astype(kind), labels.astype(np.int64), ids, answers)


def _check_meta(path: Path, meta: dict[str, Any], variants: Collection[str]) -> None:
    def need(cond: bool, what: str) -> None:
        if not cond:
            raise _bad(path, what)

    def num(v: object) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    need(isinstance(meta.get("examples"), int) and isinstance(meta.get("examples_validated"), int), "example counts")
    need(num(meta.get("threshold")), "threshold")
    own = meta.get("variant_thresholds", {})
    need(isinstance(own, dict) and all(isinstance(k, str) and num(t) for k, t in own.items()), "variant thresholds")
    need(isinstance(meta.get("batch_size"), int) and 0 < meta["batch_size"] <= 65536, "batch size")
    need(isinstance(meta.get("reference"), str), "reference name")
    v = meta.get("variants")
    need(isinstance(v, dict) and bool(v) and all(isinstance(n, str) for n in v.values()), "variants")
    assert isinstance(v, dict)
    unknown = [k for k in v if k not in variants]
    need(not unknown, f"variants {unknown[:3]} that manifest.json does not list")
    c = meta.get("configurations", {})
    need(
        isinstance(c, dict)
        and len(c) <= MAX_CONFIGURATIONS
        and all(
            isinstance(name, str)
            and name not in v
            and name != REFERENCE
            and isinstance(x, dict)
            and set(x) == {"variant", "backend", "precision"}
            and all(isinstance(s, str) for s in x.values())
            and x["variant"] in v
            for name, x in c.items()
        ),
        "configurations",
    )
    g = meta.get("gates")
    need(isinstance(g, dict) and all(isinstance(k, str) and (x is None or num(x)) for k, x in g.items()), "gates")
    need(isinstance(meta.get("export_gates"), list), "export gate records")
    names = meta.get("arc_names")
    need(names is None or (isinstance(names, dict) and all(isinstance(s, str) for s in names.values())), "names")
    lat = meta.get("latency")
    need(
        isinstance(lat, dict)
        and isinstance(lat.get("batch"), int)
        and isinstance(lat.get("examples"), int)
        and 0 < lat["batch"] <= 65536
        and 0 < lat["examples"] <= 1_000_000
        and (lat.get("rounds") is None or (isinstance(lat["rounds"], int) and 0 < lat["rounds"] <= 1000)),
        "latency settings",
    )
