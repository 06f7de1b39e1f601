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
    assert {
        "x86-cpu",
        "jetson-orin-nano",
        "jetson-orin-nx",
        "jetson-agx-orin",
        "jetson-orin-nano-jp7",
        "jetson-orin-nx-jp7",
        "jetson-agx-orin-jp7",
        "rtx-30",
        "rtx-40",
        "rtx-50",
        "hopper",
    } <= set(names)
    for n in names:
        assert load_target(n).name == n
    assert not (root / "targets").exists(), "targets live in edgekit/targets/ (package data), not at the root"
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


# -- targets: shipped inside the package, read without a YAML library -------------------------------------------------
def test_the_target_reader_agrees_with_yaml_on_every_shipped_file():
    """The standard-library reader (what the base install uses) gives exactly what yaml.safe_load gives."""
    import yaml

    from edgekit import targets

    for name in targets.target_names():
        text = targets.resources.files("edgekit.targets").joinpath(f"{name}.yaml").read_text()
        assert targets.read_target(name) == yaml.safe_load(text), name


@pytest.mark.parametrize(
    "text, message",
    [
        ("a: 1\na: 2\n", "given twice"),
        ("a:\n  b: 1\n", "expected `key: value`"),
        ("  a: 1\n", "indented"),
        ("a: yes\n", "quote the value"),
        ("a: 1e5\n", "quote the value"),
        ("a: 2024-01-01\n", "quote the value"),
        ("a: 010\n", "quote the value"),
        ("a: b: c\n", "quote the value"),
        ("a: [1, [2]]\n", "nested"),
        ("a: [1, 2\n", "open and close on one line"),
        ("a: {b 1}\n", "expected `{key: value"),
        ("a: 'x\n", "unterminated quote"),
        ("a: &x 1\n", "quote the value"),
        ("- 1\n", "expected `key: value`"),
    ],
)
def test_the_target_reader_refuses_what_it_might_read_differently_from_yaml(text, message):
    from edgekit.targets import TargetFileError, parse

    with pytest.raises(TargetFileError, match=re.escape(message)):
        parse(text)


def test_the_target_reader_reads_the_subset_like_yaml():
    import yaml

    from edgekit.targets import parse

    text = (
        "schema_version: 1\nname: x  # comment\ndescription: A, B (c; d) e/f\nq: '#not a comment'\n"
        'r: ">=10.3,<10.4"\nl: [1, 2.5, a, "b, c"]\nm: {min: 1, opt: 4, max: 16}\nt: true\nn: null\n'
        "f: -0.5\ne: []\n"
    )
    assert parse(text) == yaml.safe_load(text)


def test_unknown_target_names_are_never_paths():
    for bad in ("../pyproject", "x86-cpu/../x86-cpu", "/etc/passwd", ""):
        with pytest.raises(RecipeError, match="unknown target"):
            load_target(bad)


def test_jetson_targets_state_their_platform():
    six = [load_target(n) for n in ("jetson-orin-nano", "jetson-orin-nx", "jetson-agx-orin")]
    seven = [load_target(n) for n in ("jetson-orin-nano-jp7", "jetson-orin-nx-jp7", "jetson-agx-orin-jp7")]
    for t in six:
        assert (t.jetpack, t.cuda, t.python, t.tensorrt) == (["6.1", "6.2"], "12.6", "3.10", ">=10.3,<10.4")
        assert "JetPack 6.0 ships TensorRT 8.6" in t.description and "6.x" not in t.description
    for t in seven:
        assert (t.jetpack, t.cuda, t.python, t.compute_capability) == (["7.2"], "13.2", "3.12", "8.7")
        assert t.tensorrt.startswith(">=10.16,")
    from edgekit.tensorrt import versions

    # the `tensorrt>=10.3` extra resolves to TensorRT 11: every desktop target takes it
    for name in ("rtx-30", "rtx-40", "rtx-50", "hopper"):
        assert versions.in_range("11.4.0", load_target(name).tensorrt), name
        assert versions.in_range("10.16.1", load_target(name).tensorrt), name
    assert load_target("rtx-50").compute_capability == "12.0" and not versions.in_range("10.7.0", ">=10.8,<12")
