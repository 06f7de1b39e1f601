"""Safe defaults for a user's own model: a recipe that says nothing about halting calibrates the threshold and gates
the answer a device returns (exact at the halting step, halting agreement); a recipe whose gates judge another
configuration than the one deployed gets a warning line."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import yaml
from rich.console import Console

from edgekit.schema import GatesSection, Recipe
from edgekit.validate.gates import deployed_warnings

ROOT = Path(__file__).resolve().parents[2]


def _recipe(**extra) -> Recipe:
    return Recipe.model_validate({"name": "mine", "model": {"path": "ckpt"}, "task": {"name": "sudoku"}, **extra})


def test_a_bare_recipe_calibrates_halting_and_gates_the_deployed_answer():
    r = _recipe()
    assert r.validate_.halt_threshold == "auto"
    assert r.gates.max_exact_halted_drop == 0.01 and r.gates.min_halting_agreement == 0.95
    assert r.gates.max_exact_drop == 0.01  # the full-budget gate stays beside them
    off = _recipe(validate={"halt_threshold": 0.0}, gates={"max_exact_halted_drop": None})
    assert off.validate_.halt_threshold == 0.0 and off.gates.max_exact_halted_drop is None


def test_gates_that_skip_the_deployed_answer_get_a_warning_line():
    assert deployed_warnings(GatesSection(), halting_head=True) == []
    full_only = GatesSection(max_exact_halted_drop=None, min_halting_agreement=None)
    (w,) = deployed_warnings(full_only, halting_head=True)
    assert "max_exact_drop" in w and "halting step" in w and "gates.max_exact_halted_drop" in w
    assert deployed_warnings(full_only, halting_head=False) == []  # a DEQ has no halting step to gate
    one = GatesSection(max_exact_halted_drop=None)  # one deployed-answer gate is enough
    assert deployed_warnings(one, halting_head=True) == []
    tuned = SimpleNamespace(variant="int8", halt_threshold=None, max_steps=8)
    (w,) = deployed_warnings(GatesSection(), halting_head=True, runtime_defaults=tuned)
    assert "tuned runtime defaults (int8, halting threshold never, step cap 8)" in w


def test_the_warning_is_printed_with_the_verdict(tmp_path):
    from edgekit.cli.results_view import print_results

    res = {"recipe": "r", "target": "x86-cpu", "data": "the first 8 examples", "variants": [], "gates": []}
    res |= {"passed": True, "warnings": ["the gates judge something else"]}
    out = io.StringIO()
    print_results(Console(file=out, width=80, color_system=None), res, tmp_path)
    assert "warning: the gates judge something else" in out.getvalue()


def test_bundled_recipes_state_what_they_gate():
    """Every bundled recipe either gates the deployed answer of a halting model or opts out of a halting gate with a
    reason in a comment; DEQ recipes have no halting head."""
    from edgekit.schema import load_recipe

    for path in sorted((ROOT / "recipes").glob("*.yaml")):
        recipe, _ = load_recipe(path)
        raw = yaml.safe_load(path.read_text())
        if "deq" in path.name:
            continue
        gates = raw.get("gates") or {}
        for key in ("max_exact_halted_drop", "min_halting_agreement"):
            if key in gates and gates[key] is None:
                line = next(ln for ln in path.read_text().splitlines() if ln.strip().startswith(f"{key}:"))
                assert "#" in line, f"{path.name}: {key} switched off without saying why"
        halting = [recipe.gates.max_exact_halted_drop, recipe.gates.min_halting_agreement]
        assert any(g is not None for g in halting), path.name
