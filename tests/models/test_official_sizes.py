"""Official-size HRM / TRM checkpoints (random init, written in the reference layout by a fixture, never
committed) through the stages. The default run covers the TRM-MLP (5 M) load -> step / Loop /
unrolled export -> runtime -> check, and the loader's EMA / variant handling; `-m slow` runs every official model
through `edgekit export` with quantized variants (benchmarks/official_sizes.py measures the same path)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgekit.errors import CheckpointError
from edgekit.models.act import reference_parameter_count
from edgekit.models.checkpoint import load_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reference_checkpoints import OFFICIAL, write_reference_checkpoint  # noqa: E402

# the references' published parameter counts, without the puzzle embedding
PARAMS = {"hrm-sudoku": 27_275_266, "trm-att-maze": 6_822_914, "trm-mlp-sudoku": 5_028_866}


@pytest.fixture(scope="module")
def trm_mlp(tmp_path_factory) -> Path:
    return write_reference_checkpoint(
        tmp_path_factory.mktemp("official") / "trm-mlp", OFFICIAL["trm-mlp-sudoku"], name="step_26041",
        top={"ema": True},
    )  # fmt: skip


def test_official_trm_mlp_loads_exports_every_form_with_weights_once(trm_mlp, tmp_path):
    from edgekit.export.onnx_export import export_loop, export_step_graphs, export_unrolled

    m = load_model(trm_mlp, forward_dtype="float32")  # seq 81 from the mlp_t weight, EMA keys = model keys
    assert reference_parameter_count(m) == PARAMS["trm-mlp-sudoku"]
    export_step_graphs(m, tmp_path)
    step = onnx.load(str(tmp_path / "step.onnx"))
    raw = [t.raw_data for t in step.graph.initializer if len(t.raw_data) >= 64]
    assert len(raw) == len(set(raw)), "a constant is stored twice in the step graph"
    export_loop(m, tmp_path, tmp_path / "loop.onnx")
    u = export_unrolled(m, tmp_path, tmp_path / "unrolled.onnx")
    step_bytes = (tmp_path / "step.onnx").stat().st_size
    assert u.bytes < 1.2 * step_bytes, (u.bytes, step_bytes)  # 16 steps, one copy of the weights
    weights = 4 * sum(p.numel() for p in m.parameters())
    assert step_bytes < 1.3 * weights  # the step graph itself holds the weights about once


@pytest.mark.slow  # 85 s on a 2-core CPU: one official-size sample through every stage
def test_official_trm_mlp_through_edgekit_export_and_check(trm_mlp, tmp_path):
    """The whole pipeline at official size: a dataset folder, step / Loop / unrolled, validation, and `edgekit
    check` for an 8 GB Orin Nano with the memory estimate in its report."""
    from edgekit.tasks.files import write_reference_layout

    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    write_reference_layout(
        data, {s: (rng.integers(1, 11, (n, 81)), rng.integers(2, 11, (n, 81))) for s, n in [("test", 1), ("train", 2)]},
        vocab_size=11,
    )  # fmt: skip
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"name: official\nmodel: {{path: {trm_mlp}}}\ntask: {{name: sudoku, data: {data}, n: 1}}\n"
        "export: {forms: [step, loop, unrolled]}\nvalidate: {batch_size: 1}\n"
        f"gates: {{min_exact: null}}\noutput: {tmp_path / 'art'}\n"
    )
    r = subprocess.run([sys.executable, "-m", "edgekit.cli", "export", str(recipe)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((tmp_path / "art" / "results.json").read_text())
    onnx_v = next(v for v in res["variants"] if v["name"] == "float32")
    assert onnx_v["unrolled"]["argmax_agreement_with_host_last"] == 1.0
    c = subprocess.run(
        [sys.executable, "-m", "edgekit.cli", "check", str(tmp_path / "art"), "-t", "jetson-orin-nano", "--json"],
        capture_output=True,
        text=True,
    )
    rep = json.loads(c.stdout)
    forms = rep["memory"]["forms"]
    assert set(forms) == {"float32 host loop", "float32 loop", "float32 unrolled"}
    assert 18 < forms["float32 host loop"]["weights_mb"] < 30 and forms["float32 host loop"]["activations_mb"] > 0


def test_trm_variants_the_loader_cannot_map_are_one_line(tmp_path):
    import yaml

    d = write_reference_checkpoint(tmp_path / "m", {**OFFICIAL["trm-mlp-sudoku"], "hidden_size": 64, "num_heads": 2})
    cfg = yaml.safe_load((d / "all_config.yaml").read_text())
    for arch in (
        "recursive_reasoning.trm_singlez@TinyRecursiveReasoningModel_ACTV1",
        "recursive_reasoning.trm_hier6@X",
    ):
        cfg["arch"]["name"] = arch
        (d / "all_config.yaml").write_text(yaml.safe_dump(cfg))
        with pytest.raises(CheckpointError, match="not supported yet") as e:
            load_model(d)
        assert "\n" not in str(e.value)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(OFFICIAL))
def test_official_sizes_through_every_stage(name, tmp_path):
    """benchmarks/official_sizes.py on one model: every form, int8 / int8 weight-only / float16, check."""
    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "o.json"
    r = subprocess.run(
        [sys.executable, str(root / "benchmarks/official_sizes.py"), "--models", name, "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    row = json.loads(out.read_text())[0]
    assert row["params"] >= PARAMS[name] and row["pipeline"]["exit_code"] in (0, 3), row
    assert row["forms"]["unrolled"]["mb"] < 1.3 * row["forms"]["step"]["mb"]
    assert set(row["variants"]) >= {"float32", "int8", "int8_weight_only", "float16"}
