"""Latency and size gates: measured on the validating machine, exit 4 when only a budget fails."""

from __future__ import annotations

import json

from edgekit.errors import EXIT_ACCURACY_GATE, EXIT_BUDGET_GATE, EXIT_OK
from edgekit.validate.gates import exit_code


def test_budget_failures_are_exit_4_and_accuracy_failures_decide_first():
    acc = {"passed": False, "kind": "accuracy"}
    budget = {"passed": False, "kind": "budget"}
    ok = {"passed": True, "kind": "accuracy"}
    assert exit_code([ok]) == EXIT_OK
    assert exit_code([ok, budget]) == EXIT_BUDGET_GATE
    assert exit_code([acc, budget]) == EXIT_ACCURACY_GATE


def test_size_and_latency_gates_in_a_recipe(root, tmp_path):
    from edgekit.pipeline import run_export

    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"name: budget\nmodel: {{path: {root / 'examples/models/trm-sudoku'}}}\n"
        "task: {name: sudoku, n: 8, seed: 5}\nexport: {forms: [step]}\n"
        "validate: {latency_batch: 4, latency_n: 8}\n"
        "gates: {max_exact_drop: 0.5, max_size_mb: 0.5, max_latency_ms: 100000}\n"
        f"output: {tmp_path / 'out'}\n"
    )
    out = run_export(recipe, log=lambda s: None)
    res = json.loads((out.folder / "results.json").read_text())
    gates = {g["name"]: g for g in res["gates"]}
    assert out.exit_code == EXIT_BUDGET_GATE and not res["passed"]
    assert not gates["max_size_mb"]["passed"] and gates["max_size_mb"]["kind"] == "budget"
    assert 2 < gates["max_size_mb"]["value"] < 4  # the demo's 2.9 MB of step graphs
    assert gates["max_latency_ms"]["passed"] and gates["max_exact_drop"]["passed"]
    lat = next(v for v in res["variants"] if v["name"] == "float32")["latency"]
    assert lat["batch"] == 4 and lat["examples"] == 8 and lat["ms_per_puzzle"] > 0
