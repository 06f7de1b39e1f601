"""Every bad input a user can hand the CLI ends as one error line with a documented exit code, no traceback,
and nothing written. The table in this file can be written out for review (EDGEKIT_BAD_INPUT_TABLE)."""

import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp


def _cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "edgekit.cli", *args], capture_output=True, text=True, timeout=600, cwd=cwd
    )


class _Evil:
    def __reduce__(self):
        return (open, ("/tmp/edgekit-pwned", "w"))


def _recipe(tmp, model_path, extra=""):
    tmp.mkdir(exist_ok=True)
    p = tmp / "r.yaml"
    p.write_text(f"schema_version: 1\nname: bad\nmodel: {{path: {model_path}}}\ntask: {{name: digits, n: 20}}\n{extra}")
    return p


def _cases(root, tmp):
    """(label, argv, expected exit code, text the one line must contain)."""
    deq = root / "examples" / "models" / "deq-digits"
    (tmp / "missing").mkdir()
    trunc = tmp / "trunc"
    shutil.copytree(deq, trunc)
    data = (trunc / "model.safetensors").read_bytes()
    (trunc / "model.safetensors").write_bytes(data[: len(data) // 2])
    corrupt = tmp / "corrupt"
    shutil.copytree(deq, corrupt)
    (corrupt / "model.safetensors").write_bytes(b"\x00garbage" * 100)
    evil = tmp / "evil"
    evil.mkdir()
    (evil / "step_1").write_bytes(pickle.dumps({"w": _Evil()}))
    shutil.copy(root / "examples/models/trm-sudoku/all_config.yaml", evil / "all_config.yaml")
    mismatch = tmp / "mismatch"
    shutil.copytree(root / "examples/models/trm-sudoku", mismatch)
    cfg = (mismatch / "all_config.yaml").read_text().replace("hidden_size: 128", "hidden_size: 64")
    (mismatch / "all_config.yaml").write_text(cfg)
    out = str(tmp / "out")
    cases = [
        ("missing checkpoint", ["export", str(_recipe(tmp / "m1", tmp / "missing")), "--out", out], 2, "checkpoint"),
        ("truncated checkpoint", ["export", str(_recipe(tmp / "m2", trunc)), "--out", out], 2, ""),
        ("corrupt checkpoint", ["export", str(_recipe(tmp / "m3", corrupt)), "--out", out], 2, ""),
        ("pickle carrying code", ["export", str(_recipe(tmp / "m4", evil)), "--out", out], 2, ""),
        (
            "checkpoint does not match its config",
            ["export", str(_recipe(tmp / "m5", mismatch)), "--out", out],
            2,
            "hidden_size is 64",
        ),
        (
            "recipe key typo",
            ["export", str(_recipe(tmp / "m6", deq, "gatess: {}\n")), "--out", out],
            2,
            "did you mean 'gates'",
        ),
        (
            "recipe wrong type",
            ["export", str(_recipe(tmp / "m7", deq, "export: {opset: seventeen}\n")), "--out", out],
            2,
            "export.opset",
        ),
        (
            "unknown target",
            ["export", str(_recipe(tmp / "m8", deq, "target: jetson-orin-nanoo\n")), "--out", out],
            2,
            "did you mean 'jetson-orin-nano'",
        ),
        (
            "calibration set of size 0",
            ["export", str(_recipe(tmp / "m9", deq, "quantize: {modes: [int8], calibration: {n: 0}}\n")), "--out", out],
            2,
            "quantize.calibration.n",
        ),
        (
            "unknown quantize mode",
            ["export", str(_recipe(tmp / "m10", deq, "quantize: {modes: [int4]}\n")), "--out", out],
            2,
            "quantize.modes",
        ),
        (
            "onnxruntime-only quantize mode for a TensorRT target",
            [
                "export",
                str(_recipe(tmp / "m12", deq, "target: jetson-orin-nano\nquantize: {modes: [int8_dynamic]}\n")),
                "--out",
                out,
            ],
            2,
            "cannot build",
        ),
        ("recipe is not YAML", ["export", str(tmp / "m11.yaml"), "--out", out], 2, "not valid YAML"),
        ("artefact folder without manifest", ["verify", str(tmp / "missing")], 2, "manifest.json"),
    ]
    (tmp / "m11.yaml").write_text("name: [unclosed\n")
    return cases


def test_bad_inputs_get_one_line_and_leave_nothing(root, tmp_path, capsys):
    import os

    cases = _cases(root, tmp_path)
    rows = []
    for label, argv, code, text in cases:
        r = _cli(*argv)
        lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
        rows.append(f"| {label} | `{lines[0] if lines else ''}` | {r.returncode} |")
        assert r.returncode == code, (label, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr and len(lines) == 1, (label, r.stderr)
        assert text in lines[0], (label, lines[0])
        assert not (tmp_path / "out").exists(), label
    assert not os.path.exists("/tmp/edgekit-pwned")
    table = os.environ.get("EDGEKIT_BAD_INPUT_TABLE")  # the table, written on request
    if table:
        with open(table, "w") as f:
            f.write("\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def runner(trm_artefact):
    from edgekit.runtime import Runner

    return Runner(trm_artefact)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    arr=hnp.arrays(
        dtype=st.sampled_from([np.int64, np.int32, np.uint8, np.float32, np.float64, np.bool_]),
        shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=90),
        elements=None,
    )
)
def test_runtime_input_check_never_crashes(runner, arr):
    """Any array either passes the contract (then it is [batch, 81] int64 tokens in range) or raises the
    runtime's one-line RuntimeInputError — never another exception."""
    from edgekit.runtime import RuntimeInputError

    try:
        ok = runner.check_inputs(arr)
    except RuntimeInputError as e:
        assert "\n" not in str(e)
        return
    assert ok.dtype == np.int64 and ok.ndim == 2 and ok.shape[1] == 81 and ok.shape[0] >= 1
    assert ok.min() >= 0 and ok.max() <= 10


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    arr=hnp.arrays(
        dtype=np.float32,
        shape=st.tuples(st.integers(1, 3), st.just(64)),
        elements=st.floats(allow_nan=True, allow_infinity=True, width=32),
    )
)
def test_float_inputs_with_nan_or_inf_are_refused(arr):
    from types import SimpleNamespace

    from edgekit.manifest import InputContract
    from edgekit.runtime.runner import Runner, RuntimeInputError

    r = Runner.__new__(Runner)
    r.graph = SimpleNamespace(input=InputContract("float32", ("batch", 64)))  # the graph section check_inputs reads
    if np.isfinite(arr).all():
        assert r.check_inputs(arr).shape == arr.shape
    else:
        with pytest.raises(RuntimeInputError, match="NaN or Inf"):
            r.check_inputs(arr)
