"""TensorRT targets: static check, on-device build plans, engine manifests, and the TensorRT path.

Everything except the tests marked `tensorrt` runs without TensorRT or a GPU. The `tensorrt` tests need the real
TensorRT Python package and a GPU; they skip, with the reason, where it is absent. TensorRT is never faked.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from hand_made_artefact import write_manifest
from onnx import TensorProto, helper, numpy_helper

from edgekit.artefact import sha256_file, write_json
from edgekit.errors import IncompatibleError, InputError, RecipeError
from edgekit.schema import load_target, target_names
from edgekit.tensorrt import versions
from edgekit.tensorrt.build_spec import make_recipe
from edgekit.tensorrt.check import check_artefact, check_onnx
from edgekit.tensorrt.engine_manifest import ENGINE_MANIFEST, make_manifest, read_manifest, timing_cache_key, verify
from edgekit.tensorrt.graphs import describe
from edgekit.tensorrt.plan import write_plan

EDGEKIT = [sys.executable, "-m", "edgekit.cli"]
# docs/tensorrt.md's commands (tests/system/test_readme.py reads this): test_docs_commands runs them on the demo
# artefact
DOCS_COMMANDS = (r"^\.venv/bin/edgekit (check|plan|build) artefacts/trm-sudoku --target [\w-]+$",)
TRT_TARGETS = [t for t in target_names() if load_target(t).backend == "tensorrt"]
NO_TRT_REASON = "TensorRT is not installed (it cannot be installed on this machine: PyPI ships only stubs)"


def _tensorrt_present() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:  # the PyPI bindings wheel raises ImportError when libnvinfer is missing
        return False
    return True


HAVE_TRT = _tensorrt_present()


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*EDGEKIT, *args], capture_output=True, text=True, timeout=300)


# -- artefacts ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def deq_artefact(root, tmp_path_factory) -> Path:
    """The DEQ demo through the real pipeline on 32 digits (a few seconds)."""
    from edgekit.pipeline import run_export

    d = tmp_path_factory.mktemp("deq")
    text = (root / "recipes" / "deq-digits.yaml").read_text()
    text = text.replace("path: ../examples/models/deq-digits", f"path: {root / 'examples/models/deq-digits'}")
    text = text.replace("n: 450", "n: 32").replace("output: ../artefacts/deq-digits", f"output: {d / 'artefact'}")
    (d / "deq.yaml").write_text(text)
    out = run_export(d / "deq.yaml", log=lambda s: None)
    assert out.exit_code == 0, out.results
    return out.folder


@pytest.fixture(scope="session")
def hrm_artefact(root, tmp_path_factory) -> Path:
    """The HRM demo's encode/step/readout graphs with their manifest, exported directly: the full pipeline validates
    every form on Sudoku (minutes on 2 cores), which the compatibility check does not need."""
    from edgekit.export.manifest import input_spec, write_initial_state
    from edgekit.export.onnx_export import export_step_graphs
    from edgekit.models.checkpoint import load_model

    d = tmp_path_factory.mktemp("hrm") / "artefact"
    d.mkdir()
    model = load_model(root / "examples/models/hrm-sudoku", forward_dtype="float32")
    graphs = export_step_graphs(model, d, 17)
    files = {g.name: g.path.name for g in graphs}
    init = write_initial_state(model, d, files)
    write_json(
        d / "manifest.json",
        {
            "schema_version": 1,
            "target": "x86-cpu",
            "recipe": {"name": "hrm-sudoku", "sha256": None},
            "model": {"family": model.family},
            "graph": {
                "form": "step",
                "opset": 17,
                "state_names": list(model.state_names),
                "step_budget": model.step_budget,
                "input": input_spec(model),
                "initial_state": init.to_json(),
            },
            "files": files,
            "variants": {"float32": {g: g for g in ("encode", "step", "readout")}},
            "sha256": {n: sha256_file(d / rel) for n, rel in files.items()},
        },
    )
    return d


ARTEFACTS = ["trm_artefact", "hrm_artefact", "deq_artefact"]


def make_artefact(folder: Path, models: dict[str, onnx.ModelProto]) -> Path:
    """An artefact folder around hand-made graphs: each saved as <name>.onnx and listed in manifest.json."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, m in models.items():
        onnx.save(m, str(folder / f"{name}.onnx"))
        files[name] = f"{name}.onnx"
    # graphs named after a role play it; others (good.onnx, bad.onnx) are checked but belong to no variant
    write_manifest(
        folder, files, {"float32": {n: n for n in files if n in ("encode", "step", "readout", "loop", "unrolled")}}
    )
    return folder


def model(nodes, inputs, outputs, inits=(), opset=17, domains=()) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    m = helper.make_model(
        g, opset_imports=[helper.make_opsetid("", opset), *[helper.make_opsetid(d, 1) for d in domains]]
    )
    m.ir_version = 8 if opset <= 18 else 10
    return m


def vi(name: str, dtype=TensorProto.FLOAT, shape=("batch", 4)):
    return helper.make_tensor_value_info(name, dtype, list(shape))


def qdq_model(zp: np.ndarray | None, zp_type=None, opset: int = 17) -> onnx.ModelProto:
    """x -> QuantizeLinear -> DequantizeLinear -> y, with the given zero point (None: no zero point input)."""
    inits = [numpy_helper.from_array(np.array(0.05, np.float32), "scale")]
    ins = ["x", "scale"]
    if zp is not None:
        t = helper.make_tensor("zp", zp_type, [], [zp.item()]) if zp_type else numpy_helper.from_array(zp, "zp")
        inits.append(t)
        ins.append("zp")
    nodes = [
        helper.make_node("QuantizeLinear", ins, ["q"], name="quant"),
        helper.make_node("DequantizeLinear", ["q", *ins[1:]], ["y"], name="dequant"),
    ]
    return model(nodes, [vi("x")], [vi("y")], inits, opset)


def errors(findings) -> list[str]:
    return [f.message for f in findings if f.severity == "error"]


# -- check: every demo artefact, every target --------------------------------------------------------------------------
@pytest.mark.parametrize("artefact", ARTEFACTS)
@pytest.mark.parametrize("target", target_names())
def test_demo_artefacts_pass_check_on_every_target(artefact, target, request):
    folder = request.getfixturevalue(artefact)
    report = check_artefact(folder, target)
    assert report.compatible, [(f.file, f.node, f.message) for f in report.errors()]
    assert report.verdict == "compatible"
    assert set(report.graphs) >= {"encode", "step", "readout"}
    assert all(g["opset"] <= load_target(target).max_opset for g in report.graphs.values())


def test_check_flags_uint8_qdq(tmp_path):
    f, summary = check_onnx(_save(tmp_path, qdq_model(np.array(0, np.uint8))), "jetson-orin-nano")
    assert any("UINT8" in m and "signed" in m for m in errors(f)), f
    assert summary["quantization"] == ["uint8"]


def test_check_flags_nonzero_zero_point(tmp_path):
    f, _ = check_onnx(_save(tmp_path, qdq_model(np.array(3, np.int8))), "jetson-orin-nano")
    assert any("zero point is not 0" in m for m in errors(f)), f


def test_check_flags_missing_zero_point(tmp_path):
    f, _ = check_onnx(_save(tmp_path, qdq_model(None)), "rtx-30")
    assert any("no zero point" in m for m in errors(f)), f


def test_symmetric_int8_qdq_passes_on_every_tensorrt_target(tmp_path):
    path = _save(tmp_path, qdq_model(np.array(0, np.int8)))
    for t in TRT_TARGETS:
        f, summary = check_onnx(path, t)
        assert not errors(f), (t, f)
        assert summary["quantization"] == ["int8"]


def test_fp8_qdq_only_where_the_target_has_fp8(tmp_path):
    path = _save(tmp_path, qdq_model(np.array(0.0), TensorProto.FLOAT8E4M3FN, opset=19))
    assert not errors(check_onnx(path, "hopper")[0])
    assert not errors(check_onnx(path, "rtx-40")[0])
    assert any("no fp8" in m for m in errors(check_onnx(path, "jetson-orin-nano")[0]))


def test_opset_21_is_above_jetson_but_fine_for_onnxruntime(tmp_path):
    path = _save(tmp_path, model([helper.make_node("Relu", ["x"], ["y"])], [vi("x")], [vi("y")], opset=21))
    assert any(
        "opset 21 is above the target's maximum 20" in m for m in errors(check_onnx(path, "jetson-orin-nano")[0])
    )
    assert not errors(check_onnx(path, "x86-cpu")[0])


def test_unsupported_and_custom_ops(tmp_path):
    m = model(
        [
            helper.make_node("Unique", ["x"], ["y"], name="uniq"),
            helper.make_node("FusedMatMul", ["x", "x"], ["z"], domain="com.microsoft", name="fused"),
        ],
        [vi("x", shape=(4,))],
        [vi("y", shape=("n",)), vi("z", shape=(4,))],
        domains=["com.microsoft"],
    )
    errs = errors(check_onnx(_save(tmp_path, m), "rtx-40")[0])
    assert any("Unique is not supported by TensorRT's ONNX parser" in m for m in errs), errs
    assert any("custom op com.microsoft::FusedMatMul needs a TensorRT plugin" in m for m in errs), errs


def test_onnxruntime_target_loads_the_graph(tmp_path):
    m = model([helper.make_node("NoSuchOp", ["x"], ["y"])], [vi("x")], [vi("y")])
    assert any("onnxruntime cannot load it" in m for m in errors(check_onnx(_save(tmp_path, m), "x86-cpu")[0]))


def test_op_added_after_the_targets_tensorrt(tmp_path):
    m = model(
        [helper.make_node("RMSNormalization", ["x", "w"], ["y"], name="rms")],
        [vi("x"), vi("w", shape=(4,))],
        [vi("y")],
        opset=20,
    )
    path = _save(tmp_path, m)
    assert any("needs TensorRT >= 10.15" in m for m in errors(check_onnx(path, "jetson-orin-nano")[0]))
    f = check_onnx(path, "hopper")[0]  # 10.0 to 11.x: possible, so a warning
    assert not errors(f) and any("parsed from TensorRT 10.15" in x.message for x in f if x.severity == "warning")


def test_slice_axes_must_be_constant_before_tensorrt_10_3(tmp_path):
    nodes = [helper.make_node("Slice", ["x", "s", "e", "axes"], ["y"], name="slice")]
    inits = [
        numpy_helper.from_array(np.array([0], np.int64), "s"),
        numpy_helper.from_array(np.array([2], np.int64), "e"),
    ]
    m = model(nodes, [vi("x"), vi("axes", TensorProto.INT64, (1,))], [vi("y", shape=("batch", 2))], inits)
    path = _save(tmp_path, m)
    assert any("Slice `axes` must be a build-time constant" in m for m in errors(check_onnx(path, "rtx-30")[0]))
    assert not errors(check_onnx(path, "jetson-orin-nano")[0])  # 10.3 takes tensor axes (CHANGELOG 10.3)


def test_double_tensors_warn_but_pass(tmp_path):
    m = model(
        [
            helper.make_node("Cast", ["x"], ["d"], to=TensorProto.DOUBLE),
            helper.make_node("Cast", ["d"], ["y"], to=TensorProto.FLOAT),
        ],
        [vi("x")],
        [vi("y")],
    )
    f, _ = check_onnx(_save(tmp_path, m), "jetson-orin-nano")
    assert not errors(f) and any("DOUBLE" in x.message for x in f if x.severity == "warning")


def _loop_model(trip: int | None, cond: bool, grow: bool = False, scan_used: bool = False) -> onnx.ModelProto:
    """Loop carrying s [1, 4] (or growing it by concatenation), optionally with a scan output."""
    body_nodes = [helper.make_node("Identity", ["cond_in"], ["cond_out"])]
    if grow:
        body_nodes.append(helper.make_node("Concat", ["s_in", "s_in"], ["s_out"], axis=0))
    else:
        body_nodes.append(helper.make_node("Add", ["s_in", "one"], ["s_out"]))
    body_nodes.append(helper.make_node("Identity", ["s_out"], ["scan"]))
    body = helper.make_graph(
        body_nodes,
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("s_in", TensorProto.FLOAT, [1, 4]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("s_out", TensorProto.FLOAT, [2 if grow else 1, 4]),
            helper.make_tensor_value_info("scan", TensorProto.FLOAT, [2 if grow else 1, 4]),
        ],
        initializer=[numpy_helper.from_array(np.ones((1, 4), np.float32), "one")],
    )
    inits = [numpy_helper.from_array(np.zeros((1, 4), np.float32), "s0")]
    if trip is not None:
        inits.append(numpy_helper.from_array(np.array(trip, np.int64), "M"))
    if cond:
        inits.append(numpy_helper.from_array(np.array(True), "c"))
    loop = helper.make_node(
        "Loop",
        ["M" if trip is not None else "", "c" if cond else "", "s0"],
        ["s_final", "scans"],
        name="loop",
        body=body,
    )
    nodes = [loop]
    outputs = [helper.make_tensor_value_info("s_final", TensorProto.FLOAT, None)]
    if scan_used:
        nodes.append(helper.make_node("Identity", ["scans"], ["scans_out"]))
        outputs.append(helper.make_tensor_value_info("scans_out", TensorProto.FLOAT, None))
    return model(nodes, [], outputs, inits)


def test_loop_rules(tmp_path):
    check = lambda m, name: check_onnx(_save(tmp_path, m, name), "jetson-orin-nano")[0]  # noqa: E731
    assert not errors(check(_loop_model(4, cond=False), "good"))
    assert any("neither a trip count" in m for m in errors(check(_loop_model(None, cond=False), "no_limit")))
    assert any("dummy length of 1024" in m for m in errors(check(_loop_model(None, cond=True, scan_used=True), "scan")))
    assert any("changes shape" in m for m in errors(check(_loop_model(4, cond=False, grow=True), "grow")))


def test_if_branches_need_different_output_names(tmp_path):
    def branch():
        return helper.make_graph(
            [helper.make_node("Identity", ["x"], ["same"])],
            "b",
            [],  # noqa: E731
            [helper.make_tensor_value_info("same", TensorProto.FLOAT, ["batch", 4])],
        )

    node = helper.make_node("If", ["c"], ["y"], then_branch=branch(), else_branch=branch(), name="if")
    m = model([node], [vi("x"), vi("c", TensorProto.BOOL, ())], [vi("y")])
    assert any("different names" in m for m in errors(check_onnx(_save(tmp_path, m), "rtx-40")[0]))


def test_check_artefact_reports_every_file_and_a_verdict(tmp_path):
    folder = make_artefact(
        tmp_path / "a", {"good": qdq_model(np.array(0, np.int8)), "bad": qdq_model(np.array(0, np.uint8))}
    )
    report = check_artefact(folder, "jetson-orin-nano")
    assert not report.compatible and report.verdict == "incompatible"
    assert {f.file for f in report.errors()} == {"bad.onnx"}
    d = report.to_dict()
    assert d["verdict"] == "incompatible" and d["counts"]["error"] >= 1 and set(d["graphs"]) == {"good", "bad"}


def _save(tmp_path: Path, m: onnx.ModelProto, name: str = "m") -> Path:
    p = tmp_path / f"{name}.onnx"
    onnx.save(m, str(p))
    return p


# -- CLI: exit codes ---------------------------------------------------------------------------------------------------
def test_cli_check_compatible_exits_0(trm_artefact):
    r = cli("check", "--target", "jetson-orin-nano", str(trm_artefact))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "COMPATIBLE" in r.stdout and "INCOMPATIBLE" not in r.stdout


def test_cli_check_incompatible_exits_6_and_json(tmp_path):
    folder = make_artefact(tmp_path / "a", {"step": qdq_model(np.array(5, np.int8))})
    r = cli("check", "--target", "jetson-orin-nano", str(folder))
    assert r.returncode == 6 and "INCOMPATIBLE" in r.stdout and "zero point is not 0" in r.stdout
    r = cli("check", "--target", "jetson-orin-nano", "--json", str(folder))
    assert r.returncode == 6
    report = json.loads(r.stdout)
    assert report["verdict"] == "incompatible" and report["findings"][0]["severity"] == "error"


def test_cli_bad_target_exits_2_with_one_line(trm_artefact):
    r = cli("check", "--target", "jetson-orin-nan", str(trm_artefact))
    assert r.returncode == 2 and "did you mean 'jetson-orin-nano'" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_cli_plan_and_build_refuse_the_onnxruntime_target(trm_artefact):
    for cmd in ("plan", "build"):
        r = cli(cmd, "--target", "x86-cpu", str(trm_artefact))
        assert r.returncode == 2 and "no engine to build" in r.stderr, r.stderr


def test_cli_plan_refuses_an_incompatible_artefact_with_6(tmp_path):
    folder = make_artefact(tmp_path / "a", {"step": qdq_model(np.array(0, np.uint8))})
    r = cli("plan", "--target", "jetson-orin-nano", str(folder))
    assert r.returncode == 6 and not (folder / "build_jetson-orin-nano.sh").exists()


@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed here, so `edgekit build` would build")
def test_cli_build_without_tensorrt_exits_5_and_says_how_to_build_on_device(trm_artefact, tmp_path):
    r = cli("build", "--target", "jetson-orin-nano", "--out", str(tmp_path / "engines"), str(trm_artefact))
    assert r.returncode == 5, r.stdout + r.stderr
    assert "TensorRT is not installed" in r.stderr and "edgekit plan --target jetson-orin-nano" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "engines").exists()


def test_cli_plan_writes_the_script(trm_artefact, tmp_path):
    r = cli("plan", "--target", "rtx-40", "--out", str(tmp_path), "--graphs", "encode,step,readout", str(trm_artefact))
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "build_rtx-40.sh").is_file() and "build_rtx-40.sh" in r.stdout


def _docs_commands() -> list[str]:
    import re

    text = (Path(__file__).resolve().parents[2] / "docs" / "tensorrt.md").read_text()
    blocks = re.findall(r"^```bash\n(.*?)^```", text, re.S | re.M)
    return [ln.strip() for b in blocks for ln in b.splitlines() if re.match(DOCS_COMMANDS[0], ln.strip())]


@pytest.mark.parametrize("cmd", _docs_commands())
def test_docs_commands(cmd, trm_artefact, tmp_path):
    """docs/tensorrt.md's check / plan / build lines on a copy of the demo artefact (`artefacts/trm-sudoku` stands
    for it): check and plan exit 0, plan writes the script into the artefact, build exits 5 without TensorRT."""
    art = tmp_path / "trm-sudoku"
    shutil.copytree(trm_artefact, art)
    args = [str(art) if a == "artefacts/trm-sudoku" else a for a in shlex.split(cmd)[1:]]
    command, target = args[0], args[-1]
    if command == "build" and HAVE_TRT:
        pytest.skip("TensorRT is installed here: the build's outcome depends on this GPU")
    r = cli(*args)
    want = 5 if command == "build" else 0
    assert r.returncode == want, r.stdout + r.stderr
    if command == "plan":
        assert (art / f"build_{target}.sh").is_file() and "engines: float32 at fp32" in r.stdout
    if command == "build":
        assert "TensorRT is not installed" in r.stderr and not (art / "engines").exists()


# -- plan: the on-device script ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("target", TRT_TARGETS)
def test_plan_script_per_target(target, trm_artefact, tmp_path):
    tg = load_target(target)
    path = write_plan(trm_artefact, tg, tmp_path)
    text = path.read_text()
    assert path.name == f"build_{target}.sh" and os.access(path, os.X_OK)
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0
    assert text.splitlines()[0] == "#!/usr/bin/env bash" and "set -euo pipefail" in text
    prof = tg.profile()
    manifest = json.loads((trm_artefact / "manifest.json").read_text())
    for name, rel in manifest["files"].items():
        if not rel.endswith(".onnx"):
            continue
        assert f"check_sha {rel} {manifest['sha256'][name]}" in text
        assert f'--onnx="$ART"/{shlex.quote(rel)}' in text  # every value quoted (hostile names: test_trust_boundary)
        # input names and non-batch dims come from the ONNX file itself
        dyn = [
            (i.name, "x".join(map(str, i.dims[1:]))) for i in describe(trm_artefact / rel).inputs if i.batch_axis == 0
        ]
        for flag, b in (("min", prof.min), ("opt", prof.opt), ("max", prof.max)):
            assert f"--{flag}Shapes=" + ",".join(f"{n}:{b}x{rest}" for n, rest in dyn) in text
    assert f"--memPoolSize=workspace:{tg.workspace_mb}M" in text
    # the demo artefact has a float32 variant only: fp32 engines, TF32 off in weak and strongly typed builds alike
    assert "# Variant float32 at fp32: the artefact has no float16 variant" in text
    assert 'if [ "$TYPED" = weak ]; then PREC=(--noTF32); elif [ "$TRT_MAJOR" -ge 11 ]; then PREC=(--noTF32); ' in text
    assert "else PREC=(--stronglyTyped --noTF32); fi" in text and "--fp16" not in text and "--int8" not in text
    assert '--timingCacheFile="$(cache_file ' in text and "--skipInference" in text
    assert versions.bash_test(tg.tensorrt) in text
    assert f'[ "$GPU_CC" = {tg.compute_capability} ]' in text
    if tg.device_model:
        assert tg.device_model in text and "/proc/device-tree/model" in text


def test_plan_shapes_come_from_the_onnx(trm_artefact, tmp_path):
    recipe = make_recipe(trm_artefact, "jetson-orin-nano", graphs=["step"])
    (g,) = recipe.graphs
    dims = {i.name: i.dims[1:] for i in describe(trm_artefact / "step.onnx").inputs}
    assert g.shapes == {n: {"min": [1, *d], "opt": [4, *d], "max": [16, *d]} for n, d in dims.items()}
    assert g.trtexec_shape_flags()[0].startswith("--minShapes=") and g.weak_precisions == [] and not g.tf32


def test_plan_int8_for_qdq_graphs(tmp_path):
    """INT8 where the graph quantizes, float32 (TF32 off) elsewhere, as onnxruntime validated it: no FP16 flag unless
    asked for (it used to be added, and those layers' FP16 numbers were never validated)."""
    folder = make_artefact(tmp_path / "a", {"step": qdq_model(np.array(0, np.int8))})
    recipe = make_recipe(folder, "jetson-agx-orin")
    assert recipe.precision == "int8" and recipe.graphs[0].trtexec_weak_flags() == ["--int8", "--noTF32"]
    assert recipe.graphs[0].trtexec_strong_flags(11) == ["--noTF32"]
    text = write_plan(folder, "jetson-agx-orin").read_text()
    assert "PREC=(--int8 --noTF32)" in text and "--minShapes=x:1x4 --optShapes=x:16x4 --maxShapes=x:64x4" in text
    asked = make_recipe(folder, "jetson-agx-orin", precision="fp16").graphs[0]
    assert asked.trtexec_weak_flags() == ["--int8", "--fp16"] and asked.label() == "int8 Q/DQ + fp16"


def test_plan_refuses_what_the_target_cannot_do(trm_artefact):
    with pytest.raises(RecipeError, match="not offered by target"):
        make_recipe(trm_artefact, "jetson-orin-nano", precision="fp8")
    with pytest.raises(RecipeError, match="needs Q/DQ nodes"):
        make_recipe(trm_artefact, "rtx-40", precision="int8")
    r = make_recipe(trm_artefact, "rtx-30", precision="fp32", graphs=["readout"])
    assert r.graphs[0].trtexec_weak_flags() == ["--noTF32"]


def _variants_artefact(folder: Path, gates: dict[str, list[tuple[str, bool, str]]] | None) -> Path:
    """An artefact with float32, float16 and int8 variants of one step graph and, unless `gates` is None, a
    results.json whose gates are variant -> [(gate name, passed, kind)]."""
    relu = lambda: model([helper.make_node("Relu", ["x"], ["y"])], [vi("x")], [vi("y")])  # noqa: E731
    make_artefact(folder, {"step": relu()})
    (folder / "float16").mkdir()
    (folder / "int8").mkdir()
    onnx.save(relu(), str(folder / "float16" / "step.onnx"))
    onnx.save(qdq_model(np.array(0, np.int8)), str(folder / "int8" / "step.onnx"))
    files = {"step": "step.onnx", "float16/step": "float16/step.onnx", "int8/step": "int8/step.onnx"}
    write_manifest(
        folder,
        files,
        {v: {"step": k} for v, k in (("float32", "step"), ("float16", "float16/step"), ("int8", "int8/step"))},
    )
    if gates is not None:
        name = lambda v: v  # noqa: E731  # results.json names variants as --variant does
        write_json(
            folder / "results.json",
            {
                "variants": [{"name": name(v)} for v in gates],
                "gates": [
                    {"name": g, "variant": name(v), "value": 0.5, "limit": 0.01, "passed": ok, "kind": kind}
                    for v, gs in gates.items()
                    for g, ok, kind in gs
                ],
                "passed": all(ok for gs in gates.values() for _, ok, _ in gs),
            },
        )
    return folder


PASS = [("min_exact", True, "accuracy"), ("max_exact_drop", True, "accuracy")]


def test_plan_defaults_to_the_float16_variant_only_when_it_passed(tmp_path):
    ok = make_recipe(_variants_artefact(tmp_path / "a", {"float32": PASS, "float16": PASS, "int8": PASS}), "rtx-40")
    assert list(ok.variants) == ["float16"] and ok.precision == "fp16"
    assert "float16 variant passed its 2 accuracy gates" in ok.reason
    (g,) = ok.graphs
    assert g.name == "float16/step" and g.trtexec_weak_flags() == ["--fp16"] and g.strong_mismatch() is None
    assert g.engine == "float16-step.engine" and ok.variants["float16"]["roles"] == {"step": "float16/step"}

    failed = [("min_exact", True, "accuracy"), ("max_exact_drop", False, "accuracy")]
    bad = make_recipe(_variants_artefact(tmp_path / "b", {"float32": PASS, "float16": failed}), "rtx-40")
    assert list(bad.variants) == ["float32"] and bad.precision == "fp32" and bad.graphs[0].name == "step"
    assert "float16 variant failed max_exact_drop" in bad.reason
    assert bad.graphs[0].trtexec_weak_flags() == ["--noTF32"]

    # a budget gate (latency on the validating CPU) says nothing about an engine's numbers
    budget = [*PASS, ("max_latency_ms", False, "budget")]
    assert list(make_recipe(_variants_artefact(tmp_path / "c", {"float16": budget}), "rtx-40").variants) == ["float16"]
    none = make_recipe(_variants_artefact(tmp_path / "d", None), "rtx-40")
    assert list(none.variants) == ["float32"] and "no results.json" in none.reason
    assert any("nothing validated" in n for n in none.notes)
    # a target without fp16 keeps float32 whatever passed
    nofp16 = load_target("rtx-40").model_copy(update={"precisions": ["fp32", "int8"]})
    assert list(make_recipe(tmp_path / "a", nofp16).variants) == ["float32"]


def test_plan_int8_engines_come_from_the_int8_variant(tmp_path):
    folder = _variants_artefact(tmp_path / "a", {"float32": PASS, "float16": PASS, "int8": PASS})
    r = make_recipe(folder, "jetson-orin-nano", precision="int8")
    assert list(r.variants) == ["int8"] and "validated at int8" in r.reason
    assert r.graphs[0].name == "int8/step" and r.graphs[0].trtexec_weak_flags() == ["--int8", "--noTF32"]
    both = make_recipe(folder, "jetson-orin-nano", variants=["float32", "int8"])
    assert [g.name for g in both.graphs] == ["step", "int8/step"] and both.precision == "fp32+int8"
    # fp16 layers around INT8 only when asked, and said to be unvalidated
    mixed = make_recipe(folder, "jetson-orin-nano", precision="fp16", variants=["int8"])
    assert mixed.graphs[0].trtexec_weak_flags() == ["--int8", "--fp16"]
    assert any("validated at int8; fp16 engines of it were not validated" in n for n in mixed.notes)
    with pytest.raises(RecipeError, match="no variant 'int4'"):
        make_recipe(folder, "jetson-orin-nano", variants=["int4"])
    with pytest.raises(RecipeError, match="include no 'loop'"):
        make_recipe(folder, "jetson-orin-nano", graphs=["loop"])


def test_plan_fp16_on_float32_graphs_is_said_to_be_unvalidated_and_weak_only(trm_artefact, tmp_path):
    r = make_recipe(trm_artefact, "rtx-40", precision="fp16", graphs=["step"])
    (g,) = r.graphs
    assert g.trtexec_weak_flags() == ["--fp16"] and g.trtexec_strong_flags(11) == []
    assert "keeps its graph's fp32 under strongly typed TensorRT" in g.strong_mismatch()
    assert any(n.startswith("strongly typed builds (TensorRT 11") for n in r.notes)
    assert any("fp16 engines of it were not validated" in n for n in r.notes)
    text = write_plan(trm_artefact, "rtx-40", tmp_path, precision="fp16", graphs=["step"]).read_text()
    assert '[ "$TYPED" = weak ] || echo "warning: TensorRT $TRT_VERSION, strongly typed: "' in text


def test_plan_reads_results_json_strictly(tmp_path):
    folder = _variants_artefact(tmp_path / "a", {"float16": PASS})
    (folder / "results.json").write_text("{not json")
    with pytest.raises(InputError, match="results.json is not valid JSON"):
        make_recipe(folder, "rtx-40")
    (folder / "results.json").write_text("[]")
    with pytest.raises(InputError, match="not an edgekit results.json"):
        make_recipe(folder, "rtx-40")


def test_cli_plan_says_which_variant_and_why(tmp_path):
    folder = _variants_artefact(tmp_path / "a", {"float32": PASS, "float16": PASS})
    r = cli("plan", "--target", "rtx-40", "--out", str(tmp_path / "o"), str(folder))
    assert r.returncode == 0, r.stderr
    assert "engines: float16 at fp16 — the float16 variant passed its 2 accuracy gates" in r.stdout
    r = cli("plan", "--target", "rtx-40", "--variant", "float32,int8", "--out", str(tmp_path / "o"), str(folder))
    assert r.returncode == 0 and "engines: float32 at fp32, int8 at int8 — asked for with --variant" in r.stdout
    assert "int8-step.engine" in (tmp_path / "o" / "build_rtx-40.sh").read_text()
    r = cli("build", "--target", "rtx-40", "--variant", "nope", str(folder))
    assert r.returncode == 2 and "no variant 'nope'" in r.stderr


def test_plan_script_stops_on_a_changed_onnx(tmp_path):
    folder = make_artefact(tmp_path / "a", {"step": qdq_model(np.array(0, np.int8))})
    script = write_plan(folder, "jetson-orin-nano")
    onnx.save(qdq_model(np.array(0, np.int8), opset=18), str(folder / "step.onnx"))
    r = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, timeout=60, env={**os.environ, "TRTEXEC": "/nonexistent"}
    )
    assert r.returncode == 1 and "step.onnx has sha256" in r.stderr and "re-run edgekit plan" in r.stderr


def test_plan_script_needs_trtexec(tmp_path):
    folder = make_artefact(tmp_path / "a", {"step": qdq_model(np.array(0, np.int8))})
    script = write_plan(folder, "rtx-30")
    env = {**os.environ, "TRTEXEC": str(tmp_path / "no-trtexec")}
    r = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 1 and "trtexec not found" in r.stderr


def test_plan_script_writes_an_engine_manifest_the_runtime_accepts(tmp_path):
    """Run the script's manifest step (section 5) on its own, with the values trtexec and the GPU would give."""
    folder = make_artefact(
        tmp_path / "a", {"step": qdq_model(np.array(0, np.int8)), "readout": qdq_model(np.array(0, np.int8))}
    )
    text = write_plan(folder, "jetson-orin-nano").read_text()
    wanted = ("die()", "json_str()", "sha()", "TMPS=", "fresh()", "publish()")
    helpers = "\n".join(ln for ln in text.splitlines() if ln.startswith(wanted))
    section = text[text.index("# 5. The engine manifest") :]
    engines = tmp_path / "engines"
    engines.mkdir()
    for name in ("step", "readout"):
        (engines / f"{name}.engine").write_bytes(name.encode() * 10)  # bytes to hash; no engine is built here
    prelude = (
        f"set -euo pipefail\nENGINE_DIR={engines}\nTRT_VERSION=10.3.0\nGPU_NAME='NVIDIA Jetson \"Orin\" Nano'\n"
        'GPU_CC=8.7\nL4T="# R36 (release), REVISION: 4.0"\nTYPED=weak\nFLAGS_step="--int8 --fp16"\n'
        'FLAGS_readout="--int8 --fp16"\n'
    )
    r = subprocess.run(["bash", "-c", prelude + helpers + "\n" + section], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    m = read_manifest(engines)
    assert m["tensorrt_version"] == "10.3.0" and m["gpu"] == {
        "name": 'NVIDIA Jetson "Orin" Nano',
        "compute_capability": "8.7",
    }
    assert m["engines"]["step"]["flags"] == "--int8 --fp16" and m["strongly_typed"] is False
    assert m["l4t"] == "# R36 (release), REVISION: 4.0"
    assert m["engines"]["step"]["onnx_sha256"] == sha256_file(folder / "step.onnx")
    assert m["build_recipe"]["target"] == "jetson-orin-nano" and len(m["build_recipe_sha256"]) == 64
    assert verify(m, "10.3.0.26", 'NVIDIA Jetson "Orin" Nano', "8.7", engines) == []
    assert m["engines"]["readout"]["engine_bytes"] == 70 and {p.name for p in engines.iterdir()} == {
        "engine_manifest.json", "step.engine", "readout.engine"
    }, "sizes recorded, no temporary file left"  # fmt: skip
    with pytest.raises(IncompatibleError, match="TensorRT 10.3.0"):
        verify(m, "10.4.0", "x", "8.7")


# -- engine manifest, versions, targets --------------------------------------------------------------------------------
def test_engine_manifest_refuses_other_gpus_and_tensorrt(tmp_path):
    (tmp_path / "step.engine").write_bytes(b"plan")
    m = make_manifest(
        "rtx-40",
        "tensorrt-python",
        "10.8.0",
        "NVIDIA GeForce RTX 4090",
        "8.9",
        False,
        {},
        "0" * 64,
        {"step": {"file": "step.engine", "engine_sha256": sha256_file(tmp_path / "step.engine")}},
    )
    assert verify(m, "10.8.0.43", "NVIDIA GeForce RTX 4090", "8.9", tmp_path) == []
    with pytest.raises(IncompatibleError, match="built with TensorRT 10.8.0"):
        verify(m, "10.9.0", "NVIDIA GeForce RTX 4090", "8.9")
    with pytest.raises(IncompatibleError, match="compute capability 8.9"):
        verify(m, "10.8.0", "NVIDIA GeForce RTX 3090", "8.6")
    assert "rebuild here" in verify(m, "10.8.0", "NVIDIA GeForce RTX 4080", "8.9")[0]
    (tmp_path / "step.engine").write_bytes(b"changed")
    with pytest.raises(IncompatibleError, match="does not match its sha256"):
        verify(m, "10.8.0", "NVIDIA GeForce RTX 4090", "8.9", tmp_path)
    assert timing_cache_key("a" * 64, "10.8.0", "gpu", "8.9") != timing_cache_key("a" * 64, "10.9.0", "gpu", "8.9")


def test_versions():
    assert versions.in_range("10.3.0.26", ">=10.3,<10.4") and not versions.in_range("10.4", ">=10.3,<10.4")
    assert versions.lowest(">=10.3,<10.4") == (10, 3, 0)
    assert versions.admits_major(">=10.0,<12", 11) and not versions.admits_major(">=10.0,<11", 11)
    assert versions.admits_at_least(">=10.0,<11", (10, 15, 0)) and not versions.admits_at_least(
        ">=10.3,<10.4", (10, 15, 0)
    )
    assert versions.bash_test(">=10.3,<10.4") == '[ "$TRT_NUM" -ge 100300 ] && [ "$TRT_NUM" -lt 100400 ]'
    with pytest.raises(RecipeError):
        versions.parse_range("~10.3")


def test_targets_carry_batch_profiles():
    from pydantic import ValidationError

    from edgekit.schema import BatchProfile

    for name in target_names():
        p = load_target(name).profile()
        assert 1 <= p.min <= p.opt <= p.max
    assert (
        load_target("jetson-orin-nano").tensorrt == ">=10.3,<10.4"
        and load_target("jetson-orin-nano").compute_capability == "8.7"
    )
    assert "fp8" in load_target("hopper").precisions and "fp8" not in load_target("jetson-agx-orin").precisions
    with pytest.raises(ValidationError):
        BatchProfile(min=8, opt=4, max=16)


# -- runtime backend without TensorRT ----------------------------------------------------------------------------------
def test_tensorrt_backend_imports_without_torch_or_tensorrt():
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['tensorrt'] = None\n"
        "import edgekit.runtime.tensorrt_backend as b\nassert 'torch' not in [m for m in sys.modules if sys.modules[m]]"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed here")
def test_tensorrt_runner_without_tensorrt_raises_toolchain_unavailable(trm_artefact, tmp_path):
    from edgekit.errors import ToolchainUnavailable
    from edgekit.runtime.tensorrt_backend import TensorRTRunner

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from fake_tensorrt import write_fake_engines

    folder = tmp_path / "engines"
    write_fake_engines(trm_artefact, folder, ["encode", "step", "readout"])  # a folder that passes the host checks
    with pytest.raises(ToolchainUnavailable, match="TensorRT is not installed") as e:
        TensorRTRunner(trm_artefact, engines=folder)
    assert e.value.exit_code == 5


# -- the TensorRT path (real TensorRT and a GPU only) ------------------------------------------------------------------
def _local_target():
    """The TensorRT target matching this machine's GPU and TensorRT, or skip."""
    if not HAVE_TRT:
        pytest.skip(NO_TRT_REASON)
    import tensorrt as trt

    from edgekit.tensorrt.toolchain import gpu_info, tensorrt_version

    _, cc = gpu_info()
    for name in TRT_TARGETS:
        t = load_target(name)
        if t.compute_capability == cc and versions.in_range(tensorrt_version(trt), t.tensorrt):
            return t
    pytest.skip(f"no target matches this GPU (compute capability {cc}) and TensorRT {trt.__version__}")


@pytest.mark.tensorrt
@pytest.mark.parametrize("artefact", ARTEFACTS)
def test_tensorrt_parser_accepts_what_check_passes(artefact, request):
    if not HAVE_TRT:
        pytest.skip(NO_TRT_REASON)
    import tensorrt as trt

    folder = request.getfixturevalue(artefact)
    logger = trt.Logger(trt.Logger.WARNING)
    for rel in json.loads((folder / "manifest.json").read_text())["files"].values():
        if rel.endswith(".onnx"):
            network = trt.Builder(logger).create_network(0)
            parser = trt.OnnxParser(network, logger)
            assert parser.parse_from_file(str(folder / rel)), [
                str(parser.get_error(i)) for i in range(parser.num_errors)
            ]


@pytest.mark.tensorrt
def test_tensorrt_engines_match_onnxruntime(trm_artefact, tmp_path):
    target = _local_target()
    from edgekit.runtime import Runner
    from edgekit.runtime.tensorrt_backend import TensorRTRunner
    from edgekit.tasks import sudoku
    from edgekit.tensorrt.tensorrt_builder import build_engines

    art = tmp_path / "art"
    shutil.copytree(trm_artefact, art)
    engines = build_engines(
        art,
        target,
        precision="fp32",
        graphs=["encode", "step", "readout"],
        cache_dir=tmp_path / "cache",
        log=lambda s: None,
    )
    manifest = read_manifest(engines)
    assert set(manifest["engines"]) == {"encode", "step", "readout"} and manifest["built_with"] == "tensorrt-python"
    pool = sudoku.SudokuPool.generate(8, seed=5)
    x, _ = pool.sample(8, (30, 40), np.random.default_rng(5), augment=False)
    ref = Runner(art).run(x, steps=4)
    got = TensorRTRunner(art, target.name).run(x, steps=4)
    for a, b in zip(ref.preds, got.preds):
        assert (a == b).mean() >= 0.99
    # a second build reuses the timing cache named by content hash
    assert any((tmp_path / "cache").iterdir())
    # an engine manifest for another TensorRT is refused before anything is deserialized
    m = json.loads((engines / ENGINE_MANIFEST).read_text())
    m["tensorrt_version"] = "9.0.0"
    (engines / ENGINE_MANIFEST).write_text(json.dumps(m))
    with pytest.raises(InputError, match="built with TensorRT 9.0.0"):
        TensorRTRunner(art, target.name)
