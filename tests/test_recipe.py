"""Recipes are validated before any heavy work; every mistake names the fix."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgekit.errors import RecipeError
from edgekit.schema import load_recipe, load_target, parse_recipe, target_names

GOOD = {"schema_version": 1, "name": "x", "model": {"path": "m"}, "task": {"name": "sudoku"}}


def test_good_recipe_and_defaults():
    r = parse_recipe(GOOD)
    assert r.target == "x86-cpu" and r.export.opset == 17 and r.gates.max_exact_drop == 0.01


@pytest.mark.parametrize(
    "data, message",
    [
        ({**GOOD, "modle": {"path": "m"}}, "unknown key 'modle' (did you mean 'model'?)"),
        ({**GOOD, "task": {"name": "sudoku", "givns": [1, 2]}}, "unknown key 'task.givns' (did you mean 'givens'?)"),
        ({**GOOD, "export": {"opset": "seventeen"}}, "export.opset"),
        ({**GOOD, "target": "jetson-orin-nan"}, "did you mean 'jetson-orin-nano'?"),
        ({**GOOD, "task": {"name": "chess"}}, "task.name"),
        ({**GOOD, "schema_version": 7}, "schema_version 7 is not supported"),
        ({k: v for k, v in GOOD.items() if k != "model"}, "missing required key 'model'"),
    ],
)
def test_bad_recipes_get_one_line_with_the_fix(data, message):
    with pytest.raises(RecipeError) as e:
        parse_recipe(data)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_yaml_errors_and_non_mappings(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("name: [unclosed\n")
    with pytest.raises(RecipeError, match="not valid YAML at line"):
        load_recipe(p)
    p.write_text("- a list\n")
    with pytest.raises(RecipeError, match="mapping"):
        load_recipe(p)
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe(tmp_path / "missing.yaml")


def test_recipes_cannot_run_code(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("!!python/object/apply:os.system ['touch /tmp/edgekit_recipe_pwned']\n")
    with pytest.raises(RecipeError):
        load_recipe(p)


def test_every_target_file_validates_and_bundled_recipes_parse(root):
    names = target_names()
    assert {"x86-cpu", "jetson-orin-nano", "jetson-orin-nx", "jetson-agx-orin", "rtx-30", "rtx-40", "hopper"} <= set(
        names
    )
    for n in names:
        assert load_target(n).name == n
    ignored = {line.strip().strip("/") for line in (root / ".gitignore").read_text().splitlines()}
    for p in (root / "recipes").glob("*.yaml"):
        r, base = load_recipe(p)
        model = (base / r.model.path).resolve()
        if model.exists():
            continue
        # A model that is not committed (random-init, written by an example script) must be ignored by git and
        # written by the script the recipe names, under the name the recipe uses.
        rel = model.relative_to(root.resolve()).as_posix()
        assert rel in ignored, f"{p}: {rel} is neither committed nor ignored"
        scripts = re.findall(r"python (examples/\w+\.py)", p.read_text())
        assert scripts, f"{p}: names no script that writes {rel}"
        assert any(model.name in (root / s).read_text() for s in scripts if (root / s).exists()), p


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=12),
        st.one_of(st.integers(), st.text(max_size=8), st.none(), st.lists(st.integers(), max_size=3)),
        max_size=6,
    )
)
def test_arbitrary_mappings_either_parse_or_raise_recipe_error(data):
    try:
        parse_recipe(data)
    except RecipeError as e:
        assert str(e) and "\n" not in str(e)
