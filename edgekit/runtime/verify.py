"""Golden inputs and outputs: recorded at export, re-checked on the device with the runtime alone.

`edgekit verify ARTEFACT` answers "is this the artefact that passed the gates, and does this device reproduce
it?": every file's sha256 against the manifest, then each variant and mode re-run on the golden inputs and
compared with the recorded answers (same predictions and steps; logits within a relative tolerance that
allows another CPU's float rounding).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..artefact import sha256_file   # stdlib only: safe on a torch-free device
from .runner import Runner

GOLDEN = "golden.npz"


@dataclass
class VerifyReport:
    checks: list[dict] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c["passed"] for c in self.checks)

    def add(self, name: str, passed: bool, detail: str) -> None:
        self.checks.append({"name": name, "passed": bool(passed), "detail": detail})


def _modes(runner: Runner) -> list[str]:
    return ["host"] + (["loop"] if "loop" in runner.graphs else [])


def write_golden(folder: Path, inputs: np.ndarray) -> dict[str, np.ndarray]:
    """Run every variant and mode of the artefact in `folder` on `inputs` and save the answers."""
    import json

    manifest = json.loads((Path(folder) / "manifest.json").read_text())
    arrays: dict[str, np.ndarray] = {"inputs": inputs}
    for variant in manifest.get("variants", {"float32": {}}):
        runner = Runner(folder, variant=variant)
        for mode in _modes(runner):
            sol = runner.solve(inputs, mode=mode)
            arrays[f"{variant}/{mode}/logits"] = sol.logits
            arrays[f"{variant}/{mode}/steps"] = sol.steps
    np.savez(Path(folder) / GOLDEN, **arrays)
    return arrays


def verify(folder: str | Path, rtol: float = 1e-3) -> VerifyReport:
    folder = Path(folder)
    rep = VerifyReport()
    runner = Runner(folder)   # raises ArtefactError on a missing or corrupt manifest
    for key, digest in runner.manifest.get("sha256", {}).items():
        path = folder / runner.manifest["files"][key]
        ok = path.is_file() and sha256_file(path) == digest
        rep.add(f"sha256 {path.name if key == path.stem else key}", ok, "matches the manifest" if ok else
                ("missing" if not path.is_file() else "differs from the manifest: the file was changed after export"))
    gpath = folder / GOLDEN
    if not gpath.is_file():
        rep.add("golden outputs", False, f"{GOLDEN} is missing: re-run `edgekit export`")
        return rep
    with np.load(gpath) as g:
        golden = {k: g[k] for k in g.files}
    inputs = golden["inputs"]
    for variant in runner.manifest.get("variants", {"float32": {}}):
        r = Runner(folder, variant=variant)
        for mode in _modes(r):
            key = f"{variant}/{mode}"
            if f"{key}/logits" not in golden:
                continue
            try:
                sol = r.solve(inputs, mode=mode)
            except Exception as e:  # a damaged graph must fail verification, not crash it
                rep.add(f"golden {key}", False, f"cannot run: {str(e).splitlines()[0][:160]}")
                continue
            want = golden[f"{key}/logits"]
            err = float(np.abs(sol.logits.astype(np.float64) - want).max())
            scale = max(float(np.abs(want).max()), 1e-6)
            same_pred = float(np.mean(sol.preds == want.argmax(-1)))
            same_steps = float(np.mean(sol.steps == golden[f"{key}/steps"]))
            ok = err <= rtol * scale and same_pred == 1.0 and same_steps == 1.0
            rep.add(f"golden {key}", ok, f"max|Δlogits| {err:.2e} (limit {rtol * scale:.2e}), same predictions {same_pred:.4f}, same steps {same_steps:.4f}")
    return rep
