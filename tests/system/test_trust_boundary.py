"""Red team: a tampered artefact or a careless recipe can neither run code, nor read, write or delete files outside
the folder it names, nor crash a command. Each case: one error line, a documented exit code, and a
check that nothing outside was touched."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgekit.runtime import ArtefactError, Runner
from edgekit.runtime.manifest import read_manifest


def _cli(*args: str, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgekit.cli", *args], capture_output=True, text=True, timeout=timeout, cwd=cwd
    )


def _one_line(r: subprocess.CompletedProcess, code: int, text: str) -> str:
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == code, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr and len(lines) == 1, r.stderr[-2000:]
    assert text in lines[0], lines[0]
    assert len(lines[0]) < 600, "an error line must stay short whatever the input"
    return lines[0]


@pytest.fixture()
def art(trm_artefact, tmp_path) -> Path:
    """A fresh copy of a real artefact to tamper with."""
    dst = tmp_path / "art"
    shutil.copytree(trm_artefact, dst)
    return dst


def _edit(art: Path, change) -> None:
    m = json.loads((art / "manifest.json").read_text())
    change(m)
    (art / "manifest.json").write_text(json.dumps(m))


# -- 1-5: security ----------------------------------------------------------------------------------------------
UNSAFE = [
    "/etc/passwd",
    "../../etc/passwd",
    "step$(touch PWNED).onnx",
    "a/../../x.onnx",
    "step.onnx\nrm -rf ~",
    "`id`.onnx",
    "",
]


@pytest.mark.parametrize("rel", UNSAFE)
def test_manifest_file_entries_outside_or_unsafe_are_refused(art, rel):
    _edit(art, lambda m: m["files"].update(step=rel))
    with pytest.raises(ArtefactError) as e:
        read_manifest(art)
    assert "\n" not in str(e.value) and "manifest.json" in str(e.value)


def test_every_command_refuses_an_unsafe_file_entry(art, tmp_path):
    _edit(art, lambda m: m["files"].update(step="../../etc/passwd", loop="step$(touch PWNED).onnx"))
    for cmd in (
        ["verify", str(art)],
        ["info", str(art)],
        ["bench", str(art)],
        ["solve", str(art), "-i", "x.npy"],
        ["plan", "--target", "jetson-orin-nano", str(art)],
        ["check", str(art)],
    ):
        r = _cli(*cmd, cwd=tmp_path)
        _one_line(r, 2, "manifest.json")
        assert "sha256 ok" not in r.stdout and "passwd" not in r.stdout
    assert not (tmp_path / "PWNED").exists() and not (art / "build_jetson-orin-nano.sh").exists()


def test_symlinked_artefact_files_are_refused_and_never_copied(art, tmp_path, root):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    (art / "readout.onnx").unlink()
    (art / "readout.onnx").symlink_to(secret)
    _one_line(_cli("verify", str(art)), 2, "symbolic link")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"schema_version: 1\nname: trm\nmodel: {{path: {root / 'examples/models/trm-sudoku'}}}\n"
        "task: {name: sudoku, n: 8}\n"
    )
    _one_line(_cli("validate", str(recipe), str(art)), 2, "symbolic link")
    assert (art / "readout.onnx").is_symlink()  # the artefact is left as it was
    assert not any(
        "TOP SECRET" in p.read_text(errors="ignore") for p in art.rglob("*") if p.is_file() and not p.is_symlink()
    )


def test_hashes_missing_or_empty_do_not_verify(art):
    _edit(art, lambda m: m.update(sha256={}))
    _one_line(_cli("verify", str(art)), 2, "lists no file hashes")
    _edit(art, lambda m: m["sha256"].pop("step", None))


def test_a_file_without_a_hash_and_a_hash_without_a_file_are_refused(art):
    m = json.loads((art / "manifest.json").read_text())
    digest = m["sha256"].pop("step")
    (art / "manifest.json").write_text(json.dumps(m))
    _one_line(_cli("verify", str(art)), 2, "files without a hash")
    m["sha256"]["step"], m["sha256"]["ghost"] = digest, digest
    (art / "manifest.json").write_text(json.dumps(m))
    _one_line(_cli("verify", str(art)), 2, "hashes for files it does not list")


def test_target_must_be_a_name_not_a_path(art, tmp_path):
    (tmp_path / "evil.yaml").write_text("name: evil\n")
    _edit(art, lambda m: m.update(target=str(tmp_path / "evil")))
    _one_line(_cli("check", str(art)), 2, "is not a target name")


def test_a_changed_file_fails_verification_with_exit_3(art):
    with open(art / "step.onnx", "ab") as f:
        f.write(b"\0")
    r = _cli("verify", str(art))
    assert r.returncode == 3 and "NOT VERIFIED" in r.stdout


def test_plan_script_quotes_everything_and_runs_nothing_from_names(trm_artefact, tmp_path):
    """A folder name with a newline and command substitutions, run with a stub trtexec: nothing is executed."""
    hostile = tmp_path / "a$(touch PWNED1)\n touch PWNED2 `touch PWNED3`"
    shutil.copytree(trm_artefact, hostile)
    r = _cli("plan", "--target", "jetson-orin-nano", str(hostile), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    script = hostile / "build_jetson-orin-nano.sh"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "trtexec"
    stub.write_text(
        '#!/usr/bin/env bash\nfor a in "$@"; do case $a in --saveEngine=*) : > "${a#--saveEngine=}";; '
        "esac; done\necho 'TensorRT v100300'\n"
    )
    stub.chmod(0o755)
    env = {**os.environ, "TRTEXEC": str(stub), "EDGEKIT_FORCE": "1", "EDGEKIT_CACHE_DIR": str(tmp_path / "cache")}
    subprocess.run(["bash", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert not any((tmp_path / f"PWNED{i}").exists() or (hostile / f"PWNED{i}").exists() for i in (1, 2, 3))
    header = script.read_text().splitlines()[1]
    assert header.startswith("# edgekit on-device engine build:") and "\n" not in header


# -- export never destroys what it does not own ----------------------------------------------------------------
def _recipe(tmp: Path, root: Path, extra: str = "", name: str = "t") -> Path:
    p = tmp / "r.yaml"
    p.write_text(
        f"schema_version: 1\nname: {name}\nmodel: {{path: {root / 'examples/models/deq-digits'}}}\n"
        f"task: {{name: digits, n: 20}}\n{extra}"
    )
    return p


def test_export_refuses_outputs_it_does_not_own(root, tmp_path, monkeypatch):
    from edgekit.artefact import OutputError, check_output

    users = tmp_path / "users"
    users.mkdir()
    (users / "thesis.tex").write_text("years of work")
    link = tmp_path / "link"
    link.symlink_to(users)
    afile = tmp_path / "afile"
    afile.write_text("x")
    recipe_dir = tmp_path / "recipes"
    recipe_dir.mkdir()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    cases = [
        (users, "holds files edgekit did not write"),
        (link, "symbolic link"),
        (afile, "not a folder"),
        (afile / "sub", "parent of output"),
        (Path("/"), "or a folder above it"),
        (cwd, "or a folder above it"),
        (tmp_path, "or a folder above it"),
        (recipe_dir, "or a folder above it"),
        (Path.home(), "above it"),
    ]
    for out, text in cases:
        with pytest.raises(OutputError, match=text):
            check_output(out, protect=[recipe_dir])
    check_output(recipe_dir / "artefacts" / "new", protect=[recipe_dir])  # inside the recipe's folder is fine
    # and the command says so in one line, touching nothing
    _one_line(_cli("export", str(_recipe(tmp_path, root)), "--out", str(users)), 2, "holds files edgekit did not")
    _one_line(_cli("export", str(_recipe(tmp_path, root)), "--out", str(link)), 2, "symbolic link")
    assert (users / "thesis.tex").read_text() == "years of work" and afile.read_text() == "x"
    assert link.is_symlink() and sorted(p.name for p in users.iterdir()) == ["thesis.tex"]


def test_recipe_name_dotdot_is_refused_at_dry_run(root, tmp_path):
    _one_line(_cli("export", str(_recipe(tmp_path, root, name='".."')), "--dry-run"), 2, "name")
    assert (tmp_path / "r.yaml").exists()


def test_output_with_glob_characters_is_literal(root, tmp_path):
    art = tmp_path / "art"
    art.mkdir()
    other_tmp = art / ".other.tmp-keep"
    other_tmp.mkdir()
    r = _cli("export", str(_recipe(tmp_path, root)), "--out", str(art / "*"))
    assert r.returncode == 0, r.stderr
    assert other_tmp.is_dir() and (art / "*" / "manifest.json").is_file()


def test_output_tilde_is_expanded(root, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    r = subprocess.run(
        [sys.executable, "-m", "edgekit.cli", "export", str(_recipe(tmp_path, root)), "--dry-run", "--out", "~/x"],
        capture_output=True,
        text=True,
        env={**os.environ, "HOME": str(home)},
    )
    assert r.returncode == 0 and str(home / "x") in r.stdout, r.stdout + r.stderr
    assert not (tmp_path / "~").exists()


def test_concurrent_export_to_the_same_output_refuses(root, tmp_path):
    from edgekit.artefact import OutputError, atomic_folder

    out = tmp_path / "out"
    with atomic_folder(out) as t:
        (t / "manifest.json").write_text("{}")
        with pytest.raises(OutputError, match="another edgekit run is writing"), atomic_folder(out):
            pass
        assert t.is_dir()  # the second run did not touch the first one's temporary folder
    assert (out / "manifest.json").is_file()


def test_artefact_folder_follows_the_umask(root, tmp_path):
    from edgekit.artefact import atomic_folder

    old = os.umask(0o022)
    try:
        with atomic_folder(tmp_path / "o") as t:
            (t / "manifest.json").write_text("{}")
    finally:
        os.umask(old)
    assert (tmp_path / "o").stat().st_mode & 0o777 == 0o755


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signals_print_one_line_and_leave_no_temp_folder(root, tmp_path, sig, code):
    out = tmp_path / "out"
    p = subprocess.Popen(
        [sys.executable, "-m", "edgekit.cli", "export", str(_recipe(tmp_path, root)), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not any(tmp_path.glob(".out.tmp-*")):
        time.sleep(0.05)
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)
    assert p.returncode == code, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "no partial artefact" in lines[0] and "Traceback" not in err
    assert not any(tmp_path.glob(".out.*")) and not out.exists()


# -- crashes that must be one line -------------------------------------------------------------------------------
CORRUPT = [
    b"[1, 2]",
    b"\xff\xfe not utf8",
    b"[" * 100_000 + b"]" * 100_000,
    b'{"schema_version": 1, "sha256": "abc"}',
    b"{}",
    b"null",
    b'{"schema_version": 1, "files": {"step": "step.onnx"}, "graph": []}',
]


@pytest.mark.parametrize("content", CORRUPT)
def test_corrupt_manifests_are_one_line(art, content):
    (art / "manifest.json").write_bytes(content)
    with pytest.raises(ArtefactError) as e:
        read_manifest(art)
    assert "\n" not in str(e.value) and len(str(e.value)) < 300


def test_every_device_command_on_a_corrupt_manifest_is_one_line(art):
    (art / "manifest.json").write_bytes(CORRUPT[2])  # nested 100k deep
    for cmd in ("verify", "info", "bench", "check"):
        _one_line(_cli(cmd, str(art)), 2, "manifest.json")


@pytest.mark.parametrize(
    "change, text",
    [
        (lambda m: m["graph"].update(step_budget=-5), "step_budget"),
        (lambda m: m["graph"].update(step_budget=10**12), "step_budget"),
        (lambda m: m["graph"].update(halt_threshold="NaN"), "halt_threshold"),
        (lambda m: m["graph"].update(state_names=["z_H; rm"]), "state_names"),
        (lambda m: m["model"].update(family="gpt"), "model.family"),
        (lambda m: m["variants"].update(float32={"step": "nope"}), "not among the listed files"),
        (lambda m: m["graph"]["input"].update(shape=["batch", -1]), "graph.input.shape"),
    ],
)
def test_out_of_range_manifest_values_are_one_line(art, change, text):
    _edit(art, change)
    with pytest.raises(ArtefactError, match=text):
        Runner(art)


def test_a_hash_for_a_missing_file(art):
    (art / "readout.onnx").unlink()
    r = _cli("verify", str(art))
    assert r.returncode == 3 and "missing" in r.stdout


@pytest.mark.parametrize("golden", ["not a zip", "missing keys", "wrong shapes", "object arrays"])
def test_damaged_golden_outputs_fail_verification_without_a_crash(art, golden):
    g = art / "golden.npz"
    if golden == "not a zip":
        g.write_bytes(b"garbage")
    elif golden == "missing keys":
        np.savez(g, other=np.zeros(3))
    elif golden == "wrong shapes":
        with np.load(g) as z:
            d = {k: z[k] for k in z.files}
        d["float32/host/logits"] = d["float32/host/logits"][:, :3]
        np.savez(g, **d)
    else:
        np.savez(g, inputs=np.array([object()], dtype=object))
    digest, size = __import__("hashlib").sha256(g.read_bytes()).hexdigest(), g.stat().st_size
    _edit(art, lambda m: (m["sha256"].update(golden=digest), m["bytes"].update(golden=size)))
    from edgekit.runtime.verify import verify

    rep = verify(art)
    assert not rep.passed and any(not c["passed"] and "golden" in c["name"] for c in rep.checks)


def test_check_on_an_unreadable_onnx_is_a_finding(art):
    (art / "step.onnx").write_bytes(b"not a protobuf")
    _edit(art, lambda m: m["sha256"].update(step=__import__("hashlib").sha256(b"not a protobuf").hexdigest()))
    r = _cli("check", str(art))
    assert r.returncode == 6 and "cannot be read as ONNX" in r.stdout and "Traceback" not in r.stderr


def test_cache_dir_that_is_a_file_runs_without_the_cache_and_corrupt_search_cache(tmp_path, monkeypatch, capsys):
    from edgekit import cache

    f = tmp_path / "file"
    f.write_text("x")
    monkeypatch.setenv("EDGEKIT_CACHE", str(f))
    e = cache.entry("search", "k", ".json")
    cache.write_json(e, {"keep_float": []})
    assert e.path is None and cache.read_json(e) is None and f.read_text() == "x"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "running without the cache" in err[0] and "EDGEKIT_CACHE" in err[0]
    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path / "c"))
    bad = cache.entry("search", "k", ".json").path
    assert bad is not None
    bad.write_text("{not json")
    assert cache.read_json(cache.entry("search", "k", ".json")) is None and not bad.exists()  # discarded, rebuilt


@pytest.mark.parametrize(
    "extra, text",
    [
        ("task: {name: digits, n: 20, seed: -1}\n", "task.seed"),
        ("task: {name: sudoku, n: 20, givens: [40, 28]}\n", "task.givens"),
        ("task: {name: sudoku, n: 20, givens: [90, 100]}\n", "task.givens"),
        ("task: {name: digits, n: 100000000000}\n", "task.n"),
        ("validate: {halt_threshold: .nan}\n", "halt_threshold"),
    ],
)
def test_recipe_values_out_of_range_fail_at_dry_run(root, tmp_path, extra, text):
    p = tmp_path / "r.yaml"
    body = f"schema_version: 1\nname: t\nmodel: {{path: {root / 'examples/models/deq-digits'}}}\n"
    if not extra.startswith("task"):
        body += "task: {name: digits, n: 20}\n"
    p.write_text(body + extra)
    from edgekit.errors import RecipeError
    from edgekit.schema import load_recipe

    with pytest.raises(RecipeError, match=text) as e:
        load_recipe(p)
    assert len(str(e.value)) < 400


def test_yaml_alias_bomb_is_refused_quickly(tmp_path):
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"] + [
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]" for p, c in zip("abcdefgh", "bcdefghi")
    ]
    p = tmp_path / "bomb.yaml"
    p.write_text("\n".join(lines) + "\nname: *i\n")
    assert p.stat().st_size < 1000
    t = time.time()
    line = _one_line(_cli("export", str(p), "--dry-run"), 2, "aliases")
    assert time.time() - t < 60 and len(line) < 300


def test_task_that_does_not_fit_the_model_is_refused_before_export(root, tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text(
        f"schema_version: 1\nname: t\nmodel: {{path: {root / 'examples/models/trm-sudoku'}}}\n"
        "task: {name: digits, n: 20}\n"
    )
    _one_line(_cli("export", str(p), "--out", str(tmp_path / "o")), 2, "does not fit")
    assert not (tmp_path / "o").exists()


def test_absurd_architecture_values_are_refused(root, tmp_path):
    ck = tmp_path / "ck"
    shutil.copytree(root / "examples/models/trm-sudoku", ck)
    cfg = ck / "all_config.yaml"
    cfg.write_text(cfg.read_text().replace("L_layers: 2", "L_layers: 200000"))
    p = tmp_path / "r.yaml"
    p.write_text(f"schema_version: 1\nname: t\nmodel: {{path: {ck}}}\ntask: {{name: sudoku, n: 8}}\n")
    _one_line(_cli("export", str(p), "--out", str(tmp_path / "o"), timeout=120), 2, "L_layers")
    cfg.write_bytes(b"\xff\xfe\x00")
    _one_line(_cli("export", str(p), "--out", str(tmp_path / "o"), timeout=120), 2, "not UTF-8")


@pytest.mark.parametrize("how, text", [("int8", "floating point"), ("huge", "magnitude")])
def test_broken_weights_are_refused_at_load(root, tmp_path, how, text):
    from safetensors.torch import load_file, save_file

    ck = tmp_path / "ck"
    shutil.copytree(root / "examples/models/trm-sudoku", ck)
    sd = load_file(str(ck / "model.safetensors"))
    k = next(k for k, v in sd.items() if v.ndim == 2)
    sd[k] = sd[k].to(__import__("torch").int8) if how == "int8" else sd[k].float().fill_(3e38).to(sd[k].dtype)
    save_file(sd, str(ck / "model.safetensors"))
    p = tmp_path / "r.yaml"
    p.write_text(f"schema_version: 1\nname: t\nmodel: {{path: {ck}}}\ntask: {{name: sudoku, n: 8}}\n")
    _one_line(_cli("export", str(p), "--out", str(tmp_path / "o"), timeout=120), 2, text)


def test_bench_inputs_zero_d_and_npz(trm_artefact, tmp_path):
    np.save(tmp_path / "zero.npy", np.array(3))
    _one_line(_cli("bench", str(trm_artefact), "--inputs", str(tmp_path / "zero.npy")), 2, "inputs")
    np.savez(tmp_path / "set.npz", inputs=np.ones((1, 2), np.int64), labels=np.ones(3))
    line = _one_line(_cli("bench", str(trm_artefact), "--inputs", str(tmp_path / "set.npz")), 2, "[batch >= 1, 81]")
    assert "[1, 2]" in line  # brackets survive the console (not eaten as markup)


def test_solve_chunks_large_inputs(trm_artefact):
    r = Runner(trm_artefact, chunk_size=64)
    calls = []
    real = r._solve_chunk
    r._solve_chunk = lambda x, *a: calls.append(len(x)) or real(x, *a)  # type: ignore[method-assign]
    x = np.ones((300, 81), np.int64)
    sol = r.solve(x, max_steps=1)
    assert len(sol.steps) == 300 and max(calls) == 64 and len(calls) == 5


# -- the manifest reader on arbitrary JSON ----------------------------------------------------------------------
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=_json, part=st.sampled_from([None, "files", "graph", "variants", "sha256", "model", "target"]))
def test_manifest_reader_on_arbitrary_json(art, doc, part):
    """Any JSON, whole or in one section of a real manifest: the reader returns or raises ArtefactError."""
    original = art.parent / "manifest.original.json"  # hypothesis reuses the folder across examples
    if not original.exists():
        shutil.copy(art / "manifest.json", original)
    base = json.loads(original.read_text()) if part else doc
    if part:
        base[part] = doc
    (art / "manifest.json").write_text(json.dumps(base))
    try:
        m = read_manifest(art)
    except ArtefactError as e:
        assert "\n" not in str(e) and len(str(e)) < 400
        return
    for rel in m["files"].values():  # what it accepts stays inside the folder
        assert (art / rel).resolve().is_relative_to(art.resolve())


def test_full_disk_is_one_line_exit_2(monkeypatch, capsys):
    import errno

    import edgekit.cli as cli

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", "/data/artefacts/x/step.onnx")

    monkeypatch.setattr(cli, "app", full)
    with pytest.raises(SystemExit) as e:
        cli.main()
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert e.value.code == 2 and len(err) == 1 and "no space left" in err[0] and "free some space" in err[0]


def test_model_path_that_is_a_symlink_loop(root, tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    p = tmp_path / "r.yaml"
    p.write_text(f"schema_version: 1\nname: t\nmodel: {{path: {loop}}}\ntask: {{name: digits, n: 8}}\n")
    _one_line(_cli("export", str(p), "--out", str(tmp_path / "o")), 2, "model.path")


def test_huge_checkpoint_config_is_refused(root, tmp_path):
    ck = tmp_path / "ck"
    shutil.copytree(root / "examples/models/trm-sudoku", ck)
    with open(ck / "all_config.yaml", "a") as f:
        f.write("# " + "x" * (2 << 20) + "\n")
    p = tmp_path / "r.yaml"
    p.write_text(f"schema_version: 1\nname: t\nmodel: {{path: {ck}}}\ntask: {{name: sudoku, n: 8}}\n")
    _one_line(_cli("export", str(p), "--out", str(tmp_path / "o"), timeout=120), 2, "too large")
