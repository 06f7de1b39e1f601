"""OpenVINO configurations validated like a variant (`validate.openvino`, validate/openvino_configs.py): the recipe
key, entries whose answers match onnxruntime's float32 (f32) and carry an ONNX variant's gates against the reference
they name (bf16: float32 PyTorch and the trained bf16 reference), the report and references.npz listing them,
`verify --full --backend openvino` comparing with the recorded configuration, and OpenVINO missing as one line
before anything is written."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from edgekit.errors import EXIT_USAGE, RecipeError
from edgekit.schema import parse_recipe

try:
    import openvino

    HAVE_OV = True
except ImportError:
    HAVE_OV = False

needs_ov = pytest.mark.skipif(not HAVE_OV, reason='openvino is not installed (pip install "edgekit[openvino]")')
RECIPE = {"name": "r", "model": {"path": "m"}, "task": {"name": "sudoku"}}


def _cpu_has(capability: str) -> bool:
    return HAVE_OV and capability in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def _recipe(small_trm_recipe: Path, folder: Path, validate: str) -> Path:
    p = folder / "ov.yaml"
    p.write_text(small_trm_recipe.read_text() + f"validate: {validate}\n")
    return p


def test_recipe_key_defaults_to_none_and_lists_each_precision_once():
    assert parse_recipe(RECIPE).validate_.openvino == []
    r = parse_recipe({**RECIPE, "validate": {"openvino": ["int8", "bf16", "f32", "bf16"]}})
    assert r.validate_.openvino == ["f32", "bf16", "int8"]
    with pytest.raises(RecipeError, match="validate.openvino"):
        parse_recipe({**RECIPE, "validate": {"openvino": ["int4"]}})


@needs_ov
def test_int8_without_its_quantize_mode_is_one_line():
    from edgekit.validate.openvino_configs import check_openvino

    with pytest.raises(RecipeError, match="add int8_weight_only to quantize.modes") as e:
        check_openvino(parse_recipe({**RECIPE, "validate": {"openvino": ["int8"]}}))
    assert e.value.exit_code == EXIT_USAGE
    with_mode = {**RECIPE, "quantize": {"modes": ["int8_weight_only"]}, "validate": {"openvino": ["int8"]}}
    if _cpu_has("INT8"):
        check_openvino(parse_recipe(with_mode))


def test_missing_openvino_is_one_line_before_anything_is_written(small_trm_recipe, trm_artefact, tmp_path, monkeypatch):
    from edgekit.cli import app
    from edgekit.validate.openvino_configs import check_openvino

    recipe = _recipe(small_trm_recipe, tmp_path, "{openvino: [f32]}")
    art = tmp_path / "art"
    shutil.copytree(trm_artefact, art)
    before = {p.name: p.read_bytes() for p in art.iterdir() if p.is_file()}
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino raises ImportError
    with pytest.raises(RecipeError, match=r'pip install "edgekit\[openvino\]"') as e:
        check_openvino(parse_recipe({**RECIPE, "validate": {"openvino": ["f32"]}}))
    assert e.value.exit_code == EXIT_USAGE
    for args in (["validate", str(recipe), str(art)], ["export", str(recipe), "--dry-run"]):
        res = CliRunner().invoke(app, args)
        assert res.exit_code == EXIT_USAGE, res.output
        assert 'pip install "edgekit[openvino]"' in res.output and "Traceback" not in res.output
        assert len(res.output.strip().splitlines()) == 1, res.output
    assert {p.name: p.read_bytes() for p in art.iterdir() if p.is_file()} == before


def test_gates_name_the_reference_they_compare_with():
    """f32 against float32 PyTorch only; a reduced precision also against the trained reference where one runs."""
    from edgekit.schema import GatesSection
    from edgekit.validate.openvino_configs import openvino_gates

    def entry(name: str, exact: float, halted: float, precision: str | None = None) -> dict:
        e = {"name": name, "metrics": {"exact_full": exact, "exact_halted": halted}}
        if precision:
            vs = {"argmax_agreement_last": 0.99, "halting_step_agreement": 0.97, "exact_drop_interval": [0, 0.02]}
            e |= {"openvino": {"precision": precision}, "vs_reference": vs}
            e["vs_pytorch_float32"] = {**vs, "halting_step_agreement": 0.99}
        return e

    bf16_ref, fp32_ref = entry("pytorch_bfloat16", 0.9, 0.9), entry("pytorch_float32", 0.92, 0.92)
    ov = [entry("openvino-f32", 0.92, 0.92, "f32"), entry("openvino-bf16", 0.91, 0.9, "bf16")]
    run = SimpleNamespace(
        recipe=SimpleNamespace(gates=GatesSection(min_argmax_agreement=0.99)),
        native=SimpleNamespace(family="trm"),
        entries=[bf16_ref, fp32_ref, *ov],
        ref=SimpleNamespace(key="pytorch_bfloat16"),
    )
    gates = openvino_gates(run, ov)  # type: ignore[arg-type]
    against = {(g["variant"], g["name"], g["against"]) for g in gates}
    assert ("openvino-f32", "max_exact_drop", "pytorch_float32") in against
    assert not [g for g in gates if g["variant"] == "openvino-f32" and g["against"] == "pytorch_bfloat16"]
    assert ("openvino-bf16", "max_exact_drop", "pytorch_bfloat16") in against
    halting = {g["against"]: g["value"] for g in gates if g["variant"] == "openvino-bf16" and "halting" in g["name"]}
    assert halting == {"pytorch_float32": 0.99, "pytorch_bfloat16": 0.97}
    drop = {
        g["against"]: g["value"] for g in gates if g["variant"] == "openvino-bf16" and g["name"] == "max_exact_drop"
    }
    assert drop == {"pytorch_float32": pytest.approx(0.01), "pytorch_bfloat16": pytest.approx(-0.01)}
    assert sum(g["name"] == "min_exact" for g in gates if g["variant"] == "openvino-bf16") == 1  # absolute: once


@pytest.fixture(scope="module")
def validated(small_trm_recipe, trm_artefact, tmp_path_factory) -> Path:
    """A copy of the tests' artefact with an int8_weight_only variant, re-validated with OpenVINO f32, bf16 and
    int8 (those this CPU has), the trained reference run beside."""
    from weight_only_variant import add_int8_weight_only

    from edgekit.pipeline import run_validate

    folder = tmp_path_factory.mktemp("ov-validate")
    precisions = ["f32"] + [p for p, c in (("bf16", "BF16"), ("int8", "INT8")) if _cpu_has(c)]
    recipe = _recipe(small_trm_recipe, folder, f"{{reference: both, openvino: [{', '.join(precisions)}]}}")
    recipe.write_text(recipe.read_text() + "quantize: {modes: [int8_weight_only]}\n")
    art = folder / "art"
    shutil.copytree(trm_artefact, art)
    add_int8_weight_only(art)
    run_validate(recipe, art, log=lambda s: None)
    return art


@needs_ov
def test_f32_configuration_answers_like_onnxruntime_float32(validated):
    res = json.loads((validated / "results.json").read_text())
    by = {e["name"]: e for e in res["variants"]}
    ov, ort = by["openvino-f32"], by["float32"]
    assert ov["openvino"]["precision"] == "f32" and ov["openvino"]["graphs"] == "float32"
    vs = ov["vs_onnxruntime_float32"]
    assert vs["halting_step_agreement"] == 1.0 and vs["argmax_agreement_last"] >= 0.999
    assert ov["halting_histogram"] == ort["halting_histogram"]
    assert ov["metrics"]["exact_halted"] == ort["metrics"]["exact_halted"]
    h = ov["host_loop"]  # the deployed loop (early halting, compaction) gives the recorded rollout's answers
    assert h["same_halting_step_as_rollout"] == 1.0 and h["same_answer_as_rollout"] == 1.0
    gates = [g for g in res["gates"] if g["variant"] == "openvino-f32"]
    assert {g["name"] for g in gates} >= {"max_exact_drop", "max_exact_halted_drop", "min_halting_agreement"}
    assert {g["against"] for g in gates} == {"pytorch_float32", "absolute"}  # f32: never the bf16 reference


@needs_ov
@pytest.mark.skipif(not _cpu_has("BF16"), reason="this CPU has no bf16 inference in OpenVINO")
def test_bf16_configuration_is_gated_against_both_references(validated):
    res = json.loads((validated / "results.json").read_text())
    e = next(e for e in res["variants"] if e["name"] == "openvino-bf16")
    assert e["display"].startswith("openvino (bf16") and "vs_pytorch_float32" in e and "vs_reference" in e
    against = {(g["name"], g["against"]) for g in res["gates"] if g["variant"] == "openvino-bf16"}
    for name in ("max_exact_drop", "max_exact_halted_drop", "min_halting_agreement"):
        assert {(name, "pytorch_float32"), (name, "pytorch_bfloat16")} <= against
    report = (validated / "report.md").read_text()
    assert "## OpenVINO configurations" in report and "max_exact_drop on openvino-bf16 vs pytorch_bfloat16" in report
    assert "max_exact_drop vs pytorch_float32" in (validated / "junit.xml").read_text()


@needs_ov
@pytest.mark.skipif(not _cpu_has("INT8"), reason="this CPU has no INT8 inference in OpenVINO")
def test_int8_configuration_runs_the_weight_only_graphs_and_is_gated(validated, tmp_path):
    """openvino-int8: the int8_weight_only graphs with activations quantized per token group, gated against float32
    PyTorch, compared with onnxruntime's rollout of the same graphs, recorded for `verify --full`."""
    from edgekit.runtime import open_runner
    from edgekit.runtime.verify import verify

    res = json.loads((validated / "results.json").read_text())
    e = next(e for e in res["variants"] if e["name"] == "openvino-int8")
    assert e["openvino"]["graphs"] == "int8_weight_only" and e["openvino"]["activation_group"] == 32
    same = e["vs_onnxruntime_int8_weight_only"]  # same INT8 weights, activations in float on onnxruntime
    assert same["halting_step_agreement"] >= 0.9 and same["argmax_agreement_last"] >= 0.95
    assert e["host_loop"]["same_halting_step_as_rollout"] == 1.0
    gates = [g for g in res["gates"] if g["variant"] == "openvino-int8"]
    assert {(g["name"], g["against"]) for g in gates} >= {("min_halting_agreement", "pytorch_float32")}
    assert "openvino-int8" in (validated / "report.md").read_text()
    rep = verify(validated, full=True, variants=["int8_weight_only"],
                 runner=lambda f, v: open_runner(f, variant=v, backend="openvino", precision="int8",
                                                 cache_dir=tmp_path))  # fmt: skip
    assert rep.full is not None and "openvino-int8" in rep.full.names
    answers = rep.full.answers["int8_weight_only"]
    assert answers["same_halting_steps"] == 1.0 and answers["same_answers"] == 1.0, answers
    from edgekit.cli import app

    args = ["verify", str(validated), "--full", "--backend", "openvino", "--ov-precision", "int8", "--json"]
    res = CliRunner().invoke(app, [*args, "--cache-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output[res.output.index("{") :])["full"]["variants"] == ["int8_weight_only"]


@needs_ov
def test_verify_full_on_openvino_compares_with_the_recorded_configuration(validated, tmp_path):
    from edgekit.runtime import open_runner
    from edgekit.runtime.references import read_references
    from edgekit.runtime.verify import verify

    precision = "bf16" if _cpu_has("BF16") else "f32"
    rep = verify(
        validated,
        full=True,
        variants=["float32"],  # the graphs bf16 and f32 run (the artefact also has int8_weight_only)
        runner=lambda f, v: open_runner(f, variant=v, backend="openvino", precision=precision, cache_dir=tmp_path),
    )
    assert rep.full is not None and f"openvino-{precision}" in rep.full.names
    same = rep.full.answers["float32"]  # the device against the answers recorded for this configuration
    assert same["same_halting_steps"] == 1.0 and same["same_answers"] == 1.0, same
    assert {g["variant"] for g in rep.full.gates} == {f"openvino-{precision}"}
    assert all(g["export_value"] == g["value"] for g in rep.full.gates)
    from edgekit.runtime.manifest import load_manifest

    m = load_manifest(validated)
    refs = read_references(validated / "references.npz", m.graph.input, m.graph.step_budget, list(m.variants))
    assert refs.meta["configurations"]["openvino-f32"] == {"variant": "float32", "backend": "openvino",
                                                         "precision": "f32"}  # fmt: skip
