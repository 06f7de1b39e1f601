"""Every command in a ```bash block of README.md and docs/*.md is exercised by a test: setup lines are what CI
runs, device lines run against an exported artefact with the base install, the main job's recipe is checked (and
run in full with `-m slow`), training commands run for a few steps, the own-model page's recipe is checked with
--dry-run. A command no test knows fails the first test, naming its page. Another test module that runs a docs
command declares it with a module-level `DOCS_COMMANDS = (regex, ...)`, read here without importing it."""

from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def doc_pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def doc_commands() -> list[tuple[str, str]]:
    """(page, command) of every ```bash block: comments dropped, continuation lines joined, `&&` chains split."""
    out = []
    for page in doc_pages():
        for block in re.findall(r"^```bash\n(.*?)^```", page.read_text(), re.S | re.M):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split("  #")[0].strip().removeprefix("$ ")
                if line and not line.startswith("#"):
                    out += [(str(page.relative_to(ROOT)), c.strip()) for c in line.split("&&")]
    return out


def readme_commands() -> list[str]:
    """Every command once, in page order (a command on two pages is run once)."""
    return list(dict.fromkeys(c for _, c in doc_commands()))


SETUP = re.compile(r"^python3 -m venv (\.venv(-device)?)$|^\.venv(-device)?/bin/pip install -e (\S+)$")
EXPORT = re.compile(r"^\.venv/bin/(edgekit export recipes/\S+\.yaml)$")
DEVICE = re.compile(r"^\.venv-device/bin/(edgekit|python) (.*)$")
PYTEST = ".venv/bin/python -m pytest -q"
TRAIN = re.compile(r"^\.venv/bin/python (examples/train_\w+\.py) (.*)$")
TUNE = re.compile(r"^\.venv/bin/edgekit tune recipes/trm-sudoku\.yaml (.*)$")
ARC = ".venv/bin/python examples/make_arc_dataset.py"
OWN = re.compile(r"^\.venv/bin/edgekit export my-trm\.yaml --dry-run$")  # docs/own-model.md's recipe
HERE = (SETUP, EXPORT, DEVICE, TRAIN, TUNE, OWN, re.compile(re.escape(PYTEST) + "$"), re.compile(re.escape(ARC) + "$"))


def declared_elsewhere() -> dict[str, list[re.Pattern]]:
    """test module -> the DOCS_COMMANDS patterns it declares it runs (a tuple or list of string literals)."""
    out: dict[str, list[re.Pattern]] = {}
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        for node in ast.parse(path.read_text()).body:
            target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None
            if isinstance(target, ast.Name) and target.id == "DOCS_COMMANDS":
                out[path.name] = [re.compile(p) for p in ast.literal_eval(node.value)]
    return out


def test_every_docs_command_is_one_a_test_exercises():
    cmds = doc_commands()
    assert len(cmds) >= 10 and {p for p, _ in cmds} >= {"README.md"}
    patterns = [*HERE, *(p for ps in declared_elsewhere().values() for p in ps)]
    unknown = [f"{page}: {c}" for page, c in cmds if not any(p.match(c) for p in patterns)]
    assert not unknown, (
        "commands in ```bash blocks that no test runs:\n  " + "\n  ".join(unknown) + "\nadd a test that runs each "
        "one and list a regular expression for it in that test module's DOCS_COMMANDS "
        "(tests/system/test_readme.py reads it), or keep the line out of ```bash blocks"
    )


def test_docs_commands_declared_elsewhere_match_a_docs_command():
    """A DOCS_COMMANDS pattern no page uses any more is a test that exercises nothing."""
    cmds = readme_commands()
    stale = [
        f"{m}: {p.pattern}" for m, ps in declared_elsewhere().items() for p in ps if not any(p.match(c) for c in cmds)
    ]
    assert not stale, f"DOCS_COMMANDS patterns that match no ```bash command in README.md or docs/: {stale}"


def test_setup_commands_are_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text().replace(" -q", "")
    for c in readme_commands():
        m = SETUP.match(c)
        if m and m.group(4):
            assert c in ci or c.replace('".[export]"', '".[test]"') in ci, c  # [test] includes [export]
    assert ".venv/bin/python -m pytest" in ci


@pytest.mark.parametrize("cmd", [c for c in readme_commands() if EXPORT.match(c)])
def test_main_job_recipe_is_valid(cmd, tmp_path):
    """The main job's recipe parses, its model and target exist (the full run is the slow test below and the
    `trm_artefact` fixture's smaller copy of the same recipe). The ARC demo's model is written by the README's
    make_arc_dataset line (not committed): here into a temporary folder, with the recipe pointed at it."""
    args = shlex.split(EXPORT.match(cmd).group(1))[1:] + ["--dry-run"]
    if "arc-demo" in cmd:
        args[1] = str(_arc_recipe(tmp_path))
    r = subprocess.run([sys.executable, "-m", "edgekit.cli", *args], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and "is valid" in r.stdout, r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("cmd", [c for c in readme_commands() if EXPORT.match(c)])
def test_main_job_runs(cmd, tmp_path):
    args = shlex.split(EXPORT.match(cmd).group(1))[1:] + ["--out", str(tmp_path / "art")]
    if "arc-demo" in cmd:
        args[1] = str(_arc_recipe(tmp_path))
    r = subprocess.run([sys.executable, "-m", "edgekit.cli", *args], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


def _arc_recipe(tmp: Path) -> Path:
    """recipes/arc-demo.yaml with its data and model written by the README's generator line into `tmp`."""
    data, model = tmp / "arc-data", tmp / "arc-model"
    gen = [sys.executable, str(ROOT / "examples/make_arc_dataset.py"), "--out", str(data), "--model", str(model)]
    r = subprocess.run(gen, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    for f in (ROOT / "examples/data/arc-demo").rglob("*"):  # the committed dataset is what the script writes
        if f.is_file():
            assert f.read_bytes() == (data / f.relative_to(ROOT / "examples/data/arc-demo")).read_bytes(), f
    text = (ROOT / "recipes/arc-demo.yaml").read_text()
    text = text.replace("../examples/models/arc-demo-random", str(model)).replace(
        "../examples/data/arc-demo", str(data)
    )
    (tmp / "arc-demo.yaml").write_text(text + f"output: {tmp / 'art'}\n")
    return tmp / "arc-demo.yaml"


def test_arc_demo_runs(tmp_path):
    """README's ARC lines: the generator, then `edgekit export recipes/arc-demo.yaml` (exit 0: the random-init
    model loses nothing to export or INT8, so its drop gates pass)."""
    r = subprocess.run(
        [sys.executable, "-m", "edgekit.cli", "export", str(_arc_recipe(tmp_path))],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert (tmp_path / "art" / "submission.json").is_file()


def _device_python() -> Path:
    return Path(os.environ.get("EDGEKIT_DEVICE_PYTHON", ROOT / ".venv-device" / "bin" / "python"))


@pytest.mark.parametrize("cmd", [c for c in readme_commands() if DEVICE.match(c)])
def test_device_commands_run_on_an_artefact_with_the_base_install(cmd, trm_artefact):
    py = _device_python()
    if not py.exists():
        pytest.skip(f"no device venv at {py} (.ci/run builds it; tests/system/test_device_install.py too)")
    tool, rest = DEVICE.match(cmd).groups()
    args = [a.replace("artefacts/trm-sudoku", str(trm_artefact)) for a in shlex.split(rest)]
    argv = [str(py.parent / "edgekit"), *args] if tool == "edgekit" else [str(py), *args]
    r = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, (cmd, r.stdout[-1000:], r.stderr[-1000:])
    assert r.stdout.strip(), cmd


@pytest.mark.parametrize("cmd", [c for c in readme_commands() if TRAIN.match(c)])
def test_training_commands_run_a_few_steps(cmd, tmp_path):
    script, rest = TRAIN.match(cmd).groups()
    args = [a if not a.startswith("examples/models/") else str(tmp_path / "m") for a in shlex.split(rest)]
    short = (
        ["--epochs", "1"]
        if "deq" in script
        else ["--steps", "2", "--pool", "12", "--eval-n", "8", "--dtype", "float32"]
    )
    r = subprocess.run([sys.executable, str(ROOT / script), *args, *short], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, (cmd, r.stderr[-2000:])
    assert any((tmp_path / "m").iterdir())


@pytest.mark.parametrize("cmd", [c for c in readme_commands() if TUNE.match(c)])
def test_tune_command_runs(cmd, small_trm_recipe, trm_artefact, tmp_path):
    """The README's tune line on a copy of the demo artefact (the small recipe's: 32 puzzles), with its options;
    its budget is per puzzle on this machine, so exit 4 (nothing fits) is a correct outcome too, but then it must
    name the fastest configuration."""
    import json
    import shutil

    art = tmp_path / "art"
    shutil.copytree(trm_artefact, art)
    args = shlex.split(TUNE.match(cmd).group(1))
    argv = [sys.executable, "-m", "edgekit.cli", "tune", str(small_trm_recipe), "--artefact", str(art), "--check-n",
            "16", *args]  # fmt: skip
    r = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert r.returncode in (0, 4), r.stdout[-2000:] + r.stderr[-2000:]
    res = json.loads((art / "tune.json").read_text())
    if r.returncode == 0:
        assert "--apply" not in args or json.loads((art / "manifest.json").read_text())["runtime_defaults"]
    else:
        assert "the fastest configuration that meets it is" in r.stderr and res["chosen"] is None


@pytest.mark.parametrize("cmd", [c for c in readme_commands() if OWN.match(c)])
def test_own_model_recipe_from_the_docs(cmd, tmp_path):
    """docs/own-model.md's recipe, saved as the page says: with its placeholder paths, --dry-run names the missing
    checkpoint (exit 2); with the two paths changed (here to the bundled checkpoint and dataset) it is valid. It
    keeps the safe defaults the page explains: the calibrated threshold and both deployed-answer gates."""
    import yaml

    text = (ROOT / "docs" / "own-model.md").read_text()
    yml = next(b for b in re.findall(r"^```yaml\n(.*?)^```", text, re.S | re.M) if b.startswith("schema_version"))
    rec = yaml.safe_load(yml)
    assert rec["validate"]["halt_threshold"] == "auto"
    assert {"max_exact_halted_drop", "min_halting_agreement"} <= set(rec["gates"])
    argv = [sys.executable, "-m", "edgekit.cli", *shlex.split(cmd)[1:]]
    (tmp_path / "my-trm.yaml").write_text(yml)
    r = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2 and rec["model"]["path"] in r.stderr, r.stdout + r.stderr
    mine = yml.replace(rec["model"]["path"], str(ROOT / "examples/models/trm-sudoku"))
    mine = mine.replace(rec["task"]["data"], str(ROOT / "examples/data/sudoku-demo"))
    (tmp_path / "my-trm.yaml").write_text(mine.replace(f"n: {rec['task']['n']}", "n: 256"))  # the demo split's size
    r = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and "is valid" in r.stdout, r.stdout + r.stderr


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_between_pages_resolve():
    """Every relative link of README.md and docs/ names a file that exists, and an anchor a heading there has."""
    broken = []
    for page in doc_pages():
        text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)  # links inside code blocks are text
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"^[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md":
                slugs = {_slug(h) for h in re.findall(r"^#+ (.*)$", dest.read_text(), re.M)}
                if anchor not in slugs:
                    broken.append(f"{page.relative_to(ROOT)}: {target} (no such section)")
    assert not broken, "broken links:\n  " + "\n  ".join(broken)


def test_pages_the_code_points_users_at_exist():
    """Error lines and help texts that send a user to a docs page name one that exists, and none to a README
    section (the README is short; sections move)."""
    missing, readme = [], []
    for path in sorted((ROOT / "edgekit").rglob("*.py")):
        text = path.read_text()
        missing += [f"{path.relative_to(ROOT)}: docs/{m}" for m in re.findall(r"\bdocs/([\w-]+\.md)", text)
                    if "onnx-tensorrt" not in text and not (ROOT / "docs" / m).is_file()]  # fmt: skip
        readme += [f"{path.relative_to(ROOT)}: {m}" for m in re.findall(r"README '[^']*'", text)]
    assert not missing and not readme, (missing, readme)
