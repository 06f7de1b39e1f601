"""Golden inputs and outputs: recorded at export, re-checked on the device with the runtime alone.

`edgekit verify ARTEFACT` answers "is this the artefact that passed the gates, and does this device reproduce
it?": every file's sha256 against the manifest, then each variant and mode re-run on the golden inputs and
compared with the recorded answers, within a tolerance that follows what runs (`TOLERANCES`): float32 on the CPU
provider of the exporting processor's architecture reproduces tightly (same predictions and steps, logits within a
relative 1e-3 that allows another CPU's rounding); anything else — a compressed variant, TF32 on the CUDA provider,
TensorRT, another processor — within stated shares of same predictions and same halting steps.

`verify(..., full=True)` (`edgekit verify --full`) adds the artefact's own gates re-applied to this device's answers
on every recorded validation example (runtime/full_verify.py, runtime/references.py).
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..artefact import sha256_file  # stdlib only: safe on a torch-free device
from ..errors import EXIT_ACCURACY_GATE, EXIT_OK, EdgekitError, first_line
from .errors import ArtefactError, RuntimeInputError
from .full_verify import FullReport, verify_full
from .manifest import Manifest, load_manifest, safe_path
from .references import KEY as REFERENCES_KEY
from .references import read_references
from .runner import Runner

GOLDEN = "golden.npz"
MAX_GOLDEN_BYTES = 1 << 30


class ReferencesChanged(EdgekitError):
    """The recorded references do not match the manifest's hash: nothing they say can be trusted (exit 3, like
    any file changed after export)."""

    exit_code = EXIT_ACCURACY_GATE


@dataclass(frozen=True)
class Tolerance:
    """How closely a re-run must match the golden answers."""

    name: str
    logits_rtol: float | None  # None: logits are reported, not compared
    min_same_predictions: float  # share of predicted positions equal to the recorded ones
    min_same_steps: float  # share of golden examples halting at the recorded step

    def describe(self, why: str) -> str:
        return f"tolerance {self.name} ({why})"


# tight: float32 on the CPU provider of the exporting processor's architecture (the same kernels; another CPU only
# rounds differently). device: anything else. Predictions may differ at 1 % of positions; one golden example in 8
# may halt at another step (its halting logit sits near the threshold); `--full` is the statistical verdict.
TOLERANCES = {
    "tight": Tolerance("tight", 1e-3, 1.0, 1.0),
    "device": Tolerance("device", None, 0.99, 0.85),
}


def _providers(runner: Any) -> list[str]:
    return [p for p in getattr(runner, "providers", None) or ["CPUExecutionProvider"] if isinstance(p, str)]


def tolerance_for(runner: Any, variant: str, exported_on: str | None) -> tuple[Tolerance, str]:
    """(tolerance, why) for golden answers of `variant` re-run by `runner`; `exported_on`: the exporting machine's
    architecture (platform.machine()), None where the golden file predates recording it."""
    loose = []
    if variant != "float32":
        loose.append(f"{variant} variant")
    if getattr(runner, "backend", "onnxruntime") != "onnxruntime":
        loose.append(f"{getattr(runner, 'backend', 'another')} backend")
    else:
        for p in _providers(runner):
            if p == "CPUExecutionProvider":
                continue
            if p == "CUDAExecutionProvider":
                tf32 = getattr(getattr(runner, "settings", None), "tf32", None)
                if tf32 is False:
                    continue  # float32 kernels: rounding differences only
                loose.append("CUDA provider with TF32")
            else:
                loose.append(f"{p.removesuffix('ExecutionProvider')} provider")
    here = platform.machine()
    if exported_on and exported_on != here:
        loose.append(f"exported on {exported_on}, running on {here}")
    if loose:
        return TOLERANCES["device"], "; ".join(loose)
    return TOLERANCES["tight"], "float32 on the CPU provider"


@dataclass
class VerifyReport:
    checks: list[dict[str, Any]] = field(default_factory=list)
    full: FullReport | None = None

    @property
    def passed(self) -> bool:
        return all(c["passed"] for c in self.checks) and (self.full is None or self.full.exit_code == EXIT_OK)

    @property
    def exit_code(self) -> int:
        """0 verified; 3 a check failed or an accuracy gate failed; 4 only a budget gate failed (`--full`)."""
        if not all(c["passed"] for c in self.checks):
            return EXIT_ACCURACY_GATE
        return EXIT_OK if self.full is None else self.full.exit_code

    def add(self, name: str, passed: bool, detail: str) -> None:
        self.checks.append({"name": name, "passed": bool(passed), "detail": detail})


def _modes(runner: Any) -> list[str]:
    return ["host"] + (["loop"] if "loop" in runner.graphs else [])


def _variant_names(manifest: Manifest) -> list[str]:
    names = list(manifest.variants)
    return sorted(names, key=lambda n: n != "float32")


def write_golden(folder: Path, inputs: np.ndarray, puzzle_ids: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Run every variant and mode of the artefact in `folder` on `inputs` and save the answers (and the exporting
    machine's architecture, which decides the tolerance a device re-checks them with)."""
    manifest = load_manifest(folder, complete=False)  # before the hashes
    arrays: dict[str, np.ndarray] = {"inputs": inputs}
    if puzzle_ids is not None:
        arrays["puzzle_ids"] = np.asarray(puzzle_ids, np.int64)
    arrays["machine"] = np.frombuffer(platform.machine().encode()[:64], np.uint8)
    for variant in manifest.variants:
        runner = Runner(folder, variant=variant, complete=False).validated_settings()  # before the hashes
        for mode in _modes(runner):
            sol = runner.solve(inputs, mode=mode, puzzle_ids=puzzle_ids)
            arrays[f"{variant}/{mode}/logits"] = sol.logits
            arrays[f"{variant}/{mode}/steps"] = sol.steps
    np.savez(Path(folder) / GOLDEN, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as bool
    return arrays


def _hash_checks(folder: Path, manifest: Manifest, rep: VerifyReport) -> None:
    files, hashes, sizes = manifest.files, manifest.hashes, manifest.bytes or {}
    if not hashes:
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
        path = safe_path(folder, files[key])  # confined to the folder: never hashes a file outside it
        name = f"sha256 {path.name if key == path.stem else key}"
        if not path.is_file():
            rep.add(name, False, "missing")
            continue
        # the recorded size first: a file of another size (a 300 GB sparse file, say) is refused without reading it
        size, recorded = path.stat().st_size, sizes.get(key)
        if recorded is not None and size != recorded:
            rep.add(
                name, False, f"is {size:,} bytes, the manifest records {recorded:,}: the file was changed after export"
            )
            continue
        ok = sha256_file(path) == hashes[key]
        rep.add(
            name, ok, "matches the manifest" if ok else "differs from the manifest: the file was changed after export"
        )


def _read_golden(folder: Path) -> dict[str, np.ndarray] | str:
    """The golden arrays, or why they cannot be read."""
    from ..npyio import load_npz

    gpath = folder / GOLDEN
    if not gpath.is_file() or gpath.is_symlink():
        return f"{GOLDEN} is missing: re-run `edgekit export`"
    try:
        golden = load_npz(gpath, MAX_GOLDEN_BYTES, error=ArtefactError, what=GOLDEN, nofollow=True)
    except ArtefactError as e:
        return f"{first_line(e, 120)}: re-run `edgekit export`"
    if "inputs" not in golden:
        return f"{GOLDEN} holds no inputs: re-run `edgekit export`"
    return golden


def _golden_checks(
    folder: Path, variants: list[str], make: Callable[[Path, str], Any], rep: VerifyReport, rtol: float
) -> None:
    golden = _read_golden(folder)
    if isinstance(golden, str):
        rep.add("golden outputs", False, golden)
        return
    inputs = golden["inputs"]
    m = golden.get("machine")
    exported_on = bytes(m.astype(np.uint8)).decode(errors="replace") if m is not None and m.ndim == 1 else None
    for variant in variants:
        r = make(folder, variant).validated_settings()  # golden answers are at the validated settings
        tol, why = tolerance_for(r, variant, exported_on)
        if tol.logits_rtol is not None:
            tol = Tolerance(tol.name, rtol, tol.min_same_predictions, tol.min_same_steps)
        for mode in _modes(r):
            key = f"{variant}/{mode}"
            if f"{key}/logits" not in golden:
                continue
            try:
                sol = r.solve(inputs, mode=mode, puzzle_ids=golden.get("puzzle_ids"))
            except Exception as e:  # a damaged graph must fail verification, not crash it
                rep.add(f"golden {key}", False, f"cannot run: {first_line(e)}")
                continue
            want = golden[f"{key}/logits"]
            if want.shape != sol.logits.shape or golden.get(f"{key}/steps", np.zeros(0)).shape != sol.steps.shape:
                rep.add(f"golden {key}", False, "recorded answers have another shape than this artefact's")
                continue
            err = float(np.abs(sol.logits.astype(np.float64) - want).max())
            scale = max(float(np.abs(want).max()), 1e-6)
            same_pred = float(np.mean(sol.preds == want.argmax(-1)))
            same_steps = float(np.mean(sol.steps == golden[f"{key}/steps"]))
            ok = same_pred >= tol.min_same_predictions and same_steps >= tol.min_same_steps
            if tol.logits_rtol is not None:
                ok = ok and err <= tol.logits_rtol * scale
                dlogits = f"max|Δlogits| {err:.2e} (limit {tol.logits_rtol * scale:.2e})"
            else:
                dlogits = f"max|Δlogits| {err:.2e} (relative {err / scale:.1e}, reported only)"
            rep.add(
                f"golden {key}",
                ok,
                f"{tol.describe(why)}: same predictions {same_pred:.4f} (limit {tol.min_same_predictions:g}), "
                f"same steps {same_steps:.4f} (limit {tol.min_same_steps:g}), {dlogits}",
            )


def verify(
    folder: str | Path,
    rtol: float = 1e-3,
    runner: Callable[[Path, str], Any] | None = None,
    variants: list[str] | None = None,
    full: bool = False,
    log: Callable[[str], None] = lambda s: None,
) -> VerifyReport:
    """Hashes, then golden answers of `variants` (default: all); with `full`, the artefact's gates re-applied to
    this device's answers on the recorded validation examples (default: every variant the export gated).
    `runner(folder, variant)` makes the runners (e.g. with GPU providers or TensorRT engines)."""
    folder = Path(folder)
    new = runner or (lambda f, v: Runner(f, variant=v))
    made: dict[str, Any] = {}  # one runner per variant: golden and gates share its sessions (and engine builds)

    def make(f: Path, v: str) -> Any:
        if v not in made:
            made[v] = new(f, v)
        return made[v]

    manifest = load_manifest(folder)  # ArtefactError on a missing or damaged manifest
    have = _variant_names(manifest)
    unknown = [v for v in variants or [] if v not in have]
    if unknown:
        raise RuntimeInputError(f"artefact has no variant {unknown[0]!r}; it has: {', '.join(have)}")
    if full and REFERENCES_KEY not in manifest.files:
        raise ArtefactError(
            f"{folder} records no validation references (it was exported before `verify --full` existed): re-run "
            "`edgekit export` with this edgekit to check it on a device"
        )
    rep = VerifyReport()
    _hash_checks(folder, manifest, rep)
    if full:
        ref_file = safe_path(folder, manifest.files[REFERENCES_KEY])
        if not any(c["passed"] for c in rep.checks if c["name"] == f"sha256 {ref_file.name}"):
            raise ReferencesChanged(
                f"{ref_file} does not match the sha256 in manifest.json: the recorded references were changed or "
                "removed after export",
                "restore the artefact as exported, or re-run `edgekit export`",
            )
    _golden_checks(folder, variants or have, make, rep, rtol)
    if not full:
        return rep
    refs = read_references(
        safe_path(folder, manifest.files[REFERENCES_KEY]),
        manifest.graph.input,
        manifest.graph.step_budget,
        list(manifest.variants),
    )
    chosen = variants or [v for v in manifest.variants if v in refs.variants]  # the export's order
    ungated = [v for v in chosen if v not in refs.variants]
    if ungated:
        raise RuntimeInputError(
            f"the export gated no variant {ungated[0]!r} (it gated: {', '.join(refs.variants)}); nothing to check"
        )
    if not all(c["passed"] for c in rep.checks if c["name"].startswith("sha256")):
        rep.add("gates", False, "not re-applied: files differ from the manifest (see above)")
        return rep
    rep.full = verify_full(folder, refs, chosen, make, log)
    return rep
