"""The CI templates in examples/ci/ run as a user's repository would run them: their shell steps, in order, in a
fresh folder holding only a recipe, each template creating its own venv. What differs from a real job, to stay
offline and cheap: the install line gets `--no-index --find-links DIR`, where DIR holds a wheel built from this
checkout (the requirement `"edgekit[export]"` is unchanged), and the new venv sees the packages already
installed in the test's environment, except edgekit itself (a .pth line to a view of them), instead of
downloading torch; its own old setuptools is removed so torch's requirement is met by the viewed one (Python
3.12 venvs have none). RECIPE is the bundled demo on 16 puzzles."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "examples" / "ci"
INSTALL = 'pip install "edgekit[export]"'


def _github_steps(doc: dict) -> tuple[dict[str, str], list[tuple[str, bool]]]:
    """(env, [(run, runs after a failure)]) of the workflow's one job; `uses:` steps are the CI's own actions."""
    (job,) = doc["jobs"].values()
    steps = [(s["run"], s.get("if") == "always()") for s in job["steps"] if "run" in s]
    return {**doc.get("env", {}), **job.get("env", {})}, steps


def _gitlab_steps(doc: dict) -> tuple[dict[str, str], list[tuple[str, bool]]]:
    (job,) = (v for k, v in doc.items() if isinstance(v, dict) and "script" in v)
    return dict(job.get("variables", {})), [(s, False) for s in job["script"]]


def _published(doc: dict) -> list[str]:
    """Paths the template publishes (upload-artifact / GitLab artifacts), globs included."""
    if "jobs" in doc:
        (job,) = doc["jobs"].values()
        return [p for s in job["steps"] if "upload-artifact" in s.get("uses", "") for p in s["with"]["path"].split()]
    (job,) = (v for v in doc.values() if isinstance(v, dict) and "script" in v)
    return list(job["artifacts"]["paths"])


READERS = {"github-actions.yml": _github_steps, "gitlab-ci.yml": _gitlab_steps}


@pytest.fixture(scope="module")
def offline(tmp_path_factory) -> tuple[Path, Path]:
    """(folder with a wheel of this checkout, view of this environment's packages without edgekit). The wheel is
    built from a copy of the package files (building writes build/ beside them, never into the checkout)."""
    tmp = tmp_path_factory.mktemp("ci-offline")
    src, wheels, view = tmp / "src", tmp / "wheels", tmp / "view"
    shutil.copytree(ROOT / "edgekit", src / "edgekit", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).is_file():
            shutil.copy(ROOT / name, src / name)
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
    subprocess.run([*build, str(src), "-w", str(wheels)], check=True, capture_output=True)
    view.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.startswith(("edgekit", "__editable__", "pip")):
            (view / entry.name).symlink_to(entry)
    return wheels, view


def _user_repo(tmp: Path) -> Path:
    """A user's repository: one recipe (the demo model, 16 puzzles), no edgekit source."""
    repo = tmp / "repo"
    (repo / "recipes").mkdir(parents=True)
    (repo / "recipes" / "my-model.yaml").write_text(f"""schema_version: 1
name: my-model
model: {{path: {ROOT / "examples" / "models" / "trm-sudoku"}}}
task: {{name: sudoku, n: 16, givens: [28, 40], seed: 123}}
export: {{forms: [step], precisions: [float32]}}
gates: {{max_exact_drop: 0.05}}
""")
    return repo


def _offline(cmd: str, wheels: Path) -> str:
    """The template's install line with the index replaced by the folder holding this checkout's wheel."""
    return cmd.replace(INSTALL, f'pip install -q --no-index --find-links {wheels} "edgekit[export]"')


def _see_installed_packages(repo: Path, view: Path) -> None:
    """Let every venv the template created in `repo` see this environment's packages (torch, onnx, ...)."""
    for venv in repo.glob(".*venv*"):
        subprocess.run([venv / "bin" / "python", "-m", "pip", "uninstall", "-q", "-y", "setuptools"], check=True)
        for site in venv.glob("lib/python*/site-packages"):
            (site / "zz_test_environment.pth").write_text(f"{view}\n")


@pytest.mark.parametrize("name", sorted(READERS))
def test_template_installs_edgekit_and_gates_the_users_recipe(name, offline, tmp_path):
    text = (TEMPLATES / name).read_text()
    doc = yaml.safe_load(text)
    env, steps = READERS[name](doc)
    assert "RECIPE" in env and "pip install -e ." not in text
    assert sum(INSTALL in run for run, _ in steps) == 1, f"{name} must install edgekit[export] once"
    assert any('edgekit export "$RECIPE"' in run for run, _ in steps)

    repo = _user_repo(tmp_path)
    environ = {**os.environ, **{k: str(v) for k, v in env.items()}, "RECIPE": "recipes/my-model.yaml"}
    environ.pop("VIRTUAL_ENV", None)
    failed = False
    for run, always in steps:
        if failed and not always:
            continue
        if INSTALL in run:  # create the venv, make this environment visible to it, then install
            create, _, install = _offline(run, offline[0]).partition(" && ")
            r = subprocess.run(["bash", "-ec", create], cwd=repo, env=environ, capture_output=True, text=True)
            assert r.returncode == 0, r.stderr[-2000:]
            _see_installed_packages(repo, offline[1])
            run = install
        r = subprocess.run(["bash", "-ec", run], cwd=repo, env=environ, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, (name, run, r.stdout[-2000:], r.stderr[-2000:])
    for pattern in _published(doc):
        assert list(repo.glob(pattern)), f"{name} publishes {pattern}, which the job did not write"
    assert not (repo / ".edgekit-venv" / "src").exists()
    assert "edgekit" not in {p.name for p in repo.iterdir()}, "the user's repository holds no edgekit source"


def test_the_installed_edgekit_is_the_venvs_own(offline, tmp_path):
    """The installed command runs from the template's venv, not from this checkout's editable install."""
    repo = _user_repo(tmp_path)
    env, steps = _github_steps(yaml.safe_load((TEMPLATES / "github-actions.yml").read_text()))
    (run,) = [r for r, _ in steps if INSTALL in r]
    create, _, install = _offline(run, offline[0]).partition(" && ")
    environ = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    subprocess.run(["bash", "-ec", create], cwd=repo, check=True, env=environ)
    _see_installed_packages(repo, offline[1])
    subprocess.run(["bash", "-ec", install], cwd=repo, check=True, env=environ, capture_output=True)
    py = repo / ".edgekit-venv" / "bin" / "python"
    where = subprocess.run(
        [py, "-c", "import edgekit; print(edgekit.__file__)"], capture_output=True, text=True, cwd=repo
    )
    assert str(repo / ".edgekit-venv") in where.stdout, where.stdout + where.stderr
    assert sys.prefix not in where.stdout
