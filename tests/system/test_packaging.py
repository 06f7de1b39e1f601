"""What a user gets from the wheel, not from the checkout: the wheel is built from a copy of the sources, installed
into fresh virtual environments, and its commands are run from a folder outside the repository, so nothing is
imported from the checkout.

- base install (`pip install edgekit`): `--version`, `targets` (every target), device commands on an artefact;
- `[export]` extra: the wheel in a fresh venv whose only other packages are this test environment's (a `.pth` line
  adds its site-packages after the venv's own; one copy of torch, not a second ~1 GB install). The extra's declared
  requirements are checked against what that environment holds, then `targets` and `export --dry-run` run from it;
- the Jetson numpy pin (constraints/jetson-jp6.txt) resolved by pip for JetPack 6's Python and platform.

.ci/run installs the device venv (`EDGEKIT_DEVICE_PYTHON`, tests/system/test_device_install.py) from the same kind
of wheel.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from edgekit.schema import target_names

# docs/install.md's wheel lines (tests/system/test_readme.py reads this): the wheel fixture and _venv below run them,
# from a copy of the sources and without build isolation (no download of setuptools)
DOCS_COMMANDS = (
    r"^python3 -m pip wheel --no-deps -w dist \.$",
    r"^\.venv-device/bin/pip install dist/edgekit-\*\.whl$",
)
ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = (ROOT / "pyproject.toml").read_text()
VERSION = re.search(r'^version = "([^"]+)"', PYPROJECT, re.M).group(1)
# JetPack 6.1 / 6.2: Ubuntu 22.04 (glibc 2.35) on aarch64, Python 3.10.
JP6_PIP = [
    "--only-binary=:all:",
    *[f"--platform={p}" for p in ("manylinux_2_35_aarch64", "manylinux_2_28_aarch64", "manylinux2014_aarch64")],
    "--platform=manylinux_2_17_aarch64",
    "--python-version=310",
    "--implementation=cp",
    "--abi=cp310",
]


def _pip(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """This environment's pip (`--python VENV` points it at another environment)."""
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=timeout)


def _clean_env() -> dict[str, str]:
    """The environment for commands of an installed venv: nothing that would put the checkout on sys.path."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


def _run(venv: Path, exe: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(venv / "bin" / exe), *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=_clean_env()
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of what the distribution is made of (so concurrent builds never share build/)."""
    d = tmp_path_factory.mktemp("wheel")
    src = d / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "edgekit", src / "edgekit", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    p = _pip("wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(d / "dist"), str(src))
    assert p.returncode == 0, p.stderr[-2000:]
    (whl,) = (d / "dist").glob("edgekit-*.whl")
    return whl


def _venv(path: Path, wheel: Path, *pip_args: str) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
    p = _pip("--python", str(path / "bin" / "python"), "install", "--no-compile", "-q", *pip_args, str(wheel))
    assert p.returncode == 0, p.stderr[-2000:]
    return path


@pytest.fixture(scope="module")
def base_venv(wheel, tmp_path_factory) -> Path:
    """`pip install edgekit` from the wheel: numpy, onnxruntime, typer and rich from the index (~15 s here)."""
    return _venv(tmp_path_factory.mktemp("base") / "venv", wheel)


def test_the_wheel_holds_every_data_file_of_the_package(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"edgekit/targets/{t}.yaml" for t in target_names()} <= names
    data = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "edgekit").rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    }
    assert data and data <= names, f"data files missing from the wheel: {sorted(data - names)}"
    meta = zipfile.ZipFile(wheel).read(f"edgekit-{VERSION}.dist-info/METADATA").decode()
    assert "Provides-Extra: export" in meta and "Provides-Extra: jetson-jp6" in meta


def test_base_install_from_the_wheel(base_venv, trm_artefact, tmp_path):
    where = _run(base_venv, "python", "-c", "import edgekit; print(edgekit.__file__)", cwd=tmp_path)
    assert where.returncode == 0 and Path(where.stdout.strip()).is_relative_to(base_venv), where.stdout + where.stderr

    v = _run(base_venv, "edgekit", "--version", cwd=tmp_path)
    assert v.returncode == 0 and v.stdout.strip() == f"edgekit {VERSION}", v.stdout + v.stderr

    t = _run(base_venv, "edgekit", "targets", cwd=tmp_path)
    assert t.returncode == 0, t.stderr
    listed = set(re.findall(r"^[│|] (\S+)", t.stdout, re.M)) - {"name"}
    assert listed == set(target_names()), t.stdout

    i = _run(base_venv, "edgekit", "info", str(trm_artefact), "--json", cwd=tmp_path)
    assert i.returncode == 0, i.stderr
    assert json.loads(i.stdout)["variants"]["float32"]["forms"] == ["step", "loop"]
    ver = _run(base_venv, "edgekit", "verify", str(trm_artefact), cwd=tmp_path)
    assert ver.returncode == 0, ver.stdout + ver.stderr


def test_export_extra_from_the_wheel(wheel, root, tmp_path):
    venv = _venv(tmp_path / "venv", wheel, "--no-deps")
    site = Path(
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # after the venv's own site-packages: the wheel's edgekit wins; .pth files in the added folder are not run, so
    # an editable install of the checkout there stays inactive
    (site / "_test_environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    code = (
        "import importlib.metadata as m, json, edgekit\n"
        "from packaging.requirements import Requirement\n"
        "bad = []\n"
        "for text in m.requires('edgekit') or []:\n"
        "    r = Requirement(text)\n"
        "    if r.marker is None or not r.marker.evaluate({'extra': 'export'}):\n"
        "        continue\n"
        "    try:\n"
        "        have = m.version(r.name)\n"
        "    except m.PackageNotFoundError:\n"
        "        have = None\n"
        "    if have is None or not r.specifier.contains(have, prereleases=True):\n"
        "        bad.append(f'{r} (installed: {have})')\n"
        "print(json.dumps({'edgekit': edgekit.__file__, 'unmet': bad, 'n': len(m.requires('edgekit'))}))\n"
    )
    p = _run(venv, "python", "-c", code, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    assert Path(got["edgekit"]).is_relative_to(venv), got
    assert not got["unmet"], f"the [export] extra's requirements are not met: {got['unmet']}"

    t = _run(venv, "edgekit", "targets", cwd=tmp_path)
    assert t.returncode == 0 and set(target_names()) <= set(re.findall(r"^[│|] (\S+)", t.stdout, re.M)), t.stdout
    e = _run(venv, "edgekit", "export", "--dry-run", str(root / "recipes" / "trm-sudoku.yaml"), cwd=tmp_path)
    assert e.returncode == 0 and "is valid (target x86-cpu" in e.stdout, e.stdout + e.stderr


# -- the Jetson numpy pin ---------------------------------------------------------------------------------------------
def _resolve(*args: str) -> dict[str, str]:
    """name -> version pip would install for JetPack 6 (aarch64, Python 3.10); skip when no index answers."""
    probe = _pip("index", "versions", "numpy", timeout=120)
    if probe.returncode != 0 or "1.26.4" not in probe.stdout:
        pytest.skip(f"pip cannot reach an index with numpy releases: {(probe.stderr or probe.stdout)[-200:]}")
    with_target = ["--target", "/nonexistent/never-written"]  # --platform needs --target; --dry-run writes nothing
    p = _pip("install", "--dry-run", "--ignore-installed", "-q", *with_target, *JP6_PIP, "--report", "-", *args)
    assert p.returncode == 0, p.stderr[-2000:]
    report = json.loads(p.stdout)
    return {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in report["install"]}


def test_jetpack6_constraint_keeps_numpy_1():
    pinned = _resolve("-c", str(ROOT / "constraints" / "jetson-jp6.txt"), "numpy", "onnxruntime")
    assert pinned["numpy"].startswith("1."), pinned
    assert "onnxruntime" in pinned
    free = _resolve("numpy", "onnxruntime")
    assert free["numpy"].split(".")[0] == "2", f"without the pin pip picks numpy {free['numpy']}: the pin is moot"


def test_jetpack6_extra_is_the_constraint():
    lines = [ln.strip() for ln in (ROOT / "constraints" / "jetson-jp6.txt").read_text().splitlines()]
    assert [ln for ln in lines if ln and not ln.startswith("#")] == ["numpy<2", "cuda-python<13"]
    extra = re.search(r"^jetson-jp6 = \[(.*)\]$", PYPROJECT, re.M)
    assert extra and re.fullmatch(r'"numpy>=[\d.]+,<2"', extra.group(1)), extra
