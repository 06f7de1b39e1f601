"""The on-device build script (`edgekit plan`) run end to end against stand-ins for trtexec and nvidia-smi.

The stand-in trtexec prints the banner of the TensorRT release it plays (10.3 or 11.1), logs its arguments and writes
a placeholder file where `--saveEngine` points; the stand-in nvidia-smi names a GPU. Nothing here is an engine: what
is checked is what the script asks of trtexec and what it records — the engine manifest parses and the runtime's
check accepts it for that TensorRT and GPU, precision flags appear only where the TensorRT release has them (`--fp16`
/ `--int8` on 10.x weakly typed builds, never on 11), float32 engines keep TF32 off in weak and strongly typed
builds, and the profile's shape names are the ONNX graph's inputs. The artefact is never written to.

Runs without a GPU (`python -m pytest tests/tensorrt_stage/test_plan_stub_trtexec.py`); on a GPU machine the stand-in
nvidia-smi comes first on PATH, so the result does not depend on the real GPU.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from hand_made_artefact import variants_artefact
from onnx import TensorProto, helper, numpy_helper

from edgekit.artefact import sha256_file
from edgekit.tensorrt.engine_manifest import read_manifest, verify
from edgekit.tensorrt.plan import write_plan

PRECISION_FLAGS = {"--fp16", "--bf16", "--int8", "--fp8", "--noTF32", "--stronglyTyped"}
GPUS = {"rtx-40": ("NVIDIA GeForce RTX 4090", "8.9"), "hopper": ("NVIDIA H200", "9.0")}
# (TensorRT number trtexec prints, EDGEKIT_STRONGLY_TYPED): 10.3 weak, 10.3 strongly typed, 11.1 (always strong)
MODES = [("100300", "0"), ("100300", "1"), ("110100", "0")]

TRTEXEC = r"""#!/usr/bin/env bash
# stand-in for trtexec: the banner of TensorRT v$STUB_TRT_NUM, its arguments logged, a placeholder engine written
n=$(ls "$STUB_LOG" | wc -l)
printf '%s\0' "$@" > "$STUB_LOG/call-$(printf %03d "$n")"
echo "&&&& RUNNING TensorRT.trtexec [TensorRT v${STUB_TRT_NUM}] [b1] # trtexec $*"
for a in "$@"; do
  case "$a" in --saveEngine=*) echo "not an engine: stand-in trtexec $STUB_TRT_NUM" > "${a#--saveEngine=}";; esac
done
echo "&&&& PASSED TensorRT.trtexec [TensorRT v${STUB_TRT_NUM}] # trtexec"
"""
NVIDIA_SMI = r"""#!/usr/bin/env bash
case "$*" in
  *compute_cap*) echo "$STUB_GPU_CC";;
  *name*) echo "$STUB_GPU_NAME";;
  *) exit 1;;
esac
"""


def _is_jetson() -> bool:
    try:
        return b"jetson" in Path("/proc/device-tree/model").read_bytes().lower()
    except OSError:
        return False


pytestmark = pytest.mark.skipif(
    _is_jetson(), reason="on a Jetson the script reads the GPU from the device tree, not from nvidia-smi"
)


def _version(num: str) -> str:
    n = int(num)
    return f"{n // 10000}.{n // 100 % 100}.{n % 100}"


def run_plan(artefact: Path, tmp: Path, target: str, trt_num: str, strong: str, **plan_args) -> dict:
    """Write the plan outside the artefact, run it with the stand-ins; return the calls' argv, the engine folder
    and its manifest."""
    stubs, log, engines = tmp / "bin", tmp / "log", tmp / "engines"
    for d in (stubs, log):
        d.mkdir(parents=True)
    for name, text in (("trtexec", TRTEXEC), ("nvidia-smi", NVIDIA_SMI)):
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)
    script = write_plan(artefact, target, tmp / "plan", **plan_args)
    gpu, cc = GPUS[target]
    env = {
        **os.environ,
        "PATH": f"{stubs}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "TRTEXEC": str(stubs / "trtexec"),
        "ENGINE_DIR": str(engines),
        "EDGEKIT_CACHE_DIR": str(tmp / "cache"),
        "EDGEKIT_STRONGLY_TYPED": strong,
        "EDGEKIT_FORCE": "0",
        "STUB_LOG": str(log),
        "STUB_TRT_NUM": trt_num,
        "STUB_GPU_NAME": gpu,
        "STUB_GPU_CC": cc,
    }
    before = sorted(p.relative_to(artefact) for p in artefact.rglob("*"))
    r = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(p.relative_to(artefact) for p in artefact.rglob("*")) == before, "the plan wrote into the artefact"
    calls = [p.read_bytes().split(b"\0")[:-1] for p in sorted(log.iterdir())]
    argv = [[a.decode() for a in c] for c in calls]
    builds = [a for a in argv if any(x.startswith("--saveEngine=") for x in a)]
    assert len(builds) + 1 == len(argv), "one version query, then one trtexec run per engine"
    return {"builds": builds, "engines": engines, "manifest": read_manifest(engines), "stderr": r.stderr}


def _opt(argv: list[str], name: str) -> str:
    (v,) = [a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")]
    return v


def _batch_inputs(path: Path) -> list[str]:
    """Inputs of the ONNX graph (not initializers) with a symbolic first dimension, read with onnx itself."""
    m = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in m.graph.initializer}
    return [
        i.name
        for i in m.graph.input
        if i.name not in inits and i.type.tensor_type.shape.dim and i.type.tensor_type.shape.dim[0].dim_param
    ]


@pytest.mark.parametrize("target", sorted(GPUS))
@pytest.mark.parametrize("trt_num, strong", MODES)
def test_fp32_plan_against_stub_trtexec(trm_artefact, tmp_path, target, trt_num, strong):
    """The demo artefact (float32 only): fp32 engines for every graph, TF32 off whatever the typing."""
    out = run_plan(trm_artefact, tmp_path, target, trt_num, strong)
    m, engines = out["manifest"], out["engines"]
    gpu, cc = GPUS[target]
    assert verify(m, _version(trt_num), gpu, cc, engines) == []
    assert m["tensorrt_version"] == _version(trt_num) and m["gpu"] == {"name": gpu, "compute_capability": cc}
    typed = trt_num.startswith("11") or strong == "1"
    assert m["strongly_typed"] is typed and m["build_recipe"]["precision"] == "fp32"
    manifest = json.loads((trm_artefact / "manifest.json").read_text())
    keys = set(manifest["variants"]["float32"].values())  # every graph of the float32 variant, nothing else
    assert {k: e["onnx"] for k, e in m["engines"].items()} == {k: manifest["files"][k] for k in keys}
    for argv in out["builds"]:
        flags = [a for a in argv if a in PRECISION_FLAGS]
        assert "--noTF32" in flags, argv
        assert not {"--fp16", "--int8", "--bf16", "--fp8"} & set(flags), argv
        assert ("--stronglyTyped" in flags) == (typed and trt_num.startswith("10")), argv
        onnx_rel = os.path.relpath(_opt(argv, "onnx"), trm_artefact)
        (key,) = [k for k, e in m["engines"].items() if e["onnx"] == onnx_rel]
        entry = m["engines"][key]
        assert entry["flags"] == " ".join(flags) and entry["onnx_sha256"] == sha256_file(trm_artefact / onnx_rel)
        saved = Path(_opt(argv, "saveEngine"))  # a fresh temporary name, renamed to the entry's file afterwards
        assert saved.parent == engines and saved.name.startswith(".engine.") and not saved.exists()
        assert entry["engine_sha256"] == sha256_file(engines / entry["file"])
        names = _batch_inputs(trm_artefact / onnx_rel)
        for which in ("min", "opt", "max"):
            spec = _opt(argv, f"{which}Shapes") if names else ""
            assert [s.split(":")[0] for s in spec.split(",") if s] == names, (which, argv)
        assert _opt(argv, "timingCacheFile").startswith(str(tmp_path / "cache"))


@pytest.mark.parametrize("trt_num, strong", MODES)
def test_fp16_flags_only_on_weakly_typed_tensorrt_10(trm_artefact, tmp_path, trt_num, strong):
    out = run_plan(trm_artefact, tmp_path, "rtx-40", trt_num, strong, precision="fp16", graphs=["step"])
    (argv,) = out["builds"]
    weak = trt_num.startswith("10") and strong == "0"
    assert ("--fp16" in argv) is weak and "--noTF32" not in argv, argv
    # a strongly typed build cannot make a float32 graph fp16: the script says so instead of pretending
    assert ("strongly typed: step.engine keeps its graph's fp32" in out["stderr"]) is not weak, out["stderr"]
    assert out["manifest"]["engines"]["step"]["flags"] == " ".join(a for a in argv if a in PRECISION_FLAGS)


def _qdq_artefact(folder: Path) -> Path:
    """A one-graph artefact whose step graph is symmetric INT8 Q/DQ (what edgekit's int8 variants hold)."""
    scale = numpy_helper.from_array(np.array(0.05, np.float32), "scale")
    zp = numpy_helper.from_array(np.array(0, np.int8), "zp")
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "scale", "zp"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "scale", "zp"], ["y"]),
    ]
    g = helper.make_graph(
        nodes,
        "step",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        initializer=[scale, zp],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return variants_artefact(folder, {"int8": model})


@pytest.mark.parametrize("trt_num, strong", MODES)
def test_int8_flag_only_on_weakly_typed_tensorrt_10(tmp_path, trt_num, strong):
    art = _qdq_artefact(tmp_path / "art")
    out = run_plan(art, tmp_path, "hopper", trt_num, strong)
    (argv,) = out["builds"]
    flags = [a for a in argv if a in PRECISION_FLAGS]
    weak = trt_num.startswith("10") and strong == "0"
    assert flags == (["--int8", "--noTF32"] if weak else ["--stronglyTyped", "--noTF32"][trt_num.startswith("11") :])
    assert "--fp16" not in argv and _opt(argv, "minShapes") == "x:1x4" and _opt(argv, "maxShapes") == "x:256x4"
    assert out["manifest"]["build_recipe"]["precision"] == "int8"
    assert verify(out["manifest"], _version(trt_num), *GPUS["hopper"], out["engines"]) == []


@pytest.mark.parametrize("trt_num, strong", MODES)
def test_float16_qdq_graph_is_strongly_typed_on_every_tensorrt(tmp_path, trt_num, strong):
    """A Q/DQ graph that also computes in float16 (the int8_fp16 mode's form): strongly typed on 10.x even with
    EDGEKIT_STRONGLY_TYPED=0 (weakly typed, its Casts would not decide those layers' precision), no precision flag."""
    from qdq_fp16_graph import qdq_model

    art = variants_artefact(tmp_path / "art", {"int8_fp16": qdq_model()})
    out = run_plan(art, tmp_path, "hopper", trt_num, strong)
    (argv,) = out["builds"]
    flags = [a for a in argv if a in PRECISION_FLAGS]
    assert flags == ["--stronglyTyped", "--noTF32"][trt_num.startswith("11") :], argv
    m = out["manifest"]
    assert m["strongly_typed"] is True and m["build_recipe"]["precision"] == "int8+fp16"
    assert m["engines"]["int8_fp16/step"]["flags"] == " ".join(flags)
    assert verify(m, _version(trt_num), *GPUS["hopper"], out["engines"]) == []


# -- the script's own files: temporary files from mktemp, caches private, every value quoted -------------------------
def test_planted_links_and_a_shared_timing_cache_folder_are_not_used(trm_artefact, tmp_path):
    """The manifest was written through the fixed name engine_manifest.json.tmp (a link planted there overwrote
    its target) and timing caches went into any folder, one others could write included. Now the temporary file
    comes from mktemp and a cache folder must be the user's private one, as for every edgekit cache."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    engines = tmp_path / "engines"
    engines.mkdir()
    for name in ("engine_manifest.json.tmp", ".engine_manifest.json.tmp"):
        (engines / name).symlink_to(victim)
    (tmp_path / "cache").mkdir()
    os.chmod(tmp_path / "cache", 0o777)
    out = run_plan(trm_artefact, tmp_path, "rtx-40", "100300", "0", graphs=["step"])
    assert victim.read_text() == "precious\n" and all((engines / n).is_symlink() for n in ("engine_manifest.json.tmp",))
    (argv,) = out["builds"]
    assert not any(a.startswith("--timingCacheFile") for a in argv), argv
    assert "building without a timing cache" in out["stderr"] and list((tmp_path / "cache").iterdir()) == []
    left = {p.name for p in engines.iterdir()} - {"engine_manifest.json", "step.engine", "step.build.log"}
    assert left == {"engine_manifest.json.tmp", ".engine_manifest.json.tmp"}, left  # no temporary file left over
    umask = os.umask(0)
    os.umask(umask)
    assert (engines / "engine_manifest.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_links_planted_at_the_engine_and_log_names_are_replaced_not_followed(trm_artefact, tmp_path):
    """trtexec wrote the engine, and the shell its build log, straight to their final names, so links planted there
    (a copied artefact's engines/ folder) overwrote their targets. Now both go to mktemp files renamed into place,
    and the engine manifest records each engine's size."""
    engines = tmp_path / "engines"
    engines.mkdir()
    victims = {}
    for name in ("step.engine", "step.build.log"):
        victims[name] = tmp_path / f"victim-{name}"
        victims[name].write_text("precious\n")
        (engines / name).symlink_to(victims[name])
    out = run_plan(trm_artefact, tmp_path, "rtx-40", "100300", "0", graphs=["step"])
    assert all(v.read_text() == "precious\n" for v in victims.values())
    assert not any((engines / n).is_symlink() for n in victims) and (engines / "step.engine").is_file()
    assert {p.name for p in engines.iterdir()} == {"engine_manifest.json", "step.engine", "step.build.log"}
    entry = out["manifest"]["engines"]["step"]
    assert entry["engine_bytes"] == (engines / "step.engine").stat().st_size > 0
    umask = os.umask(0)
    os.umask(umask)
    assert (engines / "step.engine").stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_missing_timing_cache_folder_is_created_private(trm_artefact, tmp_path):
    out = run_plan(trm_artefact, tmp_path, "rtx-40", "100300", "0", graphs=["step"])
    (argv,) = out["builds"]
    assert _opt(argv, "timingCacheFile").startswith(str(tmp_path / "cache") + "/")
    assert (tmp_path / "cache").stat().st_mode & 0o777 == 0o700 and "warning" not in out["stderr"]


def test_an_artefact_path_with_quotes_spaces_and_substitutions_is_one_word(trm_artefact, tmp_path):
    """The plan written outside the artefact named it as "${1:-'PATH'}": inside double quotes the single quotes
    stayed literal (any path with a space failed) and a `$(...)` in the path ran."""
    art = tmp_path / "my art $(echo INJECTED >&2) 'q\" `echo TICK >&2`"
    shutil.copytree(trm_artefact, art)
    out = run_plan(art, tmp_path / "run", "rtx-40", "100300", "0", graphs=["step"])
    assert "INJECTED" not in out["stderr"] and "TICK" not in out["stderr"]
    (argv,) = out["builds"]
    assert _opt(argv, "onnx") == str(art / "step.onnx")
