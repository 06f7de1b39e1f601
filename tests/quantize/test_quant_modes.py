"""Quantization modes are one file each (edgekit/quantize/modes/): the schema, the stage's dispatch, the Q/DQ lint,
`edgekit check` and `edgekit debug` read the registry. A mode added by one file (tests/fixture_quant_mode.py) is
selectable, validated, dispatched and rebuildable without another file changing."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[2]

# what every built-in mode was before the registry (stage.MODES' tensorrt flags, check.ORT_CPU_OPS' keys)
BUILT_IN = {"int8", "mixed", "int8_weight_only", "int8_dynamic", "int8_per_row", "int8_hybrid", "int8_nbits"}
BUILT_IN |= {"int4_weight_only", "float16", "int8_fp16"}
CPU_ONLY = {"int8_dynamic", "int8_per_row", "int8_hybrid", "int8_nbits", "int4_weight_only"}
ORT_OPS = {"DynamicQuantizeLinear", "MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "MatMulNBits"}

# run in a fresh interpreter: the fixture registers before anything reads the registry
SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    import fixture_quant_mode  # the one file
    from edgekit.errors import RecipeError
    from edgekit.quantize import MODES, QuantizeJob, QuantizeSection, run_quantize
    from edgekit.quantize.modes import Mode, register
    from edgekit.schema import load_recipe

    tmp = Path(sys.argv[1])
    out = {}
    base = "schema_version: 1\\nname: t\\nmodel: {path: m}\\ntask: {name: sudoku}\\n"
    (tmp / "ok.yaml").write_text(base + "quantize: {modes: [fixture_round, int8], fixture_round: {decimals: 1}}\\n")
    recipe, _ = load_recipe(tmp / "ok.yaml")
    out["modes"] = list(recipe.quantize.modes)
    out["decimals"] = recipe.quantize.fixture_round.decimals
    out["default_decimals"] = QuantizeSection().fixture_round.decimals
    out["literal"] = list(QuantizeSection.model_fields["modes"].annotation.__args__[0].__args__)
    refused = {}
    for label, q in {
        "bad_value": "{modes: [fixture_round], fixture_round: {decimals: 9}}",
        "bad_key": "{modes: [fixture_round], fixture_round: {digits: 1}}",
        "unknown_mode": "{modes: [fixture_rounds]}",
    }.items():
        (tmp / f"{label}.yaml").write_text(base + f"quantize: {q}\\n")
        try:
            load_recipe(tmp / f"{label}.yaml")
            refused[label] = None
        except RecipeError as e:
            refused[label] = str(e)
    out["refused"] = refused

    w = np.array([[0.123, -0.456], [0.789, 0.25]], np.float32)
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
        "step",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [numpy_helper.from_array(w, "w")],
    )
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(tmp / "step.onnx"))
    nothing = np.zeros((0, 1))
    section = QuantizeSection.model_validate({"modes": ["fixture_round"], "fixture_round": {"decimals": 1}})
    job = QuantizeJob(None, tmp, section, nothing, nothing, nothing, "t", log=lambda s: None, forms=("step",))
    files, variants, infos = run_quantize(job)
    q = onnx.load(str(tmp / files["fixture_round/step"]))
    out["dispatched"] = {
        "files": files,
        "variants": variants,
        "backends": infos["fixture_round"]["backends"],
        "weights": numpy_helper.to_array(q.graph.initializer[0]).tolist(),
    }
    out["mode"] = {"tensorrt": MODES["fixture_round"].tensorrt, "form": MODES["fixture_round"].form}

    from edgekit.debug.layers import PARTIAL
    from edgekit.recipe_docs import render

    rebuilt = PARTIAL["fixture_round"](onnx.load(str(tmp / "step.onnx")), [], {"decimals": 0}, ["mm"])
    out["partial"] = numpy_helper.to_array(rebuilt.graph.initializer[0]).tolist()
    doc = render()
    out["documented"] = "## `quantize.fixture_round`" in doc and "Rounded weights." in doc
    try:
        register(Mode("late_mode", form="none", summary="too late"))
        out["late"] = None
    except RuntimeError as e:
        out["late"] = str(e)
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def fixture_run(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("quant_mode")
    p = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT / "tests",
        check=False,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_a_mode_file_makes_the_mode_selectable_with_its_own_section(fixture_run):
    r = fixture_run
    assert r["modes"] == ["fixture_round", "int8"] and r["decimals"] == 1 and r["default_decimals"] == 2
    assert "fixture_round" in r["literal"] and set(r["literal"]) >= BUILT_IN
    assert "quantize.fixture_round.decimals" in r["refused"]["bad_value"]
    assert "digits" in r["refused"]["bad_key"]
    assert "fixture_round" in r["refused"]["unknown_mode"]  # the allowed names include it
    assert r["documented"]  # docs/recipes.md would list its section with its own sentence


def test_a_mode_file_is_dispatched_and_rebuilt_by_debug(fixture_run):
    d = fixture_run["dispatched"]
    assert d["files"] == {"fixture_round/step": "fixture_round/step.onnx"}
    assert d["variants"] == {"fixture_round": {"encode": "encode", "step": "fixture_round/step", "readout": "readout"}}
    assert d["backends"] == ["onnxruntime", "tensorrt"]  # read from its form (`none`: TensorRT builds it)
    assert np.allclose(d["weights"], [[0.1, -0.5], [0.8, 0.2]])
    assert fixture_run["mode"] == {"tensorrt": True, "form": "none"}
    assert np.allclose(fixture_run["partial"], [[0.0, -0.0], [1.0, 0.0]])


def test_modes_register_only_before_the_schema_reads_them(fixture_run):
    assert "registered after the recipe schema was built" in fixture_run["late"]


def test_built_in_modes_keep_their_backends_and_check_names():
    from edgekit.quantize import MODES, cpu_only_modes
    from edgekit.tensorrt.check import ORT_CPU_OPS

    assert set(MODES) == BUILT_IN
    assert set(cpu_only_modes(list(MODES))) == CPU_ONLY
    assert set(ORT_CPU_OPS) == ORT_OPS
    assert all(m.handler is not None for n, m in MODES.items() if n != "float16")
    assert MODES["float16"].handler is None  # an export precision: the pipeline exports it


def _qdq_graph(zero_point: np.ndarray) -> onnx.ModelProto:
    inits = [
        numpy_helper.from_array(np.array(0.1, np.float32), "s"),
        numpy_helper.from_array(zero_point, "z"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="q"),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], name="dq"),
    ]
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        inits,
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_the_lint_reads_the_declared_form():
    from edgekit.quantize.lint import form_violations
    from edgekit.quantize.modes import FORMS, Form

    signed, unsigned = _qdq_graph(np.array(0, np.int8)), _qdq_graph(np.array(128, np.uint8))
    assert form_violations(signed, FORMS["qdq_int8"]) == []
    assert any("zero point dtype uint8" in v for v in form_violations(unsigned, FORMS["qdq_int8"]))
    assert form_violations(unsigned, FORMS["per_row"]) == []  # onnxruntime forms: not TensorRT's rules
    assert form_violations(signed, FORMS["none"]) == ["1 QuantizeLinear nodes in a form without Q/DQ"]
    fp8 = Form(True, "fp8", (), "a TensorRT form whose rules the lint does not have")
    assert form_violations(signed, fp8) == ["no Q/DQ rules for fp8 (known: int8)"]


def test_no_module_outside_the_mode_files_names_a_mode():
    """Mode names as string constants only in edgekit/quantize/modes/ (int8 and float16 are also precision and
    type names, so not counted): a mode is dispatched through the registry, never through a table elsewhere."""
    names = BUILT_IN - {"int8", "float16"}
    found = []
    for p in sorted((ROOT / "edgekit").rglob("*.py")):
        if p.parent.name == "modes" and p.parent.parent.name == "quantize":
            continue
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in names:
                found.append(f"{p.relative_to(ROOT)}:{node.lineno} {node.value}")
    assert found == []


def test_the_tensorrt_target_hint_names_the_modes_tensorrt_builds():
    """An onnxruntime-only mode asked for a TensorRT target is refused with the quantized modes whose declared form
    TensorRT builds, read from the registry (no list of names in the pipeline)."""
    from types import SimpleNamespace

    from edgekit.errors import RecipeError
    from edgekit.pipeline import _check_modes
    from edgekit.quantize import MODES

    recipe = SimpleNamespace(quantize=SimpleNamespace(modes=["int8", "int8_dynamic"]))
    with pytest.raises(RecipeError, match="int8_dynamic make onnxruntime CPU graphs") as e:
        _check_modes(recipe, SimpleNamespace(backend="tensorrt", name="jetson-orin-nano"))
    built = [n for n, m in MODES.items() if m.tensorrt and m.qdq_form.qdq is not None]
    assert built == ["int8", "int8_fp16", "int8_weight_only", "mixed"]
    assert "use int8, int8_fp16, int8_weight_only or mixed for TensorRT targets" in str(e.value)
    _check_modes(recipe, SimpleNamespace(backend="onnxruntime", name="x86-cpu"))  # CPU targets take them
