"""Q/DQ graphs that also compute in float16 (the `int8_fp16` mode's form) are built strongly typed: the build recipe,
the plan script's text and the TensorRT Python builder's network flag. Host-side logic only: the builder runs
against a stand-in for the TensorRT builder API that records what it is asked (no engine is built, nothing here
says how TensorRT computes); tests/tensorrt_stage/test_plan_stub_trtexec.py runs the plan script against a stand-in
trtexec."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest
from hand_made_artefact import variants_artefact
from qdq_fp16_graph import qdq_model

from edgekit.errors import IncompatibleError
from edgekit.tensorrt.build_spec import make_recipe
from edgekit.tensorrt.check import check_onnx
from edgekit.tensorrt.graphs import describe
from edgekit.tensorrt.plan import write_plan


@pytest.fixture
def artefact(tmp_path) -> Path:
    return variants_artefact(tmp_path / "art", {"int8": qdq_model(float16=False), "int8_fp16": qdq_model()})


def test_describe_records_the_float_types_a_graph_computes_in(artefact):
    assert describe(artefact / "int8_fp16" / "step.onnx").floats == {"fp16", "fp32"}
    assert describe(artefact / "int8" / "step.onnx").floats == {"fp32"}


@pytest.mark.parametrize("target", ["jetson-orin-nano", "jetson-agx-orin-jp7", "hopper"])
def test_check_passes_the_float16_qdq_graph(artefact, target):
    findings, summary = check_onnx(artefact / "int8_fp16" / "step.onnx", target)
    assert [f.message for f in findings if f.severity == "error"] == [] and summary["quantization"] == ["int8"]


def test_recipe_forces_strong_typing_for_the_float16_qdq_graph_only(artefact):
    r = make_recipe(artefact, "jetson-orin-nano", variants=["int8_fp16"])
    (g,) = r.graphs
    assert r.strongly_typed and g.strongly_typed and r.precision == "int8+fp16"
    assert r.variants["int8_fp16"]["validated_precision"] == "int8+fp16"
    assert g.floats == ["fp16", "fp32"] and g.strong_mismatch() is None
    assert g.trtexec_strong_flags(10) == ["--stronglyTyped", "--noTF32"] and g.trtexec_strong_flags(11) == ["--noTF32"]
    assert g.label() == "int8 Q/DQ + fp16 layers + fp32, strongly typed"
    (note,) = [n for n in r.notes if n.startswith("strongly typed build (forced)")]
    assert "int8_fp16/step computes in float16 beside Q/DQ" in note and "would ignore the Casts" in note
    plain = make_recipe(artefact, "jetson-orin-nano", variants=["int8"])  # unchanged: weakly typed INT8 on 10.x
    assert not plain.strongly_typed and not plain.graphs[0].strongly_typed and plain.precision == "int8"
    assert plain.graphs[0].trtexec_weak_flags() == ["--int8", "--noTF32"]
    assert not any("forced" in n for n in plain.notes)
    both = make_recipe(artefact, "jetson-orin-nano", variants=["int8", "int8_fp16"])
    assert both.strongly_typed and both.precision == "int8+fp16"


def test_plan_script_builds_the_float16_qdq_graph_strongly_typed_whatever_the_environment(artefact, tmp_path):
    text = write_plan(artefact, "jetson-orin-nano", tmp_path / "p", variants=["int8_fp16"]).read_text()
    assert "STRONGLY_TYPED=1  # forced: int8_fp16/step compute in float16 beside Q/DQ" in text
    assert "EDGEKIT_STRONGLY_TYPED:-" not in text  # the environment cannot turn it off
    line = 'if [ "$TRT_MAJOR" -ge 11 ]; then PREC=(--noTF32); else PREC=(--stronglyTyped --noTF32); fi'
    assert line in text and "PREC=(--int8" not in text
    assert "# Note: strongly typed build (forced)" in text
    plain = write_plan(artefact, "jetson-orin-nano", tmp_path / "q", variants=["int8"]).read_text()
    assert 'STRONGLY_TYPED="${EDGEKIT_STRONGLY_TYPED:-0}"' in plain and "PREC=(--int8 --noTF32)" in plain


class _Recorder:
    """What the builder was asked: network creation flags, builder flags set and cleared."""

    def __init__(self) -> None:
        self.network_flags: list[int] = []
        self.set: list[str] = []
        self.cleared: list[str] = []


def _fake_tensorrt(rec: _Recorder, strongly_typed_flag: bool = True) -> Any:
    """The TensorRT builder API calls `edgekit build` makes, recorded; parsing always succeeds and the "engine" is
    a few bytes."""

    class Config:
        def set_memory_pool_limit(self, pool: Any, size: int) -> None: ...

        def set_flag(self, flag: str) -> None:
            rec.set.append(flag)

        def clear_flag(self, flag: str) -> None:
            rec.cleared.append(flag)

        def add_optimization_profile(self, profile: Any) -> None: ...

        def create_timing_cache(self, data: bytes) -> Any:
            return types.SimpleNamespace(serialize=lambda: b"cache")

        def set_timing_cache(self, cache: Any, ignore_mismatch: bool) -> None: ...

        def get_timing_cache(self) -> Any:
            return types.SimpleNamespace(serialize=lambda: b"cache")

    class Builder:
        def __init__(self, logger: Any) -> None: ...

        def create_network(self, flags: int) -> Any:
            rec.network_flags.append(flags)
            return object()

        def create_builder_config(self) -> Config:
            return Config()

        def create_optimization_profile(self) -> Any:
            return types.SimpleNamespace(set_shape=lambda *a: None)

        def build_serialized_network(self, network: Any, config: Any) -> bytes:
            return b"not an engine"

    class OnnxParser:
        num_errors = 0

        def __init__(self, network: Any, logger: Any) -> None: ...

        def parse_from_file(self, path: str) -> bool:
            return True

    creation = types.SimpleNamespace(**({"STRONGLY_TYPED": 5} if strongly_typed_flag else {}))
    return types.SimpleNamespace(
        Logger=type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None}),
        Builder=Builder,
        OnnxParser=OnnxParser,
        NetworkDefinitionCreationFlag=creation,
        BuilderFlag=types.SimpleNamespace(FP16="FP16", BF16="BF16", INT8="INT8", FP8="FP8", TF32="TF32"),
        MemoryPoolType=types.SimpleNamespace(WORKSPACE="WORKSPACE"),
    )


def _build(monkeypatch, artefact: Path, out: Path, variant: str, version: str, flag: bool = True) -> _Recorder:
    from edgekit.tensorrt import tensorrt_builder

    rec = _Recorder()
    monkeypatch.setattr(tensorrt_builder, "require_tensorrt", lambda *a: _fake_tensorrt(rec, flag))
    monkeypatch.setattr(tensorrt_builder, "tensorrt_version", lambda trt: version)
    monkeypatch.setattr(tensorrt_builder, "gpu_info", lambda: ("NVIDIA H200", "9.0"))
    tensorrt_builder.build_engines(
        artefact, "hopper", out=out, cache_dir=out.parent / "cache", log=lambda s: None, variants=[variant]
    )
    return rec


def test_python_builder_sets_the_strongly_typed_network_flag_for_the_float16_qdq_graph(artefact, tmp_path, monkeypatch):
    import json

    rec = _build(monkeypatch, artefact, tmp_path / "e1", "int8_fp16", "10.3.0")
    assert rec.network_flags == [1 << 5] and rec.set == [] and rec.cleared == ["TF32"]
    m = json.loads((tmp_path / "e1" / "engine_manifest.json").read_text())
    assert m["strongly_typed"] is True and m["engines"]["int8_fp16/step"]["flags"] == "--stronglyTyped --noTF32"
    eleven = _build(monkeypatch, artefact, tmp_path / "e2", "int8_fp16", "11.1.0")  # always strongly typed
    assert eleven.network_flags == [0] and eleven.set == []
    plain = _build(monkeypatch, artefact, tmp_path / "e3", "int8", "10.3.0")  # the INT8-only graph: weakly typed
    assert plain.network_flags == [0] and plain.set == ["INT8"]
    with pytest.raises(IncompatibleError, match="needs a strongly typed network"):
        _build(monkeypatch, artefact, tmp_path / "e4", "int8_fp16", "10.3.0", flag=False)
