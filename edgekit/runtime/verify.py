"""Golden inputs and outputs: recorded at export, re-checked on the device with the runtime alone.

`edgekit verify ARTEFACT` answers "is this the artefact that passed the gates, and does this device reproduce
it?": every file's sha256 against the manifest, then each variant and mode re-run on the golden inputs and
compared with the recorded answers (same predictions and steps; logits within a relative tolerance that
allows another CPU's float rounding).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..artefact import sha256_file  # stdlib only: safe on a torch-free device
from ..errors import first_line
from .errors import ArtefactError
from .runner import Runner

GOLDEN = "golden.npz"


@dataclass
class VerifyReport:
    checks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c["passed"] for c in self.checks)

    def add(self, name: str, passed: bool, detail: str) -> None:
        self.checks.append({"name": name, "passed": bool(passed), "detail": detail})


def _modes(runner: Runner) -> list[str]:
    return ["host"] + (["loop"] if "loop" in runner.graphs else [])


def _variants(folder: Path) -> list[str]:
    """Variant names, read leniently (the Runner does the strict reading and reports a corrupt manifest)."""
    import json

    try:
        v = json.loads((folder / "manifest.json").read_text()).get("variants")
    except (OSError, ValueError, AttributeError, RecursionError):
        return ["float32"]
    names = [str(k) for k in v] if isinstance(v, dict) and v else []
    return sorted(names, key=lambda n: n != "float32") or ["float32"]


def write_golden(folder: Path, inputs: np.ndarray, puzzle_ids: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Run every variant and mode of the artefact in `folder` on `inputs` and save the answers."""
    import json

    manifest = json.loads((Path(folder) / "manifest.json").read_text())
    arrays: dict[str, np.ndarray] = {"inputs": inputs}
    if puzzle_ids is not None:
        arrays["puzzle_ids"] = np.asarray(puzzle_ids, np.int64)
    for variant in manifest.get("variants", {"float32": {}}):
        runner = Runner(folder, variant=variant, complete=False).validated_settings()  # before the hashes
        for mode in _modes(runner):
            sol = runner.solve(inputs, mode=mode, puzzle_ids=puzzle_ids)
            arrays[f"{variant}/{mode}/logits"] = sol.logits
            arrays[f"{variant}/{mode}/steps"] = sol.steps
    np.savez(Path(folder) / GOLDEN, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as bool
    return arrays


def verify(folder: str | Path, rtol: float = 1e-3, runner: Callable[[Path, str], Runner] | None = None) -> VerifyReport:
    """Hashes, then golden answers. `runner(folder, variant)` makes the runners (e.g. with GPU providers)."""
    folder = Path(folder)
    make = runner or (lambda f, v: Runner(f, variant=v))
    rep = VerifyReport()
    runner_ = make(folder, _variants(folder)[0])  # raises ArtefactError on a missing or corrupt manifest
    files, hashes = runner_.manifest["files"], runner_.manifest.get("sha256")
    if not isinstance(hashes, dict) or not hashes:
        raise ArtefactError(
            f"{folder}/manifest.json lists no file hashes: this artefact cannot be verified; re-run `edgekit export`"
        )
    for key in sorted(set(files) | set(hashes)):
        if key not in hashes:
            rep.add(f"sha256 {key}", False, "the manifest lists this file without a hash")
            continue
        if key not in files:
            rep.add(f"sha256 {key}", False, "the manifest has a hash for a file it does not list")
            continue
        path = runner_.file(key)  # confined to the folder: never hashes a file outside it
        digest = hashes[key]
        ok = path.is_file() and isinstance(digest, str) and sha256_file(path) == digest
        why = "missing" if not path.is_file() else "differs from the manifest: the file was changed after export"
        rep.add(f"sha256 {path.name if key == path.stem else key}", ok, "matches the manifest" if ok else why)
    gpath = folder / GOLDEN
    if not gpath.is_file() or gpath.is_symlink():
        rep.add("golden outputs", False, f"{GOLDEN} is missing: re-run `edgekit export`")
        return rep
    try:
        with np.load(gpath, allow_pickle=False) as g:
            golden = {k: np.asarray(g[k]) for k in g.files}
        if "inputs" not in golden:
            raise KeyError("inputs")
    except (OSError, ValueError, KeyError, EOFError) as e:
        rep.add("golden outputs", False, f"{GOLDEN} is unreadable ({first_line(e, 80)}): re-run `edgekit export`")
        return rep
    inputs = golden["inputs"]
    for variant in runner_.manifest.get("variants", {"float32": {}}):
        r = make(folder, variant).validated_settings()  # golden answers are at the validated settings
        for mode in _modes(r):
            key = f"{variant}/{mode}"
            if f"{key}/logits" not in golden:
                continue
            try:
                sol = r.solve(inputs, mode=mode, puzzle_ids=golden.get("puzzle_ids"))
            except Exception as e:  # a damaged graph must fail verification, not crash it
                rep.add(f"golden {key}", False, f"cannot run: {str(e).splitlines()[0][:160]}")
                continue
            want = golden[f"{key}/logits"]
            if want.shape != sol.logits.shape or golden.get(f"{key}/steps", np.zeros(0)).shape != sol.steps.shape:
                rep.add(f"golden {key}", False, "recorded answers have another shape than this artefact's")
                continue
            err = float(np.abs(sol.logits.astype(np.float64) - want).max())
            scale = max(float(np.abs(want).max()), 1e-6)
            same_pred = float(np.mean(sol.preds == want.argmax(-1)))
            same_steps = float(np.mean(sol.steps == golden[f"{key}/steps"]))
            ok = err <= rtol * scale and same_pred == 1.0 and same_steps == 1.0
            rep.add(
                f"golden {key}",
                ok,
                f"max|Δlogits| {err:.2e} (limit {rtol * scale:.2e}), same predictions {same_pred:.4f}, "
                f"same steps {same_steps:.4f}",
            )
    return rep
