"""Model families as a registry: exact arch names, one-line refusals, the stopping rule and input contract as data
that the runtime and tasks read, and a family added by one file (tests/fixture_family.py)."""

from __future__ import annotations

import numpy as np
import pytest
from fixture_family import ACT_FIXED_POINT

from edgekit.errors import CheckpointError
from edgekit.manifest import _check_model, rule_of
from edgekit.models import ACTConfig, build_act_model
from edgekit.models.families import FAMILIES, family_for_arch, get_family
from edgekit.runtime.errors import ArtefactError
from edgekit.stopping import FixedPoint, HaltLogit, manifest_entry
from edgekit.tasks import get_task, task_for_inputs


@pytest.fixture
def act_fixed_point(monkeypatch):
    monkeypatch.setitem(FAMILIES, ACT_FIXED_POINT.name, ACT_FIXED_POINT)
    return ACT_FIXED_POINT


def test_arch_names_are_matched_exactly():
    assert family_for_arch("hrm.hrm_act_v1@HierarchicalReasoningModel_ACTV1").name == "hrm"
    assert family_for_arch("recursive_reasoning.hrm@HierarchicalReasoningModel_ACTV1").name == "hrm"
    assert family_for_arch("recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1").name == "trm"
    for name in ("recursive_reasoning.hrm_v2@X", "HRM", "my_trm_model", "hrm.hrm_act_v1x@X", ""):
        with pytest.raises(CheckpointError, match="unknown architecture name") as e:
            family_for_arch(name)
        text = str(e.value)
        assert "\n" not in text
        assert "supported: hrm.hrm_act_v1, recursive_reasoning.hrm, recursive_reasoning.trm" in text
    with pytest.raises(CheckpointError, match=r"six-z TRM\) is not supported yet"):
        family_for_arch("recursive_reasoning.trm_hier6@X")


def test_builtin_families_declare_their_rule_and_contract():
    assert {n: (f.stopping, f.contract) for n, f in FAMILIES.items()} == {
        "trm": ("halt_logit", "tokens"),
        "hrm": ("halt_logit", "tokens"),
        "deq": ("fixed_point", "features"),
    }
    hrm = get_family("hrm").saved_arch_name
    assert hrm is not None
    assert hrm(type("C", (), {"mlp_t": False})()) == "hrm.hrm_act_v1@HierarchicalReasoningModel_ACTV1"
    assert hrm(type("C", (), {"mlp_t": True})()) == "recursive_reasoning.hrm@HierarchicalReasoningModel_ACTV1"
    with pytest.raises(CheckpointError, match="unknown model family 'gpt'; supported: deq, hrm, trm"):
        get_family("gpt")


def test_older_manifests_keep_their_rule_and_new_families_declare_it():
    """The built-in families write no `model.stopping` (their manifests are unchanged); the runtime reads their
    rule from the family; any other family's manifest carries it."""
    assert manifest_entry("trm", "halt_logit") == {} and manifest_entry("deq", "fixed_point") == {}
    assert manifest_entry("act_fixed_point", "fixed_point") == {"stopping": {"kind": "fixed_point"}}
    act = rule_of({"model": {"family": "trm"}, "graph": {"halt_threshold": 0.25}})
    assert act == HaltLogit(0.25) and act.signal == "halt" and act.limit == "halt_threshold"
    solver = {"name": "anderson", "tol": 1e-3, "max_iter": 30, "m": 5}
    deq = rule_of({"model": {"family": "deq", "config": {"solver": solver}}, "graph": {}})
    assert deq == FixedPoint(1e-3, "anderson") and deq.settings == solver and deq.limit == "tol"
    assert list(act.stops(np.array([0.2, 0.3]), 0.25)) == [False, True]
    assert list(deq.stops(np.array([1e-4, 1e-2]), 1e-3)) == [True, False]


def test_a_family_added_by_one_file(act_fixed_point):
    """The fixture family loads by its arch name, builds, declares its rule for the manifest, passes the runtime's
    strict reader, stops by residual in the runtime and fits the token tasks: no other file names it."""
    assert family_for_arch("tests.act_fixed_point@ACTFixedPoint") is act_fixed_point
    config = ACTConfig(
        family="act_fixed_point", seq_len=81, vocab_size=11, H_cycles=1, L_cycles=1, L_layers=1,
        hidden_size=8, expansion=2, num_heads=2, forward_dtype="float32", puzzle_emb_len=0,
    )  # fmt: skip
    model = build_act_model(config)
    assert model.family == "act_fixed_point" and get_family(model.family).input_spec(model) == {
        "dtype": "int64",
        "shape": ["batch", 81],
        "range": [0, 10],
    }
    solver = {"name": "fixed_point", "tol": 1e-3, "max_iter": 16}
    section = {
        "family": "act_fixed_point",
        "config": {"solver": solver},
        **manifest_entry("act_fixed_point", act_fixed_point.stopping),
    }
    _check_model(section, {})  # accepted: the family is new, its stopping rule is one the runtime knows
    assert rule_of({"model": section, "graph": {"halt_threshold": 0.0}}) == FixedPoint(1e-3, "fixed_point")
    spec = get_family("act_fixed_point").input_spec(model)
    assert get_task("sudoku").fits(spec) and not get_task("digits").fits(spec)
    assert task_for_inputs(spec, "act_fixed_point") is get_task("sudoku")


def test_a_fixed_point_family_exports_and_runs_by_one_file(act_fixed_point, tmp_path):
    """The fixture family goes through export with no other file naming it: its step graph's last output is the
    residual its rule stops on, the Loop form stops on it, the manifest declares the rule and carries the solver,
    and the runtime's host loop and Loop form stop each sample where PyTorch's state first moves less than the
    tolerance, with PyTorch's answer there."""
    import torch

    from edgekit.export import ExportPlan, export_forms
    from edgekit.export.manifest import build_manifest, write_initial_state
    from edgekit.runtime import Runner

    torch.manual_seed(0)
    config = ACTConfig(
        family="act_fixed_point", seq_len=9, vocab_size=5, H_cycles=1, L_cycles=1, L_layers=1, hidden_size=8,
        expansion=2, num_heads=2, forward_dtype="float32", puzzle_emb_len=0, halt_max_steps=6,
    )  # fmt: skip
    model = build_act_model(config).eval()
    folder, weights = tmp_path / "artefact", tmp_path / "model.safetensors"
    folder.mkdir()
    weights.write_bytes(b"stand-in weights")
    exported = export_forms(lambda precision: model, folder, ExportPlan(["step", "loop"], ["float32"]))
    files = dict(exported.files)
    manifest = build_manifest(
        model, folder, recipe_name="fixture", recipe_sha256="0" * 64, target="x86-cpu", weights_file=weights,
        forms=["step", "loop"], opset=17, halt_threshold=0.0, files=files, variants=exported.variants,
        export_seconds=exported.seconds, initial_state=write_initial_state(model, folder, files),
    )  # fmt: skip
    (folder / "manifest.json").write_text(manifest.dumps())
    assert manifest.to_json()["model"]["stopping"] == {"kind": "fixed_point"}
    assert "halt" not in manifest.to_json()["graph"]["halting"]

    inputs = torch.randint(1, 5, (16, 9))
    with torch.no_grad():  # PyTorch: per-step residuals and readouts
        x = model.encode(inputs)
        state, residuals, logits = model.initial_state(x), [], []
        for _ in range(model.step_budget):
            state, r = model.step_with_residual(state, x)
            residuals.append(r.numpy())
            logits.append(model.readout(state).logits.numpy())
    res = np.stack(residuals)  # [steps, batch]
    tol = float(np.median(res[2]))  # some samples stop early, others later or at the cap
    assert np.abs(res / tol - 1).min() > 1e-3, "no residual sits on the tolerance"
    stops = res <= tol
    want_steps = np.where(stops.any(0), stops.argmax(0) + 1, model.step_budget)
    assert len(set(want_steps.tolist())) > 1, "samples stop at different steps"
    want_logits = np.stack([logits[t - 1][b] for b, t in enumerate(want_steps)])

    runner = Runner(folder, complete=False)
    assert runner.stopping == FixedPoint(1e-3, "fixed_point") and runner.outputs_of("step")[-1] == "residual"
    for mode in ("host", "loop"):
        sol = runner.solve(inputs.numpy(), mode=mode, threshold=tol)
        assert sol.halt is None
        assert sol.steps.tolist() == want_steps.tolist(), mode
        assert sol.done.tolist() == stops.any(0).tolist(), mode
        np.testing.assert_allclose(sol.logits, want_logits, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"family": "act_fixed_point"}, "model.family 'act_fixed_point' is not one of trm, hrm, deq"),
        ({"family": "x", "stopping": {"kind": "bogus"}}, "model.stopping"),
        ({"family": "x", "stopping": {"kind": "halt_logit", "extra": 1}}, "model.stopping"),
        ({"family": "../x", "stopping": {"kind": "halt_logit"}}, "model.family"),
        ({"family": "x", "stopping": {"kind": "fixed_point"}}, "model.config is missing"),
    ],
)
def test_the_reader_refuses_undeclared_or_bad_stopping(section, message):
    with pytest.raises(ArtefactError, match=message):
        _check_model(section, {})


def test_tasks_fit_the_input_contract_not_the_family():
    tokens = {"dtype": "int64", "shape": ["batch", 81], "range": [0, 10]}
    features = {"dtype": "float32", "shape": ["batch", 64]}
    assert get_task("sudoku").fits(tokens) and get_task("sequence").fits(tokens)
    assert not get_task("sudoku").fits(features) and get_task("digits").fits(features)
    assert get_task("sudoku").fits(tokens, "any-family-name")
