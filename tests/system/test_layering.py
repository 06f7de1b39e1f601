"""ARCHITECTURE.md's "Who may import whom", enforced.

Two checks, because either alone misses things:
- static: every import statement in the package (function-level ones too, which run only on some paths) is read
  with `ast` and checked against the rules below;
- dynamic: modules are imported in a fresh interpreter with a meta-path blocker that refuses the heavy packages,
  as Polygraphy's dependency test imports every submodule in a bare environment.
The last tests plant deliberately wrong imports and check that both checkers flag them.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

HEAVY = ("torch", "onnx", "nncf", "pydantic", "yaml")  # the workstation's packages; onnxruntime is not one
# standard-library-only (numpy at most) modules every layer may use
FOUNDATION = ("edgekit", "edgekit.__version__", "edgekit.errors", "edgekit.artefact", "edgekit.progress")
FOUNDATION += ("edgekit.npyio", "edgekit.targets", "edgekit.stopping", "edgekit.manifest")
STAGES = ("schema", "models", "tasks", "export", "quantize", "validate", "tensorrt", "runtime", "tune", "training")
ORCHESTRATION = ("edgekit.pipeline", "edgekit.cli")


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    line: int
    target: str  # the imported module, relative imports resolved


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def module_imports(path: Path, root: Path) -> list[Import]:
    """Every import a module can execute (not `if TYPE_CHECKING:` blocks), with relative imports resolved."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    is_pkg = parts[-1] == "__init__"
    mod = ".".join(parts[:-1] if is_pkg else parts)
    package = mod if is_pkg else mod.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                for other in child.orelse:
                    visit_stmt(other)
            else:
                visit_stmt(child)

    def visit_stmt(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            found.extend(Import(mod, node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            if node.module:
                found.append(Import(mod, node.lineno, stem))
            else:  # from . import x: x is a module (or a name of the package; the package then)
                found.extend(Import(mod, node.lineno, f"{stem}.{a.name}") for a in node.names)
        visit(node)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def all_imports(root: Path = ROOT) -> list[Import]:
    return [i for p in sorted((root / "edgekit").rglob("*.py")) for i in module_imports(p, root)]


def violations(imports: list[Import]) -> list[str]:
    """The rules of ARCHITECTURE.md, one line per broken import."""
    bad = []
    for i in imports:
        where = f"{i.module}:{i.line} imports {i.target}"
        top = i.target.split(".")[0]
        if _under(i.module, ("edgekit.runtime",)):
            if top in HEAVY:
                bad.append(f"{where}: the runtime imports numpy, onnxruntime and the standard library only")
            elif top == "edgekit" and not _under(i.target, ("edgekit.runtime",)) and i.target not in FOUNDATION:
                bad.append(f"{where}: the runtime imports no other stage")
        if _under(i.module, tuple(f"edgekit.{s}" for s in STAGES)) and _under(i.target, ORCHESTRATION):
            bad.append(f"{where}: no stage imports pipeline or cli")
        device_ok = i.target in FOUNDATION or _under(i.target, ("edgekit.runtime", "edgekit.tasks", "edgekit.cli"))
        if _under(i.module, ("edgekit.cli.device",)) and top == "edgekit" and not device_ok:
            bad.append(f"{where}: device commands import only the runtime and tasks")
    return bad


BLOCKER = f"""
import importlib, json, sys
HEAVY = {HEAVY!r}
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HEAVY:
            raise ImportError(f"{{name}} is blocked: a heavy package")
sys.meta_path.insert(0, _Block())
failed = {{}}
for m in sys.argv[1:]:
    try:
        importlib.import_module(m)
    except Exception as e:  # one line per module that cannot be imported without the heavy packages
        failed[m] = f"{{type(e).__name__}}: {{e}}"
print(json.dumps(failed))
"""


def import_blocked(modules: list[str], python: str = sys.executable) -> dict[str, str]:
    """{module: error} for the modules that cannot be imported in a fresh interpreter without torch, onnx, nncf,
    pydantic and yaml."""
    p = subprocess.run(
        [python, "-c", BLOCKER, *modules], capture_output=True, text=True, timeout=300, cwd=ROOT, check=True
    )
    return json.loads(p.stdout.strip().splitlines()[-1])


def loaded_by(statement: str) -> tuple[float, list[str]]:
    """(seconds, heavy packages left in sys.modules) after `statement` in a fresh interpreter."""
    code = f"import sys, time\nt = time.perf_counter()\n{statement}\ndt = time.perf_counter() - t\n"
    code += f"print(dt, *[m for m in {HEAVY!r} if m in sys.modules])"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT, check=True)
    seconds, *heavy = p.stdout.split()
    return float(seconds), heavy


def _runtime_modules() -> list[str]:
    return ["edgekit.runtime"] + [
        f"edgekit.runtime.{p.stem}" for p in sorted((ROOT / "edgekit/runtime").glob("[!_]*.py"))
    ]


def test_the_package_keeps_the_import_rules():
    assert violations(all_imports()) == []


def test_every_runtime_module_imports_without_the_workstation_packages():
    assert import_blocked(_runtime_modules()) == {}


def test_recipe_checking_and_tasks_load_no_torch_onnx_or_nncf():
    for statement in ("import edgekit.schema", "import edgekit.tasks", "import edgekit.cli.app"):
        _, heavy = loaded_by(statement)
        assert not set(heavy) & {"torch", "onnx", "nncf"}, (statement, heavy)


def test_a_wrong_import_is_flagged_statically(tmp_path):
    """Plant modules that break each rule in a copy of the layout: each is one line, with the rule."""
    files = {
        "edgekit/runtime/bad.py": "import torch\n\ndef f():\n    from ..tensorrt import toolchain\n",
        "edgekit/validate/bad.py": "from ..pipeline import run_export\n",
        "edgekit/cli/device.py": "from ..export import forms\n",
        "edgekit/runtime/fine.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import onnx\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text))
    found = violations(all_imports(tmp_path))
    assert sorted(found) == [
        "edgekit.cli.device:1 imports edgekit.export: device commands import only the runtime and tasks",
        "edgekit.runtime.bad:1 imports torch: the runtime imports numpy, onnxruntime and the standard library only",
        "edgekit.runtime.bad:4 imports edgekit.tensorrt: the runtime imports no other stage",
        "edgekit.validate.bad:1 imports edgekit.pipeline: no stage imports pipeline or cli",
    ]


@pytest.mark.parametrize("module", ["edgekit.quantize.lint", "edgekit.models"])
def test_a_wrong_import_is_flagged_dynamically(module):
    """Modules that import onnx or torch at the top cannot be imported behind the blocker: the check sees them."""
    failed = import_blocked([module, "edgekit.runtime.manifest"])
    assert list(failed) == [module] and "is blocked: a heavy package" in failed[module]
