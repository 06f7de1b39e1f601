"""Per-variant halting thresholds: with `halt_threshold: auto` each compressed variant gets its own threshold on the
calibration examples (the fewest mean steps whose exact accuracy at halting stays within the recipe's limit of
float32's), the gates and references use it, and the runtime answers each variant at its own threshold by default
(tuned runtime defaults still override it for their variant)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgekit.validate.threshold import Candidate, pick_threshold

ROOT = Path(__file__).resolve().parents[2]


def test_the_fewest_steps_within_the_floor_wins_and_the_most_accurate_when_none_reaches_it():
    cands = [
        Candidate(-1.0, 0.80, 3.1),  # fast but below the floor
        Candidate(0.0, 0.90, 4.0),
        Candidate(0.5, 0.91, 4.6),
        Candidate(1.0, 0.93, 5.5),
    ]
    pick, ok = pick_threshold(cands, floor=0.895)
    assert ok and pick.threshold == 0.0  # within the floor, fewer steps than 0.5 and 1.0
    pick, ok = pick_threshold(cands, floor=0.92)
    assert ok and pick.threshold == 1.0
    pick, ok = pick_threshold(cands, floor=0.99)
    assert not ok and pick.threshold == 1.0  # nothing reaches it: the most accurate
    # equal steps: the lower threshold
    pick, ok = pick_threshold([Candidate(2.0, 0.9, 4.0), Candidate(1.5, 0.9, 4.0)], floor=0.5)
    assert ok and pick.threshold == 1.5


def _with_alt_variant(src: Path, dst: Path, own: float, **graph_extra) -> Path:
    """A copy of the artefact with a second variant `alt` on float32's graphs, validated at its own threshold."""
    shutil.copytree(src, dst)
    m = json.loads((dst / "manifest.json").read_text())
    m["variants"]["alt"] = dict(m["variants"]["float32"])
    m["graph"]["variant_thresholds"] = {"alt": own, **graph_extra}
    (dst / "manifest.json").write_text(json.dumps(m))
    return dst


def test_the_runtime_answers_each_variant_at_its_own_threshold(trm_artefact, tmp_path):
    from edgekit.runtime import Runner
    from edgekit.runtime.manifest import defaults_digest
    from edgekit.tasks import sudoku

    art = _with_alt_variant(trm_artefact, tmp_path / "art", 1e5)  # alt never halts before the budget
    x, _ = sudoku.SudokuPool.generate(16, seed=7).sample(16, (28, 40), np.random.default_rng(7), augment=False)
    base, alt = Runner(art, "float32"), Runner(art, "alt")
    budget = int(json.loads((art / "manifest.json").read_text())["graph"]["step_budget"])
    assert alt.limits(None, None)[1] == 1e5 and base.limits(None, None)[1] != 1e5
    for mode in ("host", "loop"):
        assert (alt.solve(x, mode=mode).steps == budget).all(), mode
        assert (base.solve(x, mode=mode).steps < budget).any(), mode
    # a tuned default for alt overrides its validated threshold; validated_settings() goes back to it
    m = json.loads((art / "manifest.json").read_text())
    m["runtime_defaults"] = {"variant": "alt", "halt_threshold": 0.0, "max_steps": budget, "chosen_by": "test"}
    m["runtime_defaults_sha256"] = defaults_digest(m["runtime_defaults"])
    (art / "manifest.json").write_text(json.dumps(m))
    tuned = Runner(art, "alt")
    assert tuned.limits(None, None)[1] == 0.0
    assert tuned.validated_settings().limits(None, None)[1] == 1e5


@pytest.mark.parametrize(
    ("extra", "message"),
    [({"nope": 1.0}, "names 'nope', which is not a variant"), ({}, "is not a number")],
)
def test_a_bad_variant_threshold_is_one_line(trm_artefact, tmp_path, extra, message):
    from edgekit.runtime import ArtefactError, Runner

    own: object = 1.0 if extra else "high"
    art = _with_alt_variant(trm_artefact, tmp_path / "art", own, **extra)  # type: ignore[arg-type]
    with pytest.raises(ArtefactError, match=message):
        Runner(art, "float32")


def test_a_loop_form_takes_its_variant_threshold_as_default(trm_artefact, tmp_path):
    from edgekit.export.loop import set_halt_threshold

    loop = tmp_path / "loop.onnx"
    shutil.copy(trm_artefact / "loop.onnx", loop)
    assert set_halt_threshold(loop, 2.5)
    m = onnx.load(str(loop))
    (init,) = [t for t in m.graph.initializer if t.name == "halt_threshold"]
    assert float(numpy_helper.to_array(init)) == 2.5 and "halt_threshold" in [i.name for i in m.graph.input]


@pytest.mark.slow  # an export with a quantized variant and per-variant calibration (a few minutes on 2 cores)
def test_an_auto_export_calibrates_gates_and_records_each_variant_threshold(tmp_path):
    from edgekit.pipeline import run_export
    from edgekit.runtime import Runner

    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"name: own-thresholds\nmodel: {{path: {ROOT / 'examples/models/trm-sudoku'}}}\n"
        "task: {name: sudoku, n: 64, givens: [28, 40], seed: 123}\n"
        "export: {forms: [step, loop]}\nquantize: {modes: [int8_dynamic]}\n"
        "validate: {halt_threshold: auto}\n"
        "gates: {max_exact_halted_drop: 0.05, min_halting_agreement: 0.5}\n"
        f"output: {tmp_path / 'out'}\n"
    )
    logs: list[str] = []
    out = run_export(recipe, log=logs.append)
    m = json.loads((out.folder / "manifest.json").read_text())
    own = m["graph"]["variant_thresholds"]
    assert set(own) == {"int8_dynamic"}
    assert any(line.startswith("halting threshold of int8_dynamic:") for line in logs)
    entries = {e["name"]: e for e in out.results["variants"]}
    assert entries["int8_dynamic"]["halt_threshold"] == own["int8_dynamic"]
    assert entries["float32"]["halt_threshold"] == m["graph"]["halt_threshold"]
    # the variant's Loop form defaults to its own threshold, and the runtime answers at it
    loop = onnx.load(str(out.folder / m["files"][m["variants"]["int8_dynamic"]["loop"]]))
    (init,) = [t for t in loop.graph.initializer if t.name == "halt_threshold"]
    assert float(numpy_helper.to_array(init)) == pytest.approx(own["int8_dynamic"])
    assert Runner(out.folder, "int8_dynamic").limits(None, None)[1] == own["int8_dynamic"]
    # the recorded references halt each variant at its own threshold: verify --full reproduces the export's gates
    from edgekit.runtime.full_verify import verify_full
    from edgekit.runtime.references import read_references

    refs = read_references(out.folder / "references.npz", m)
    assert refs.meta.get("variant_thresholds", {}).get("int8_dynamic", m["graph"]["halt_threshold"]) == pytest.approx(
        own["int8_dynamic"]
    )
    rep = verify_full(out.folder, refs, ["int8_dynamic"], lambda f, v: Runner(f, v))
    exported = {(g["name"], g["variant"]): g["value"] for g in out.results["gates"]}
    for g in rep.gates:
        if (g["name"], g["variant"]) in exported:
            assert g["value"] == pytest.approx(exported[(g["name"], g["variant"])]), g
