"""`edgekit tune --ov-precision`: OpenVINO configurations (the float32 graphs on OpenVINO's CPU plugin) scored from
their own recorded rollout and measured one at a time beside the variants; a choice among them is run on the
device by flags, since runtime defaults cannot name a backend."""

from __future__ import annotations

import shutil

import pytest

from edgekit.errors import RecipeError

try:
    import openvino  # noqa: F401

    HAVE_OV = True
except ImportError:
    HAVE_OV = False


@pytest.mark.skipif(not HAVE_OV, reason='openvino is not installed (pip install "edgekit[openvino]")')
def test_tune_scores_and_measures_openvino_configurations(small_trm_recipe, trm_artefact, tmp_path, monkeypatch):
    from edgekit.tune import TuneSettings, run_tune

    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path / "cache"))
    art = tmp_path / "art"
    shutil.copytree(trm_artefact, art)
    s = TuneSettings(100000.0, batch=8, check_n=8, latency_n=8, openvino=["f32"])
    res = run_tune(small_trm_recipe, art, s, log=lambda m: None)
    assert set(res["latency_model"]) == {"float32", "openvino-f32"}
    ov = [c for c in res["front"] if c["variant"] == "openvino-f32"]
    ort = {(c["threshold"], c["cap"]): c["exact"] for c in res["front"] if c["variant"] == "float32"}
    # OpenVINO f32 answers as onnxruntime does: the same configurations score the same
    assert all(ort.get((c["threshold"], c["cap"]), c["exact"]) == c["exact"] for c in ov)
    with pytest.raises(RecipeError, match="--latency-from"):
        run_tune(small_trm_recipe, art, TuneSettings(1.0, openvino=["f32"], latency_from=tmp_path / "t.json"))


def test_an_openvino_choice_is_not_applied_but_said_as_device_flags(tmp_path):
    from edgekit.tune import apply_defaults

    result = {"chosen": {"variant": "openvino-bf16", "threshold": 0.5, "cap": 12}, "budget_ms": 5, "batch": 8}
    with pytest.raises(RecipeError) as e:
        apply_defaults(tmp_path, result)
    assert "--backend openvino --ov-precision bf16 --max-steps 12 --threshold 0.5" in str(e.value)


@pytest.mark.skipif(not HAVE_OV, reason='openvino is not installed (pip install "edgekit[openvino]")')
def test_int8_on_an_artefact_without_its_graphs_is_one_line(small_trm_recipe, trm_artefact):
    from edgekit.tune import TuneSettings, run_tune

    with pytest.raises(RecipeError, match="int8_weight_only in quantize.modes") as e:
        run_tune(small_trm_recipe, trm_artefact, TuneSettings(100000.0, openvino=["int8"]), log=lambda m: None)
    assert "drop that --ov-precision" in e.value.fix
