"""docs/recipes.md is generated from the recipe schema: it fails here when the two drift apart, when a key has no
meaning, or when the generator's supplementary meanings name a key the schema no longer has."""

from __future__ import annotations

import subprocess
import sys

from edgekit import recipe_docs
from edgekit.schema import Recipe, Target


def test_committed_page_is_what_the_schema_generates():
    assert recipe_docs.DOC.is_file(), "docs/recipes.md is missing: run `python -m edgekit.recipe_docs --write`"
    assert recipe_docs.DOC.read_text() == recipe_docs.render(), (
        "docs/recipes.md differs from edgekit/schema.py: run `python -m edgekit.recipe_docs --write`"
    )


def test_every_key_is_documented_with_a_meaning():
    keys = recipe_docs.rows(Recipe) + [(f"target:{n}", f) for n, f in Target.model_fields.items()]
    text = recipe_docs.render()
    assert len(keys) > 60
    for key, f in keys:
        assert recipe_docs.meaning(key, f), f"recipe key {key!r} has no description (schema) and no EXTRA entry"
        assert f"`{key.rsplit('.', 1)[-1].split(':')[-1]}`" in text, key


def test_supplementary_meanings_name_existing_keys_only():
    keys = {k for k, _ in recipe_docs.rows(Recipe)} | {f"target:{n}" for n in Target.model_fields}
    assert not set(recipe_docs.EXTRA) - keys, "EXTRA names keys the schema does not have"


def test_check_mode_reports_drift(tmp_path, monkeypatch):
    page = tmp_path / "recipes.md"
    page.write_text(recipe_docs.render().replace("| `n` |", "| `count` |", 1))
    monkeypatch.setattr(recipe_docs, "DOC", page)
    assert recipe_docs.main(["--check"]) == 1
    recipe_docs.main(["--write"])
    assert recipe_docs.main(["--check"]) == 0


def test_module_runs_as_a_script():
    r = subprocess.run([sys.executable, "-m", "edgekit.recipe_docs", "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
