"""Red team, round 3: the cache, array files, dataset folders, recipe-named files and manifests are untrusted. One
test per defect class: a planted cache entry, a link at a temporary name, a huge or corrupt array header, a device
or a pipe named as a file, a link or path out of the folder named, an unchecked manifest field, terminal escapes,
edited runtime defaults. Each asserts the one error line and its exit code, and that files outside were untouched
(canaries); hypothesis drives the classes that have a shape (array headers, manifests)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import numpy.lib.format as npformat
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgekit import cache
from edgekit.errors import InputError, RecipeError
from edgekit.npyio import load_npy, load_npz
from edgekit.runtime import ArtefactError, Runner
from edgekit.runtime.manifest import defaults_digest, escape_text, read_manifest
from edgekit.tasks.files import DataError, open_data, read_identifiers, take, write_reference_layout


def _cli(*args: str, timeout: int = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgekit.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def _one_line(r: subprocess.CompletedProcess, code: int, text: str) -> str:
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == code, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr and len(lines) == 1, r.stderr[-2000:]
    assert text in lines[0], lines[0]
    assert len(lines[0]) < 600 and "\x1b" not in lines[0]
    return lines[0]


SECRET = "canary-secret https://user:TOKEN123@example.org"


@pytest.fixture()
def canary(tmp_path):
    """A folder outside the one a command is given: its files must be byte-identical afterwards."""
    d = tmp_path / "outside"
    d.mkdir()
    (d / "secret.txt").write_text(SECRET + "\n")
    (d / "victim.txt").write_text("precious\n")

    def unchanged() -> None:
        assert sorted(p.name for p in d.iterdir()) == ["secret.txt", "victim.txt"]
        assert (d / "secret.txt").read_text() == SECRET + "\n" and not (d / "secret.txt").is_symlink()
        assert (d / "victim.txt").read_text() == "precious\n" and not (d / "victim.txt").is_symlink()

    return SimpleNamespace(path=d, unchanged=unchanged)


@pytest.fixture()
def art(trm_artefact, tmp_path) -> Path:
    dst = tmp_path / "art"
    shutil.copytree(trm_artefact, dst)
    return dst


def _edit(art: Path, change) -> None:
    m = json.loads((art / "manifest.json").read_text())
    change(m)
    (art / "manifest.json").write_text(json.dumps(m))


# -- the cache is untrusted ------------------------------------------------------------------------------------------
def _break_largest_weight(art: Path) -> None:
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(art / "step.onnx"))
    t = max(m.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    t.CopyFrom(numpy_helper.from_array(np.zeros_like(numpy_helper.to_array(t)), t.name))
    onnx.save(m, str(art / "step.onnx"))
    _edit(art, lambda d: d["sha256"].update(step=hashlib.sha256((art / "step.onnx").read_bytes()).hexdigest()))


def _entries(root: Path) -> dict[str, Path]:
    """ONNX-rollout cache entries by kind of rollout ('' host rollouts, 'loop-', 'golden-')."""
    out = {}
    for p in (root / "onnx").iterdir():
        prefix = p.name.split("-")[0] + "-" if "-" in p.name else ""
        assert prefix not in out, "one entry per kind for a one-variant artefact"
        out[prefix] = p
    return out


@pytest.mark.slow
def test_a_planted_cache_entry_cannot_make_a_broken_artefact_pass(art, small_trm_recipe, tmp_path, monkeypatch):
    """The attack: a broken artefact fails every gate with a clean cache; the good artefact's rollouts copied under
    the broken graphs' keys (computable from edgekit's own functions) made it pass. Now the entry's recorded key
    does not match its name, so it is discarded and recomputed: the broken artefact still fails (exit 3)."""
    from edgekit.pipeline import run_validate

    good, bad = art, tmp_path / "bad"
    shutil.copytree(good, bad)
    _break_largest_weight(bad)
    quiet = lambda s: None  # noqa: E731
    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path / "c-good"))
    assert run_validate(small_trm_recipe, good, log=quiet).exit_code == 0
    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path / "c-bad"))
    assert run_validate(small_trm_recipe, bad, log=quiet).exit_code == 3  # clean cache: every gate fails
    good_entries, bad_entries = _entries(tmp_path / "c-good"), _entries(tmp_path / "c-bad")
    assert set(good_entries) == set(bad_entries) == {"", "loop-", "golden-"}
    for prefix, target in bad_entries.items():
        shutil.copyfile(good_entries[prefix], target)  # the plant: good answers under the broken graphs' keys
    out = run_validate(small_trm_recipe, bad, log=quiet)
    assert out.exit_code == 3 and not out.results["passed"]
    from edgekit.runtime.verify import verify

    gold = np.load(bad / "golden.npz")
    ref = np.load(good / "golden.npz")
    assert not np.array_equal(gold["float32/host/logits"], ref["float32/host/logits"])  # the broken graph's own
    assert verify(bad).passed  # golden answers are the broken graph's, and say nothing about accuracy: exit 3 above


def test_cache_entries_copied_edited_or_damaged_are_discarded(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path / "c"))
    k1, k2 = "a" * 64, "b" * 64
    e1 = cache.entry("onnx", k1)
    cache.write_arrays(e1, {"preds": np.arange(12).reshape(3, 4), "last": np.ones(3)})
    got = cache.read_arrays(e1, lambda z: z["preds"])
    assert got is not None and got.shape == (3, 4)
    e2 = cache.entry("onnx", k2)
    assert e1.path is not None and e2.path is not None
    shutil.copyfile(e1.path, e2.path)  # a good entry under another key
    assert cache.read_arrays(e2, lambda z: z) is None and not e2.path.exists()
    with np.load(e1.path) as z:  # the right keys, the wrong shape (the record left as it was)
        d = {k: z[k] for k in z.files}
    d["preds"] = d["preds"][:, :3]
    np.savez(e1.path, **d)
    assert cache.read_arrays(e1, lambda z: z) is None and not e1.path.exists()
    with open(e1.path, "wb") as f:  # a header that declares a huge shape
        npformat.write_array_header_1_0(f, {"descr": "<i8", "fortran_order": False, "shape": (10**12, 81)})
    assert cache.read_arrays(e1, lambda z: z) is None and not e1.path.exists()
    j = cache.entry("search", k1, ".json")
    cache.write_json(j, {"keep_float": ["a"]})
    assert j.path is not None
    doc = json.loads(j.path.read_text())
    doc["data"]["keep_float"] = []
    j.path.write_text(json.dumps(doc))
    assert cache.read_json(j) is None and not j.path.exists()


def test_a_link_planted_at_a_temporary_name_is_never_followed(tmp_path, monkeypatch, canary):
    """The old names were predictable (`.<key>.npz.tmp-<pid>.npz`, `.<name>.tmp-<pid>`); links planted there (and
    at every name the old scheme could pick) stay links, and the files they point at stay as they were."""
    from edgekit.artefact import replace_file

    root = tmp_path / "c"
    monkeypatch.setenv("EDGEKIT_CACHE", str(root))
    key = "c" * 64
    e = cache.entry("tasks", key)
    assert e.path is not None
    victim = canary.path / "victim.txt"
    links = []
    for pid in range(os.getpid() - 50, os.getpid() + 50):
        for name in (f".{key}.npz.tmp-{pid}.npz", f".{key}.npz.tmp-{pid}"):
            links.append(e.path.parent / name)
            links[-1].symlink_to(victim)
    cache.write_arrays(e, {"inputs": np.zeros((2, 81), np.int64)})
    folder = tmp_path / "art"
    folder.mkdir()
    (folder / "tune.json").write_text("{}")
    for pid in range(os.getpid() - 50, os.getpid() + 50):
        (folder / f".tune.json.tmp-{pid}").symlink_to(victim)
    replace_file(folder / "tune.json", b'{"new": 1}')
    canary.unchanged()
    assert all(p.is_symlink() for p in links) and (folder / "tune.json").read_text() == '{"new": 1}'
    assert cache.read_arrays(e, lambda z: z["inputs"].shape) == (2, 81)


@pytest.mark.parametrize("how", ["world-writable", "group-writable", "another user's", "a file"])
def test_a_cache_folder_others_can_write_is_not_used(tmp_path, how, canary):
    """One warning line, the run goes on without the cache: nothing is read from it, nothing is written to it."""
    root = tmp_path / "shared"
    if how == "a file":
        root.write_text("x")
    else:
        root.mkdir()
        os.chmod(root, {"world-writable": 0o777, "group-writable": 0o770}.get(how, 0o700))
        if how == "another user's":
            if os.geteuid() != 0:
                pytest.skip("needs root to give the folder to another user")
            os.chown(root, 4242, -1)
    code = (
        "import numpy as np\nfrom edgekit import cache\n"
        "e = cache.entry('tasks', 'd' * 64)\ncache.write_arrays(e, {'x': np.ones(3)})\n"
        "print(e.path, cache.read_arrays(e, lambda z: z))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "EDGEKIT_CACHE": str(root)}
    )
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 0 and r.stdout.strip() == "None None", (r.stdout, r.stderr)
    assert len(lines) == 1 and "running without the cache" in lines[0] and "warning:" in lines[0], lines
    assert root.is_file() or list(root.iterdir()) == []
    canary.unchanged()


def test_a_new_cache_folder_is_private(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path / "new" / "cache"))
    e = cache.entry("onnx", "e" * 64)
    assert e.path is not None
    assert (e.path.parent.stat().st_mode & 0o777) == 0o700 and ((tmp_path / "new/cache").stat().st_mode & 0o077) == 0
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o700, "every level created, the parents too"


# -- one bounded reader for arrays -----------------------------------------------------------------------------------
DTYPES = ["<i8", "|u1", ">f4", "<f2", "|b1", "<u8", "|O", "<U3", "|S2", "<c8", [("a", "<i4")], "<M8[s]"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    shape=st.lists(st.integers(0, 10**15) | st.integers(-3, 4), max_size=4),
    descr=st.sampled_from(DTYPES),
    fortran=st.booleans(),
    data=st.integers(0, 4096),
    version=st.sampled_from([(1, 0), (2, 0)]),
)
def test_npy_headers_never_allocate_more_than_the_file_holds(tmp_path, shape, descr, fortran, data, version):
    path = tmp_path / "h.npy"
    with open(path, "wb") as f:
        header = {"descr": descr, "fortran_order": fortran, "shape": tuple(shape)}
        try:
            (npformat.write_array_header_1_0 if version == (1, 0) else npformat.write_array_header_2_0)(f, header)
        except ValueError:
            return
        f.write(b"\x01" * data)
    try:
        a = load_npy(path, 1 << 20, error=InputError, what="h.npy")
    except InputError as e:
        assert "\n" not in str(e) and str(e).startswith("h.npy ") and len(str(e)) < 300
        return
    assert a.nbytes <= data and a.dtype.kind in "biuf" and list(a.shape) == shape


def _bomb(path: Path, inflated: int) -> None:
    """An .npz whose one member inflates from a few KB to `inflated` bytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z, z.open("inputs.npy", "w", force_zip64=True) as m:
        npformat.write_array_header_1_0(m, {"descr": "|u1", "fortran_order": False, "shape": (inflated,)})
        block = bytes(1 << 20)
        for _ in range(inflated >> 20):
            m.write(block)


def _declared(path: Path, names: tuple[str, ...], size: int) -> None:
    """An .npz whose zip directory declares `size` uncompressed bytes per member (what a deflate bomb of that size
    declares; compressing gigabytes of zeros for real takes too long for a test)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for n in names:
            z.writestr(f"{n}.npy", bytes(16))
    raw = bytearray(path.read_bytes())
    for sig, at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        i = raw.find(sig)
        while i >= 0:
            raw[i + at : i + at + 4] = size.to_bytes(4, "little")
            i = raw.find(sig, i + 4)
    path.write_bytes(bytes(raw))


def test_npz_members_are_judged_by_their_declared_sizes(tmp_path):
    _bomb(tmp_path / "bomb.npz", 64 << 20)
    assert (tmp_path / "bomb.npz").stat().st_size < 200_000
    t0 = time.perf_counter()
    with pytest.raises(InputError, match="over the 1.0 MiB allowed"):
        load_npz(tmp_path / "bomb.npz", 1 << 20)
    assert time.perf_counter() - t0 < 1  # refused from the zip directory, nothing inflated
    # a member whose header promises more than it holds
    with zipfile.ZipFile(tmp_path / "liar.npz", "w") as z, z.open("inputs.npy", "w") as m:
        npformat.write_array_header_1_0(m, {"descr": "<i8", "fortran_order": False, "shape": (10**9,)})
        m.write(bytes(64))
    with pytest.raises(InputError, match="but holds"):
        load_npz(tmp_path / "liar.npz", 1 << 40)
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(InputError, match="never does"):
        load_npz(tmp_path / "obj.npz", 1 << 20)


def test_solve_inputs_with_huge_headers_corrupt_zips_and_bombs_are_one_line(trm_artefact, tmp_path):
    big = tmp_path / "big.npy"
    with open(big, "wb") as f:
        npformat.write_array_header_1_0(f, {"descr": "<i8", "fortran_order": False, "shape": (10**12, 81)})
    (tmp_path / "x.npz").write_bytes(b"PK\x03\x04junk")
    _declared(tmp_path / "bomb.npz", ("inputs",), 1100 << 20)
    for name, text in (("big.npy", "over the 1.0 GiB allowed"), ("x.npz", "BadZipFile"), ("bomb.npz", "1.0 GiB")):
        r = _cli("solve", str(trm_artefact), "--inputs", str(tmp_path / name))
        _one_line(r, 2, text)


# -- files are regular files inside the folder named ----------------------------------------------------------------
def test_a_recipe_that_is_a_device_or_a_pipe_is_refused_at_once(tmp_path, art):
    fifo = tmp_path / "recipe.yaml"
    os.mkfifo(fifo)
    for args in (["export", "/dev/zero"], ["export", "--dry-run", "/dev/zero"], ["export", str(fifo)]):
        t0 = time.perf_counter()
        _one_line(_cli(*args, timeout=60), 2, "is not a regular file")
        assert time.perf_counter() - t0 < 30
    _one_line(_cli("validate", "/dev/zero", str(art), timeout=60), 2, "is not a regular file")


class _Table:
    """What select() reads of a model: the puzzle table's shape."""

    def __init__(self, rows: int) -> None:
        import torch

        self.puzzle_emb = SimpleNamespace(weights=torch.zeros(rows, 4))


def _arc_folder(tmp_path: Path) -> Path:
    data = tmp_path / "recipe" / "data"
    write_reference_layout(data, {"test": (np.zeros((4, 9), np.int64), np.zeros((4, 9), np.int64))}, 10)
    (data / "identifiers.json").write_text(json.dumps(["<blank>", "a|||t0|||0123456789", "b|||t1|||0123456789"]))
    return data


@pytest.mark.parametrize(
    "spec, text",
    [
        ("/etc/passwd", "not a path inside the recipe's folder"),
        ("../outside/secret.txt", "not a path inside the recipe's folder"),
        ("~/secret.txt", "not a path inside the recipe's folder"),
        ("link.txt", "is a symbolic link"),
        ("sub/link.txt", "is a symbolic link"),
        ("fifo.txt", "not a regular file"),
        ("names.txt", "names.txt line 3: the name is not in"),
        ("missing.txt", "does not exist"),
    ],
)
def test_puzzle_ids_files_stay_in_the_recipe_folder_and_are_never_echoed(tmp_path, canary, spec, text):
    from edgekit.export.puzzle_table import select

    data = _arc_folder(tmp_path)
    base = data.parent
    (base / "link.txt").symlink_to(canary.path / "secret.txt")
    (base / "sub").symlink_to(canary.path)
    os.mkfifo(base / "fifo.txt")
    (base / "names.txt").write_text(f"a|||t0|||0123456789\n# a comment\n{SECRET}\n")
    with pytest.raises(RecipeError) as e:
        select(spec, _Table(3), str(data), "test", base)  # type: ignore[arg-type]
    msg = str(e.value)
    assert text in msg and "\n" not in msg and e.value.exit_code == 2
    assert "TOKEN123" not in msg and "canary-secret" not in msg and "root:" not in msg
    canary.unchanged()


def test_puzzle_ids_file_inside_the_recipe_folder_works(tmp_path):
    from edgekit.export.puzzle_table import select

    data = _arc_folder(tmp_path)
    (data.parent / "names.txt").write_text("b|||t1|||0123456789\n\na|||t0|||0123456789\nb|||t1|||0123456789\n")
    table = select("names.txt", _Table(3), str(data), "test", data.parent)  # type: ignore[arg-type]
    assert table.original.tolist() == [1, 2] and table.names == ["a|||t0|||0123456789", "b|||t1|||0123456789"]


@pytest.mark.parametrize("what", ["split folder", "inputs .npy", "dataset.json", "loop"])
def test_dataset_links_out_of_task_data_are_refused(tmp_path, canary, what):
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    x = np.arange(8 * 9).reshape(8, 9) % 10
    write_reference_layout(data, {"test": (x, x)}, 10)
    shutil.copytree(data, elsewhere)
    if what == "split folder":
        shutil.rmtree(data / "test")
        (data / "test").symlink_to(elsewhere / "test")
    elif what == "inputs .npy":
        (data / "test" / "all__inputs.npy").unlink()
        (data / "test" / "all__inputs.npy").symlink_to(elsewhere / "test" / "all__inputs.npy")
    elif what == "dataset.json":
        (data / "test" / "dataset.json").unlink()
        (data / "test" / "dataset.json").symlink_to(elsewhere / "test" / "dataset.json")
    else:
        (data / "test" / "all__labels.npy").unlink()
        (data / "test" / "all__labels.npy").symlink_to(data / "test" / "all__labels.npy")
    with pytest.raises(DataError) as e:
        open_data(data, "test")
    assert ("outside task.data" in str(e.value) or "loop" in str(e.value)) and e.value.exit_code == 2
    inside = tmp_path / "inside"  # a link that stays inside the folder is fine
    write_reference_layout(inside, {"test": (x, x)}, 10)
    (inside / "test" / "copy.npy").write_bytes((inside / "test" / "all__inputs.npy").read_bytes())
    (inside / "test" / "all__inputs.npy").unlink()
    (inside / "test" / "all__inputs.npy").symlink_to(inside / "test" / "copy.npy")
    assert len(open_data(inside, "test")) == 8
    canary.unchanged()


def _layout(tmp_path: Path, n: int = 16) -> Path:
    data = tmp_path / "data"
    x = (np.arange(n * 9).reshape(n, 9) % 10).astype(np.uint8)
    write_reference_layout(data, {"test": (x, x)}, 10)
    return data


def _json(data: Path, **changes) -> None:
    p = data / "test" / "dataset.json"
    p.write_text(json.dumps({**json.loads(p.read_text()), **changes}))


@pytest.mark.parametrize(
    "change, text",
    [
        (lambda d: (d / "test/dataset.json").write_text("[" * 1_000_000), "nests too deeply"),
        (lambda d: _json(d, sets=["all"] * 100_000), "at most 64 distinct sets"),
        (
            lambda d: np.save(d / "test/all__puzzle_indices.npy", np.array([0, 3, 5, -2, 9, 16], np.int32)),
            "offset -2 at position 3",
        ),
        (
            lambda d: np.save(d / "test/all__puzzle_indices.npy", np.array([0, 3, 7, 5, 9, 16], np.int64)),
            "offset 5 at position 3 is below the one before it (7)",
        ),
        (
            lambda d: np.save(d / "test/all__puzzle_indices.npy", np.array([0, 3, 2**64 - 1, 16], np.uint64)),
            "offset 18446744073709551615 at position 2",
        ),
        (lambda d: np.save(d / "test/all__inputs.npy", np.full((16, 9), 2**63 + 5, np.uint64)), "9223372036854775813"),
        (
            lambda d: (
                [np.save(d / f"test/all__{k}.npy", np.zeros((0, 9), np.uint8)) for k in ("inputs", "labels")]
                + [
                    np.save(d / f"test/all__{k}.npy", np.zeros(1, np.int32))
                    for k in ("puzzle_indices", "group_indices")
                ]
                + [np.save(d / "test/all__puzzle_identifiers.npy", np.zeros(0, np.int32))]
            ),
            "holds no examples",
        ),
    ],
)
def test_dataset_errors_name_the_real_problem(tmp_path, change, text):
    data = _layout(tmp_path)
    change(data)
    with pytest.raises(DataError) as e:
        take(open_data(data, "test"), 4, None)
    assert text in str(e.value) and "\n" not in str(e.value) and e.value.exit_code == 2


# peak resident memory (kB) of the process itself: VmHWM starts afresh at exec, unlike ru_maxrss
PEAK = "[ln.split()[1] for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0]"


def _sparse_npy(path: Path, dtype: str, shape: tuple[int, ...], head: bytes = b"") -> None:
    with open(path, "wb") as f:
        npformat.write_array_header_1_0(f, {"descr": dtype, "fortran_order": False, "shape": shape})
        start = f.tell()
        f.write(head)
        f.truncate(start + int(np.prod(shape)) * np.dtype(dtype).itemsize)


def test_sparse_dataset_files_are_judged_by_their_counts(tmp_path):
    """A billion offsets for 16 examples is refused from the header; 10^8 examples in sparse files (8 GB that take
    no disk) are opened and their first rows read in bounded memory: nothing is copied whole."""
    data = _layout(tmp_path)
    _sparse_npy(data / "test/all__puzzle_indices.npy", "<i8", (10**9,))
    t0 = time.perf_counter()
    with pytest.raises(DataError, match="far more than its 16 examples"):
        open_data(data, "test")
    assert time.perf_counter() - t0 < 2
    n = 10**8
    for k in ("inputs", "labels"):
        _sparse_npy(data / f"test/all__{k}.npy", "|u1", (n, 9))
    if (data / "test/all__inputs.npy").stat().st_blocks * 512 > 1 << 20:
        pytest.skip("this file system does not keep sparse files")
    np.save(data / "test/all__puzzle_indices.npy", np.array([0, n], np.int64))
    np.save(data / "test/all__puzzle_identifiers.npy", np.zeros(1, np.int32))
    np.save(data / "test/all__group_indices.npy", np.array([0, 1], np.int32))
    code = (
        "from pathlib import Path\nfrom edgekit.tasks.files import open_data, take\n"
        f"d = open_data(Path({str(data)!r}), 'test')\nx, y, p, _ = take(d, 4, None)\n"
        "x2, *_ = take(d, 64, 7)\n"
        f"print(len(d), x.shape, len(x2), {PEAK})\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    count, *_, rss_kb = r.stdout.split()
    assert int(count) == n and int(rss_kb) < 300_000, r.stdout  # far below the 1.8 GB of the arrays


def test_dataset_npz_bomb_is_refused_before_inflating(tmp_path):
    _declared(tmp_path / "d.npz", ("inputs", "labels"), 1100 << 20)
    t0 = time.perf_counter()
    with pytest.raises(DataError, match="over the 2.0 GiB allowed"):
        open_data(tmp_path / "d.npz", "npz")
    assert time.perf_counter() - t0 < 1


@pytest.mark.parametrize(
    "content, text",
    [
        ("[" + ",".join(["1.5"] * 200_000) + "]", "not a list of identifier names"),
        ("[" + ",".join(["[]"] * 200_000) + "]", "not a list of identifier names"),
        ('["<blank>", {"a": 1}]', "not a list of identifier names"),
        ("[" * 100_000, "not a list of identifier names"),
    ],
)
def test_identifier_files_are_checked_before_they_are_parsed(tmp_path, content, text):
    (tmp_path / "identifiers.json").write_text(content)
    with pytest.raises(DataError, match=text):
        read_identifiers(tmp_path)
    (tmp_path / "identifiers.json").write_text(json.dumps(["<blank>", 'a "quoted" \\ name', "b"]))
    assert read_identifiers(tmp_path) == ["<blank>", 'a "quoted" \\ name', "b"]


# -- the manifest reader covers every field anything reads ----------------------------------------------------------
FIELD_CASES = [
    (lambda m: m.update(runtime_defaults=(d := {"variant": [1], "halt_threshold": 0, "max_steps": 1}),
                        runtime_defaults_sha256=defaults_digest(d)), "runtime_defaults.variant"),
    (lambda m: m["variants"]["float32"].update(step=["step"]), "is not among the listed files"),
    (lambda m: m["graph"].update(initial_state={"kind": "zeros", "shape": [81, 10**6, 10**4]}), "initial_state.shape"),
    (lambda m: m["graph"].update(initial_state={"kind": "zeros", "shape": "abc"}), "initial_state.shape"),
    (lambda m: m["graph"].update(unrolled_steps="x"), "graph.unrolled_steps"),
    (lambda m: m["graph"].update(unrolled_steps=[1, 2, 3]), "graph.unrolled_steps"),
    (lambda m: m.pop("variants"), "'variants' is not an object"),
    (lambda m: m.update(quantization={"float32": "x"}), "quantization"),
    (lambda m: m["model"].update(family="deq", config={"solver": "anderson"}), "model.config.solver"),
    (lambda m: m["model"].update(family="deq", config={"solver": {"name": "anderson", "tol": "abc"}}), "solver.tol"),
    (lambda m: m["model"].update(family="deq", config={"solver": {"name": "x", "tol": 1e-3, "anderson_m": [5]}}),
     "model.config.solver"),
    (lambda m: m.update(recipe={"name": "x" * 10_000_000}), "characters"),
    (lambda m: m["bytes"].update(step=-1), "bytes of 'step'"),
]  # fmt: skip


@pytest.mark.parametrize("change, text", FIELD_CASES)
def test_manifest_fields_commands_use_are_checked(art, change, text):
    _edit(art, change)
    t0 = time.perf_counter()
    with pytest.raises(ArtefactError) as e:
        Runner(art)
    assert text in str(e.value) and "\n" not in str(e.value) and len(str(e.value)) < 400
    assert time.perf_counter() - t0 < 5


def test_huge_integers_and_nan_in_a_manifest_are_one_line(art):
    text = (art / "manifest.json").read_text()
    m = json.loads(text)
    threshold = json.dumps(m["graph"]["halt_threshold"])
    for bad in ("2" + "0" * 400, "NaN", "-Infinity", "1" * 5000):
        (art / "manifest.json").write_text(text.replace(f'"halt_threshold": {threshold}', f'"halt_threshold": {bad}'))
        _one_line(_cli("info", str(art)), 2, "not valid JSON")


_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
    max_leaves=8,
)
PATHS = [
    ("graph", "initial_state"), ("graph", "initial_state", "shape"), ("graph", "unrolled_steps"),
    ("graph", "halt_threshold"), ("graph", "step_budget"), ("graph", "puzzle_ids"), ("graph", "input", "shape"),
    ("graph", "forms"), ("variants",), ("variants", "float32"), ("variants", "float32", "step"), ("quantization",),
    ("model", "config"), ("model", "family"), ("model", "stopping"), ("model", "stopping", "kind"),
    ("runtime_defaults",), ("runtime_defaults", "variant"),
    ("runtime_defaults", "halt_threshold"), ("bytes",), ("recipe",), ("recipe", "name"), ("edgekit_version",),
]  # fmt: skip


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(PATHS), value=_values)
def test_any_value_at_a_field_commands_use_is_checked_or_works(art, path, value):
    """Any JSON value at a field something reads: the reader refuses it in one line, or Runner, info and the
    initial state all work with it (never a TypeError, KeyError, MemoryError...)."""
    from edgekit.runtime.info import describe

    original = art.parent / "manifest.original.json"
    if not original.exists():
        shutil.copy(art / "manifest.json", original)
    m = json.loads(original.read_text())
    m.setdefault("runtime_defaults", {"variant": "float32", "halt_threshold": 0.0, "max_steps": 2})
    m["runtime_defaults_sha256"] = defaults_digest(m["runtime_defaults"])
    d = m
    for p in path[:-1]:
        d = d.setdefault(p, {})
    d[path[-1]] = value
    if path[0] == "runtime_defaults" and isinstance(m.get("runtime_defaults"), dict):
        m["runtime_defaults_sha256"] = defaults_digest(m["runtime_defaults"])  # a forger who knows the digest
    (art / "manifest.json").write_text(json.dumps(m))
    try:
        r = Runner(art)
        describe(art)
        r.initial_state(np.zeros((2, 81, 8), np.float32))
    except ArtefactError as e:
        assert "\n" not in str(e) and len(str(e)) < 400
    except Exception as e:  # only the runtime's own one-line errors
        assert type(e).__name__ == "RuntimeInputError", repr(e)


def test_info_escapes_terminal_sequences_from_the_manifest(art):
    fake = "\x1b[2J\x1b[H\x1b[32mVERIFIED\x1b[0m\r\u202e"
    _edit(art, lambda m: m["recipe"].update(name=fake))
    r = _cli("info", str(art))
    assert r.returncode == 0 and "\x1b" not in r.stdout and "\r" not in r.stdout and "\u202e" not in r.stdout
    assert "\\x1b[32mVERIFIED" in r.stdout
    assert escape_text(fake) == "\\x1b[2J\\x1b[H\\x1b[32mVERIFIED\\x1b[0m\\x0d\\u202e"
    r = _cli("info", str(art), "--json")
    assert r.returncode == 0 and "\x1b" not in r.stdout


def test_runtime_defaults_edited_after_tune_are_refused(art):
    from edgekit.tune.stage import apply_defaults

    result = {"chosen": {"variant": "float32", "threshold": 0.0, "cap": 4}, "budget_ms": 5.0, "batch": 8}
    applied = apply_defaults(art, result)
    m = read_manifest(art)
    assert m["runtime_defaults"] == applied and m["runtime_defaults_sha256"] == defaults_digest(applied)
    assert Runner(art).defaults.max_steps == 4
    _edit(art, lambda m: m["runtime_defaults"].update(halt_threshold=-0.5, max_steps=1))  # plausible values
    for cmd in (["info", str(art)], ["verify", str(art)]):
        _one_line(_cli(*cmd), 2, "runtime_defaults do not match runtime_defaults_sha256")
    _edit(art, lambda m: m["runtime_defaults"].update(halt_threshold=-1e308))  # the red team's edit
    _one_line(_cli("solve", str(art), "--inputs", "x.npy"), 2, "runtime_defaults.halt_threshold -1e+308 is not null")
    _edit(art, lambda m: [m.pop("runtime_defaults"), m.pop("runtime_defaults_sha256")])
    assert Runner(art).defaults is None


@pytest.mark.parametrize("results", ['{"passed": true, "gates": 5}', '{"passed": "yes", "gates": []}', "[" * 50_000])
def test_results_json_of_the_wrong_shape_is_one_line(art, results):
    (art / "results.json").write_text(results)
    _one_line(_cli("info", str(art)), 2, "results.json is corrupt")


def test_a_fifo_or_device_as_inputs_is_one_line(trm_artefact, tmp_path):
    os.mkfifo(tmp_path / "in.txt")
    for name in (str(tmp_path / "in.txt"), "/dev/zero"):
        _one_line(_cli("solve", str(trm_artefact), "--inputs", name, timeout=60), 2, "not a regular file")
    (tmp_path / "long.txt").write_text("1" * (2 << 20) + "\n")
    _one_line(_cli("solve", str(trm_artefact), "--inputs", str(tmp_path / "long.txt")), 2, "line 1 is over 1 MiB")


def test_a_header_over_the_limit_is_refused_in_bounded_memory(tmp_path):
    """The bounded reader keeps its promise on a machine-sized header: the process stays small."""
    big = tmp_path / "big.npy"
    _sparse_npy(big, "<f8", (10**5, 10**4))  # 8 GB declared, really there (sparse), over the stated limit
    code = (
        "from edgekit.npyio import load_npy\nfrom edgekit.errors import InputError\n"
        f"try:\n    load_npy({str(big)!r}, 1 << 30)\nexcept InputError as e:\n    print(e)\nprint({PEAK})\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    msg, rss = r.stdout.strip().splitlines()
    assert "over the 1.0 GiB allowed" in msg and int(rss) < 100_000


# -- text inputs: every token is a number of the input contract, never truncated ------------------------------------
def _row(first: str, n: int) -> str:
    return " ".join([first] + ["1"] * (n - 1))


@pytest.mark.parametrize(
    "token, text",
    [
        ("1.5", "token 1 ('1.5') is not a whole number"),
        ("nan", "token 1 ('nan') is not a whole number"),
        ("1e3", "is not a whole number"),
        ("1_0", "is not a whole number"),
        ("0x10", "is not a whole number"),
        ("\u00b2", "is not a whole number"),
        (str(2**64 - 1), "token 1 ('18446744073709551615') is beyond int64"),
        ("9" * 5000, "is beyond int64"),
    ],
)
@pytest.mark.parametrize("task, n", [("sudoku", 81), ("maze", 900), ("arc", 900), ("sequence", 12)])
def test_text_tokens_that_are_not_whole_int64_numbers_are_refused(task, n, token, text):
    """`1.5` was truncated to 1, `nan` and a uint64 token were shown as int64's minimum, `1_0` read as 10."""
    from edgekit.tasks import get_task

    with pytest.raises(ValueError) as e:
        get_task(task).parse_line(_row(token, n), n)
    assert text in str(e.value) and "write" in str(e.value) and len(str(e.value)) < 120
    good = get_task(task).parse_line(_row("-3", n).replace(" 1 ", " 9223372036854775807 ", 1), n)
    assert good.dtype == np.int64 and good[0] == -3 and good[1] == 2**63 - 1 and len(good) == n


@pytest.mark.parametrize("token", ["nan", "inf", "-Infinity", "1e400", "1_0", "x"])
def test_text_features_that_are_not_finite_numbers_are_refused(token):
    from edgekit.tasks import get_task

    with pytest.raises(ValueError, match=r"value 1 \(.*\) is not a finite number"):
        get_task("digits").parse_line(_row(token, 64), 64)
    assert get_task("digits").parse_line(_row("0.25", 64), 64)[0] == 0.25


def test_solve_and_serve_name_the_line_and_token_of_a_bad_text_token(trm_artefact, tmp_path):
    (tmp_path / "in.txt").write_text("# puzzles\n" + _row("1", 81) + "\n" + _row("1.5", 81) + "\n")
    r = _cli("solve", str(trm_artefact), "--inputs", str(tmp_path / "in.txt"))
    _one_line(r, 2, "in.txt line 3: token 1 ('1.5') is not a whole number: write token ids like 0 or 7")
    p = subprocess.run(
        [sys.executable, "-m", "edgekit.cli", "serve", str(trm_artefact)],
        input=(_row("nan", 81) + "\n" + _row(str(2**64), 81) + "\n").encode(),
        capture_output=True,
        timeout=300,
    )
    rows = {r["line"]: r["error"] for r in map(json.loads, p.stdout.decode().splitlines())}
    assert "token 1 ('nan') is not a whole number" in rows[1] and "is beyond int64" in rows[2], rows
    assert p.returncode == 2 and b"Traceback" not in p.stderr


# -- verify is bounded by the artefact: sizes before hashes --------------------------------------------------------
@pytest.mark.parametrize("key", ["references", "golden", "step"])
def test_verify_refuses_a_huge_sparse_listed_file_by_its_recorded_size(art, key):
    """A 300 GB sparse file (no disk) at a listed path was hashed in full; the export records every listed file's
    size (references and golden included), and verify compares it before reading a byte."""
    m = json.loads((art / "manifest.json").read_text())
    assert set(m["bytes"]) == set(m["files"]) == set(m["sha256"])
    path = art / m["files"][key]
    recorded = path.stat().st_size
    os.truncate(path, 300 << 30)
    t0 = time.perf_counter()
    r = _cli("verify", str(art), "--json", timeout=120)
    assert time.perf_counter() - t0 < 60 and r.returncode == 3 and "Traceback" not in r.stderr, r.stderr[-2000:]
    failed = [c for c in json.loads(r.stdout)["checks"] if not c["passed"] and c["name"].startswith("sha256")]
    assert [c["name"] for c in failed] == [f"sha256 {path.name}"]
    assert failed[0]["detail"] == (
        f"is {300 << 30:,} bytes, the manifest records {recorded:,}: the file was changed after export"
    )


# -- output paths: a name no file system holds, a file where a folder goes ------------------------------------------
def _out_cases(tmp_path: Path, art: Path, recipe: Path) -> list[tuple[list[str], str]]:
    long, file = tmp_path / ("x" * 300), tmp_path / "a-file"
    file.write_text("precious\n")
    near = tmp_path / ("y" * 250)  # fits a file system, not the export's temporary siblings named after it
    plan = ["plan", str(art), "--target", "jetson-orin-nano", "--out"]
    build = ["build", str(art), "--target", "jetson-orin-nano", "--out"]
    return [
        (["export", str(recipe), "--dry-run", "--out", str(long / "a")], "has a name of 300 bytes, over the 255"),
        (["export", str(recipe), "--out", str(near)], "has a name of 250 bytes, over the 231 an output folder"),
        (["export", str(recipe), "--out", str(file)], "exists and is not a folder"),
        ([*plan, str(long)], "has a name of 300 bytes, over the 255 a file system allows"),
        ([*plan, str(file)], f"--out {file} exists and is not a folder; name a folder"),
        ([*plan, str(file / "sub")], f"{file} on the way is not a folder"),
        ([*plan, "/dev/null"], "--out /dev/null exists and is not a folder"),
        ([*build, str(long)], "has a name of 300 bytes"),  # a usage error (2) before the toolchain's (5)
        ([*build, str(file)], "exists and is not a folder"),
        (["verify", str(art), "--out", str(long)], "has a name of 300 bytes, over the 255 a file system allows"),
        (["verify", str(art), "--out", str(long / "v.json")], "has a name of 300 bytes"),
        (["verify", str(art), "--out", str(tmp_path / "fifo")], "is not a regular file (a link, a device or a pipe)"),
        (["verify", str(art), "--out", str(tmp_path / "link")], "is not a regular file (a link, a device or a pipe)"),
    ]


def test_out_paths_too_long_or_not_folders_are_one_line(art, small_trm_recipe, tmp_path):
    """Each raised ENAMETOOLONG, FileExistsError or NotADirectoryError as a traceback; a pipe or device named as
    verify's --out was replaced by a regular file. Nothing is written."""
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "link").symlink_to(tmp_path / "a-file")
    for args, text in _out_cases(tmp_path, art, small_trm_recipe):
        line = _one_line(_cli(*args, timeout=120), 2, text)
        assert len(line) < 400, line
    assert (tmp_path / "a-file").read_text() == "precious\n" and (tmp_path / "fifo").is_fifo()
    assert (tmp_path / "link").is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["a-file", "art", "fifo", "link"])
