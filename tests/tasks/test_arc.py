"""ARC: grid codec and augmentations as the reference builders write them, voting and pass@k against
a hand count, puzzle identifiers through every form, the embedding-table cut, external data, Runner.solve_arc,
and the bad inputs of the ARC path (one line, exit 2)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekit.runtime.arc import (
    ARCError,
    Augmentation,
    crop,
    dihedral,
    parse_name,
    pass_at,
    submission,
    to_tokens,
    vote,
)

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))
import make_arc_dataset  # noqa: E402


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgekit.cli", *args], capture_output=True, text=True, timeout=600)


def _one_line(r: subprocess.CompletedProcess, code: int, text: str) -> str:
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == code, (r.returncode, r.stdout[-1500:], r.stderr[-1500:])
    assert "Traceback" not in r.stderr and len(lines) == 1, r.stderr[-1500:]
    assert text in lines[0], lines[0]
    return lines[0]


# -- the reference's grid layout and augmentations -------------------------------------------------------------------
def test_tokens_put_eos_right_of_and_below_the_grid_only():
    g = np.array([[1, 2, 3], [4, 5, 6]], np.uint8)
    t = to_tokens(g).reshape(30, 30)
    assert (t[:2, :3] == g + 2).all()
    assert (t[2, :3] == 1).all() and (t[:2, 3] == 1).all()
    assert t[2, 3] == 0, "the corner below-right stays PAD, as the reference builder leaves it"
    assert (t[3:] == 0).all() and (t[:, 4:] == 0).all()
    tall = to_tokens(np.zeros((30, 4), np.uint8)).reshape(30, 30)
    assert (tall[:, 4] == 1).all() and (tall[:, :4] == 2).all()  # no EOS row when the grid is 30 high
    full = to_tokens(np.full((30, 30), 9, np.uint8))
    assert (full == 11).all()


@pytest.mark.parametrize("shape", [(1, 1), (2, 7), (30, 3), (5, 30), (30, 30)])
def test_crop_inverts_tokens(shape):
    g = np.random.default_rng(0).integers(0, 10, shape).astype(np.uint8)
    assert np.array_equal(crop(to_tokens(g)), g)


def test_crop_is_the_largest_rectangle_anchored_at_the_origin():
    t = to_tokens(np.ones((4, 5), np.uint8)).reshape(30, 30).copy()
    t[2, 1] = 1  # a stray EOS inside the grid: rows 0-1 keep width 5 (area 10), rows 0-3 only width 1 (area 4)
    assert crop(t).shape == (2, 5)
    t[0, 0] = 0
    assert crop(t).shape == (0, 0), "an invalid first token gives the empty grid the reference votes on"


def test_dihedral_transforms_are_the_references_and_invert():
    a = np.array([[0, 1, 2], [3, 4, 5]], np.uint8)
    assert dihedral(a, 1).tolist() == [[2, 5], [1, 4], [0, 3]]
    assert dihedral(a, 3).tolist() == [[3, 0], [4, 1], [5, 2]]
    assert dihedral(a, 7).tolist() == [[5, 2], [4, 1], [3, 0]]
    g = np.random.default_rng(1).integers(0, 10, (4, 6)).astype(np.uint8)
    for t in range(8):
        aug = Augmentation("x", t, (0, 3, 1, 2, 9, 8, 7, 6, 5, 4))
        out = aug.apply(g)
        assert np.array_equal(aug.undo(out), g), t
    aug = Augmentation("x", 0, (0, 3, 1, 2, 9, 8, 7, 6, 5, 4))
    assert aug.apply(np.array([[1, 4]], np.uint8)).tolist() == [[3, 9]], "new colour = mapping[old]"


def test_names_parse_as_trm_and_hrm_write_them():
    assert parse_name("50a16a69|||t2|||0729513486") == Augmentation("50a16a69", 2, (0, 7, 2, 9, 5, 1, 3, 4, 8, 6))
    assert parse_name("007bbfb7_t3_0123456789") == Augmentation("007bbfb7", 3, tuple(range(10)))
    assert parse_name("007bbfb7") == Augmentation("007bbfb7")
    for bad in ("a|||t9|||0123456789", "a|||t1|||0123", "a|||t1|||0123456788", "a|||x|||y"):
        with pytest.raises(ARCError):
            parse_name(bad)


# -- voting and pass@k against a hand count --------------------------------------------------------------------------
def _copy(task: str, t: int, inp: np.ndarray, out: np.ndarray, answer: np.ndarray, mapping=tuple(range(10))):
    aug = Augmentation(task, t, mapping)
    return aug, to_tokens(aug.apply(inp)), to_tokens(aug.apply(out)), to_tokens(aug.apply(answer))


def test_pass_at_k_and_votes_match_a_hand_count():
    rng = np.random.default_rng(3)
    grid = lambda *s: rng.integers(0, 10, s).astype(np.uint8)  # noqa: E731
    a_in, a_out, a_wrong = grid(3, 3), grid(3, 3), grid(2, 2)
    b1_in, b1_out, b2_in, b2_out = grid(4, 2), grid(4, 2), grid(5, 5), grid(5, 5)
    perm = (0, 2, 1, 4, 3, 6, 5, 8, 7, 9)
    rows = [
        # task A, one test input: two copies vote the same wrong grid, one the right one
        _copy("A", 0, a_in, a_out, a_wrong),
        _copy("A", 1, a_in, a_out, a_wrong, perm),
        _copy("A", 6, a_in, a_out, a_out, perm),
        # task B, input 1: two of three copies right; input 2: no copy right
        _copy("B", 0, b1_in, b1_out, b1_out),
        _copy("B", 4, b1_in, b1_out, b1_out, perm),
        _copy("B", 7, b1_in, b1_out, grid(4, 2)),
        _copy("B", 0, b2_in, b2_out, grid(5, 5)),
        _copy("B", 2, b2_in, b2_out, grid(5, 4), perm),
    ]
    augs = [r[0] for r in rows]
    inputs, labels, preds = (np.stack([r[k] for r in rows]).astype(np.int64) for k in (1, 2, 3))
    labels[labels == 0] = -100  # as the loader hands labels over (ignore_label_id 0 -> -100)
    halt = np.array([0.0, 0.0, 5.0, 0.0, 0.0, 0.0, 1.0, -1.0])
    tasks = vote(inputs, preds, halt, augs, labels)
    assert [len(tasks["A"]), len(tasks["B"])] == [1, 2]
    top_a = tasks["A"][0].ranked()
    assert np.array_equal(top_a[0].grid, a_wrong) and top_a[0].votes == 2  # undone from both frames: one candidate
    assert np.array_equal(top_a[1].grid, a_out)
    # by hand. pass@1: A no; B input 1 yes, input 2 no.  pass@2: A yes; B input 1 yes, input 2 no.
    assert pass_at(tasks, 1) == {"fractional": (0 + 0.5) / 2, "all_inputs": 0.0}
    assert pass_at(tasks, 2) == {"fractional": (1 + 0.5) / 2, "all_inputs": (1 + 0) / 2}
    # B input 2: one vote each, the tie goes to the higher sigmoid(halt): copy 6 (halt 1.0) over copy 7 (-1.0)
    b2 = tasks["B"][1].ranked()
    assert b2[0].mean_q > b2[1].mean_q and b2[0].grid.shape == (5, 5)
    sub = submission(tasks)
    assert list(sub) == ["A", "B"] and len(sub["B"]) == 2
    assert sub["A"][0]["attempt_1"] == a_wrong.tolist() and sub["A"][0]["attempt_2"] == a_out.tolist()
    one = submission({"A": [tasks["A"][0]]}, attempts=3)
    assert one["A"][0]["attempt_3"] == one["A"][0]["attempt_1"], "fewer candidates repeat the first, as TRM writes"


def test_arc_metrics_of_the_generated_set_with_labels_as_answers(arc_demo):
    """Answers equal to the labels solve every task (by both definitions); answers of one wrong copy still win
    the vote (8 of 9 copies right)."""
    from edgekit.tasks import get_task
    from edgekit.tasks.loading import load_files

    data, recipe = arc_demo["data"], arc_demo["recipe_settings"]
    task = get_task("arc")
    d = task.load(recipe, len(data["inputs"]), 0, "test")
    labels = np.where(d.labels < 0, 0, d.labels)
    m = task.answer_metrics(d, [labels], [np.zeros(len(labels))], 0.0)
    assert m["budget"]["pass@1"] == {"fractional": 1.0, "all_inputs": 1.0}
    assert m["tasks"] == arc_demo["eval_tasks"]
    spoiled = labels.copy()
    first = {}
    for i, a in enumerate(d.augmentations):
        first.setdefault(a.task, i)
    for i in first.values():
        spoiled[i] = to_tokens(np.zeros((1, 1), np.uint8))
    m2 = task.answer_metrics(d, [spoiled], [np.zeros(len(labels))], 0.0)
    assert m2["budget"]["pass@1"]["fractional"] == 1.0
    assert load_files  # the generic reader serves ARC folders


# -- the pipeline on the generated ARC set ---------------------------------------------------------------------------
class _Settings:
    def __init__(self, data: str) -> None:
        self.name, self.n, self.seed, self.givens = "arc", 10**6, 0, None
        self.data, self.split, self.calibration_split = data, "test", "train"


@pytest.fixture(scope="module")
def arc_demo(tmp_path_factory):
    d = tmp_path_factory.mktemp("arc")
    info = make_arc_dataset.write(d / "data", tasks=8, eval_tasks=4, aug=4, seed=0)
    make_arc_dataset.write_model(d / "model", info["identifiers"])
    n = len(np.load(d / "data" / "test" / "all__inputs.npy"))
    recipe = d / "arc.yaml"
    recipe.write_text(f"""schema_version: 1
name: arc-test
model: {{path: {d / "model"}}}
task: {{name: arc, data: {d / "data"}, n: {n}}}
export: {{forms: [step, loop, unrolled], puzzle_ids: from_data}}
quantize: {{modes: [int8], calibration: {{n: 32}}, search: {{n: 32}}}}
validate: {{halt_calibration_n: 32}}
gates: {{min_exact: null, max_exact_drop: 0.2, max_pass2_drop: 0.5, max_exact_halted_drop: null,
        min_halting_agreement: null}}
output: {d / "art"}
""")
    from edgekit.pipeline import run_export

    out = run_export(recipe, log=lambda s: None)
    return {
        "dir": d,
        "recipe": recipe,
        "art": out.folder,
        "results": out.results,
        "code": out.exit_code,
        "eval_tasks": info["evaluation_tasks"],
        "identifiers": info["identifiers"],
        "data": {"inputs": np.load(d / "data" / "test" / "all__inputs.npy")},
        "recipe_settings": _Settings(str(d / "data")),
    }


def test_pipeline_scores_pass_at_k_for_pytorch_onnx_and_int8(arc_demo):
    res = arc_demo["results"]
    names = [v["name"] for v in res["variants"]]
    assert any("pytorch" in n for n in names) and any("int8" in n for n in names)
    for v in res["variants"]:
        arc = v["task_metrics"]["arc"]
        assert arc["tasks"] == arc_demo["eval_tasks"] and arc["copies_per_test_input"] == 5.0
        for where in ("budget", "halt"):
            assert set(arc[where]) == {"pass@1", "pass@2"}
    gates = [g for g in res["gates"] if g["name"] == "max_pass2_drop"]
    assert len(gates) == 2 and all(g["passed"] for g in gates)
    assert arc_demo["code"] == 0
    sub = json.loads((arc_demo["art"] / "submission.json").read_text())
    truth = json.loads((arc_demo["dir"] / "data" / "test_puzzles.json").read_text())
    assert set(sub) == set(truth)
    for task, tests in truth.items():
        assert len(sub[task]) == len(tests["test"]) and set(sub[task][0]) == {"attempt_1", "attempt_2"}


def test_manifest_declares_the_cut_table_and_golden_carries_identifiers(arc_demo):
    art = arc_demo["art"]
    m = json.loads((art / "manifest.json").read_text())
    p = m["graph"]["puzzle_ids"]
    used = np.unique(np.load(arc_demo["dir"] / "data" / "test" / "all__puzzle_identifiers.npy"))
    assert p["rows"] == len(used) < p["rows_before"] == arc_demo["identifiers"]
    assert p["bytes_after"] == len(used) * 64 * 4 and p["named"]
    with np.load(art / "puzzle_ids.npz", allow_pickle=False) as z:
        assert np.array_equal(z["original"], used)
    with np.load(art / "golden.npz", allow_pickle=False) as g:
        assert "puzzle_ids" in g.files and set(g["puzzle_ids"].tolist()) <= set(used.tolist())
    assert _cli("verify", str(art)).returncode == 0


def test_identifiers_change_the_answer_in_every_form(arc_demo):
    from edgekit.runtime import Runner

    r = Runner(arc_demo["art"])
    x = arc_demo["data"]["inputs"][:2].astype(np.int64)
    ids = r.puzzles.original[:2]
    for mode in ("host", "loop", "unrolled"):
        a = r.solve(x, mode=mode, puzzle_ids=[ids[0], ids[0]]).logits
        b = r.solve(x, mode=mode, puzzle_ids=[ids[1], ids[1]]).logits
        c = r.solve(x, mode=mode, puzzle_ids=[r.puzzles.name(0)] * 2).logits
        assert np.abs(a - b).max() > 1e-3, mode
        assert np.array_equal(a, c), "a name and its id are the same row"


def test_runtime_refuses_identifiers_outside_the_cut(arc_demo):
    from edgekit.runtime import Runner
    from edgekit.runtime.errors import RuntimeInputError

    r = Runner(arc_demo["art"])
    x = arc_demo["data"]["inputs"][:1].astype(np.int64)
    outside = next(i for i in range(1, arc_demo["identifiers"]) if i not in set(r.puzzles.original.tolist()))
    for bad, text in (
        ([outside], f"puzzle identifier {outside} is not in this artefact's puzzle table"),
        (None, "pass puzzle_ids"),
        (["no-such-task|||t1|||0123456789"], "is not in this artefact's puzzle table"),
        ([0.5], "expected integer ids or names"),
        ([1, 2], "expected [1]"),
    ):
        with pytest.raises(RuntimeInputError, match=None) as e:
            r.solve(x, puzzle_ids=bad)
        assert text in str(e.value), str(e.value)


def test_solve_arc_gives_the_answers_validation_voted(arc_demo):
    """The device path (augment, run with the runtime alone, undo, vote) answers what the validation stage
    voted from its recorded rollout: submission.json's attempts, at the full budget."""
    from edgekit.runtime import Runner
    from edgekit.runtime.errors import RuntimeInputError

    r = Runner(arc_demo["art"])
    truth = json.loads((arc_demo["dir"] / "data" / "test_puzzles.json").read_text())
    sub = json.loads((arc_demo["art"] / "submission.json").read_text())
    for task, t in truth.items():
        answers = r.solve_arc(task, [p["input"] for p in t["test"]], threshold=float("inf"))
        assert len(answers) == len(t["test"])
        for ti, want, pair in zip(answers, sub[task], t["test"]):
            assert ti.grid.tolist() == pair["input"]
            assert sum(c.votes for c in ti.candidates.values()) == 5
            top = [g.astype(int).tolist() for g in ti.top(2)]
            top += [top[0]] * (2 - len(top))
            assert top == [want["attempt_1"], want["attempt_2"]]
    with pytest.raises(RuntimeInputError, match="1x1 to 30x30"):
        r.solve_arc(next(iter(truth)), [np.zeros((31, 2), np.uint8)])
    with pytest.raises(RuntimeInputError, match="colours 0-9"):
        r.solve_arc(next(iter(truth)), [[[1, 12]]])
    with pytest.raises(RuntimeInputError, match="has no puzzle identifiers"):
        r.solve_arc("nope", [[[1]]])


# -- external data ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def external(arc_demo, tmp_path_factory):
    d = tmp_path_factory.mktemp("ext")
    text = (
        arc_demo["recipe"]
        .read_text()
        .replace("puzzle_ids: from_data}", "puzzle_ids: from_data, external_data: always}")
    )
    text = text.replace("modes: [int8]", "modes: [int8_dynamic]").replace(str(arc_demo["dir"] / "art"), str(d / "art"))
    (d / "r.yaml").write_text(text)
    r = _cli("export", str(d / "r.yaml"))
    assert r.returncode == 0, r.stderr[-2000:]
    return d / "art"


def test_external_data_is_listed_hashed_and_runs_like_the_inline_table(external, arc_demo):
    from edgekit.runtime import Runner

    m = json.loads((external / "manifest.json").read_text())
    assert m["files"]["encode_data"] == "encode.onnx.data" and "encode_data" in m["sha256"]
    assert (external / "encode.onnx.data").stat().st_size == m["graph"]["puzzle_ids"]["bytes_after"]
    assert (external / "encode.onnx").stat().st_size < 50_000
    x = arc_demo["data"]["inputs"][:3].astype(np.int64)
    a, b = Runner(external), Runner(arc_demo["art"])
    ids = a.puzzles.original[:3]
    for mode in ("host", "loop"):
        assert np.array_equal(
            a.solve(x, mode=mode, puzzle_ids=ids).logits, b.solve(x, mode=mode, puzzle_ids=ids).logits
        )
    assert _cli("verify", str(external)).returncode == 0
    r = _cli("check", str(external))
    assert r.returncode == 0, r.stdout[-1500:]


def test_tampered_or_escaping_external_data_is_refused(external, tmp_path):
    import onnx

    from edgekit.runtime import Runner
    from edgekit.runtime.errors import ArtefactError

    art = tmp_path / "art"
    shutil.copytree(external, art)
    data = bytearray((art / "encode.onnx.data").read_bytes())
    data[0] ^= 0xFF
    (art / "encode.onnx.data").write_bytes(bytes(data))
    r = _cli("verify", str(art))
    assert r.returncode != 0 and "encode" in r.stdout
    # a graph whose external data points outside the folder: onnxruntime refuses, one line
    secret = tmp_path / "secret.bin"
    secret.write_bytes(bytes(len(data)))
    proto = onnx.load(str(art / "encode.onnx"), load_external_data=False)
    for t in proto.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = "../secret.bin"
    (art / "encode.onnx").write_bytes(proto.SerializeToString())
    with pytest.raises(ArtefactError, match="cannot be loaded"):
        r = Runner(art, complete=False)
        r.encode(np.ones((1, 900), np.int64), r.puzzles.original[:1])
    # a symbolic link anywhere in the folder is refused before any graph is opened
    (art / "encode.onnx.data").unlink()
    (art / "encode.onnx.data").symlink_to(secret)
    with pytest.raises(ArtefactError, match="symbolic link"):
        Runner(art, complete=False)


# -- bad inputs of the ARC path: one line, exit 2 ---------------------------------------------------------------------
def _variant(arc_demo, tmp: Path, edit) -> Path:
    data = tmp / "data"
    shutil.copytree(arc_demo["dir"] / "data", data)
    text = arc_demo["recipe"].read_text().replace(str(arc_demo["dir"] / "data"), str(data))
    text = text.replace(str(arc_demo["dir"] / "art"), str(tmp / "art"))
    text = edit(data, text) or text
    (tmp / "r.yaml").write_text(text)
    return tmp / "r.yaml"


def test_puzzle_ids_naming_unknown_identifiers_are_refused(arc_demo, tmp_path):
    r = _variant(
        arc_demo, tmp_path, lambda d, t: t.replace("puzzle_ids: from_data", "puzzle_ids: [nosuch|||t1|||0123456789]")
    )
    _one_line(_cli("export", str(r)), 2, "is not in")
    assert not (tmp_path / "art").exists()


def test_validation_examples_outside_the_cut_are_refused(arc_demo, tmp_path):
    names = json.loads((arc_demo["dir"] / "data" / "identifiers.json").read_text())
    r = _variant(
        arc_demo, tmp_path, lambda d, t: t.replace("puzzle_ids: from_data", f"puzzle_ids: [{json.dumps(names[1])}]")
    )
    _one_line(_cli("export", str(r)), 2, "export.puzzle_ids does not keep")


def test_unparsable_augmentation_names_are_refused(arc_demo, tmp_path):
    def edit(d: Path, t: str) -> None:
        names = json.loads((d / "identifiers.json").read_text())
        used = int(np.load(d / "test" / "all__puzzle_identifiers.npy")[1])
        names[used] = names[used].split("|||")[0] + "|||t9|||0123456789"
        (d / "identifiers.json").write_text(json.dumps(names))

    _one_line(_cli("export", str(_variant(arc_demo, tmp_path, edit))), 2, "dihedral transform 0-7")


def test_a_task_without_test_examples_is_refused(arc_demo, tmp_path):
    def edit(d: Path, t: str) -> None:
        p = np.load(d / "test" / "all__puzzle_indices.npy")
        ids = np.load(d / "test" / "all__puzzle_identifiers.npy")
        g = np.load(d / "test" / "all__group_indices.npy")
        np.save(d / "test" / "all__puzzle_indices.npy", np.concatenate([p, p[-1:]]).astype(np.int32))
        np.save(d / "test" / "all__puzzle_identifiers.npy", np.concatenate([ids, ids[-1:]]).astype(np.int32))
        np.save(d / "test" / "all__group_indices.npy", np.concatenate([g, [g[-1] + 1]]).astype(np.int32))

    _one_line(_cli("export", str(_variant(arc_demo, tmp_path, edit))), 2, "has no test examples")


def test_pass2_gate_needs_the_arc_task(tmp_path):
    from edgekit.errors import RecipeError
    from edgekit.schema import load_recipe

    p = tmp_path / "r.yaml"
    p.write_text("schema_version: 1\nname: x\nmodel: {path: m}\ntask: {name: sudoku}\ngates: {max_pass2_drop: 0.1}\n")
    with pytest.raises(RecipeError, match="max_pass2_drop"):
        load_recipe(p)


def _hand_pass_at_k(names, inputs, labels, preds, halts, k):
    """pass@k written out directly from the reference evaluators' description (independent of runtime/arc.py):
    crop, undo (dihedral inverse table [0, 3, 2, 1, 4, 5, 6, 7], then argsort of the colour map), vote by
    (count, mean sigmoid), TRM fractional and HRM all-inputs."""
    inv_t = [0, 3, 2, 1, 4, 5, 6, 7]
    ops = [lambda a: a, lambda a: np.rot90(a, 1), lambda a: np.rot90(a, 2), lambda a: np.rot90(a, 3), np.fliplr,
           np.flipud, lambda a: a.T, lambda a: np.fliplr(np.rot90(a, 1))]  # fmt: skip

    def crop_(seq):
        g = np.asarray(seq).reshape(30, 30)
        best, size, nc = 0, (0, 0), 30
        for nr in range(1, 31):
            for c in range(1, nc + 1):
                if not 2 <= g[nr - 1, c - 1] <= 11:
                    nc = c - 1
                    break
            if nr * nc > best:
                best, size = nr * nc, (nr, nc)
        return (g[: size[0], : size[1]] - 2).astype(np.uint8)

    def undo(name, grid):
        if "|||" not in name:
            return grid
        _, t, perm = name.split("|||")
        inv = np.argsort([int(c) for c in perm])
        return inv[ops[inv_t[int(t[1:])]](grid)].astype(np.uint8)

    votes, truth = {}, {}
    for i, name in enumerate(names):
        task = name.split("|||")[0]
        inp = undo(name, crop_(inputs[i]))
        kk = (task, inp.shape, inp.tobytes())
        truth.setdefault(kk, undo(name, crop_(np.where(labels[i] < 0, 0, labels[i]))))
        p = undo(name, crop_(preds[i]))
        slot = votes.setdefault(kk, {}).setdefault((p.shape, p.tobytes()), [0, 0.0])
        slot[0] += 1
        slot[1] += 1 / (1 + np.exp(-float(halts[i])))
    per_task = {}
    for kk, cands in votes.items():
        ranked = sorted(cands.items(), key=lambda kv: (kv[1][0], kv[1][1] / kv[1][0]), reverse=True)
        t = truth[kk]
        ok = any(c == (t.shape, t.tobytes()) for c, _ in ranked[:k])
        per_task.setdefault(kk[0], []).append(ok)
    frac = np.mean([np.mean(v) for v in per_task.values()])
    full = np.mean([all(v) for v in per_task.values()])
    return float(frac), float(full)


def test_pass_at_k_on_the_generated_set_matches_a_hand_computation(arc_demo):
    """Answers right for a random half of the copies (the rest a random wrong grid), random halting logits: the
    ARC task's pass@1 / pass@2 equal the hand computation on the generated dataset, and are strictly between 0
    and 1 (so the check can tell)."""
    from edgekit.tasks import get_task

    task = get_task("arc")
    d = task.load(arc_demo["recipe_settings"], len(arc_demo["data"]["inputs"]), 0, "test")
    rng = np.random.default_rng(7)
    labels = np.where(d.labels < 0, 0, d.labels)
    preds = labels.copy()
    for i in np.flatnonzero(rng.random(len(preds)) < 0.55):
        preds[i] = to_tokens(rng.integers(0, 10, (int(rng.integers(1, 4)), 2)).astype(np.uint8))
    halts = rng.normal(size=len(preds))
    m = task.answer_metrics(d, [preds], [halts], 0.0)
    seen = set()
    for k in (1, 2):
        frac, full = _hand_pass_at_k(d.names, d.inputs, d.labels, preds, halts, k)
        assert m["budget"][f"pass@{k}"] == {"fractional": pytest.approx(frac), "all_inputs": pytest.approx(full)}
        seen |= {frac, full}
    assert any(0 < v < 1 for v in seen), seen


def test_cli_solve_takes_a_puzzle_id_and_refuses_without_one(arc_demo, tmp_path):
    from edgekit.runtime import Runner

    x = tmp_path / "x.npy"
    np.save(x, arc_demo["data"]["inputs"][:2].astype(np.int64))
    r = Runner(arc_demo["art"])
    name = r.puzzles.name(0)
    ok = _cli("solve", str(arc_demo["art"]), "--inputs", str(x), "--puzzle-id", name, "--json")
    assert ok.returncode == 0, ok.stderr[-1000:]
    assert len([ln for ln in ok.stdout.splitlines() if ln.startswith("{")]) == 2
    by_id = _cli("solve", str(arc_demo["art"]), "--inputs", str(x), "--puzzle-id", str(r.puzzles.original[0]), "--json")
    assert by_id.stdout == ok.stdout
    _one_line(_cli("solve", str(arc_demo["art"]), "--inputs", str(x)), 2, "pass puzzle_ids")
    _one_line(_cli("solve", str(arc_demo["art"]), "--inputs", str(x), "--puzzle-id", "zz"), 2, "is not in this")


@pytest.mark.parametrize("family", ["trm", "hrm"])
def test_encode_graph_takes_puzzle_rows_like_pytorch_takes_ids(family, tmp_path):
    """Both families (TRM: 16 prefix rows, HRM: one): the exported encode graph of a cut table, fed rows, equals
    PyTorch's encode of the full model fed the original identifiers."""
    import onnxruntime as ort
    import torch

    from edgekit.export.onnx_export import export_step_graphs
    from edgekit.export.puzzle_table import PuzzleTable
    from edgekit.models.act import build_act_model
    from edgekit.models.config import ACTConfig

    torch.manual_seed(0)
    extra = {"H_layers": 1} if family == "hrm" else {"puzzle_emb_len": 16}
    cfg = ACTConfig(family=family, seq_len=900, vocab_size=12, num_puzzle_identifiers=30, puzzle_emb_ndim=64,
                    H_cycles=1, L_cycles=1, L_layers=1, hidden_size=64, expansion=2, num_heads=2,
                    forward_dtype="float32", **extra)  # fmt: skip
    m = build_act_model(cfg).eval()
    with torch.no_grad():
        m.puzzle_emb.weights.normal_()
    keep = np.array([3, 7, 20], np.int64)
    export_step_graphs(m, tmp_path, table=PuzzleTable(keep, None, 30, 64))
    x = np.random.default_rng(0).integers(0, 12, (3, 900))
    got = ort.InferenceSession(str(tmp_path / "encode.onnx")).run(
        None, {"inputs": x, "puzzle_ids": np.array([2, 0, 1])}
    )
    want = m.encode(torch.from_numpy(x), torch.tensor([20, 3, 7])).detach().numpy()
    assert np.allclose(got[0], want, atol=1e-5)
    assert not np.allclose(want[0], want[1])


def test_device_commands_on_an_arc_artefact_answer_or_refuse_in_one_line(arc_demo, tmp_path):
    """bench has no ARC generator (one line, exit 2) and takes --inputs with --puzzle-id; tune refuses ARC
    artefacts (voted answers are not tuned yet) with one line, exit 2."""
    from edgekit.runtime import Runner

    art = str(arc_demo["art"])
    _one_line(_cli("bench", art), 2, "no built-in inputs")
    x = tmp_path / "x.npy"
    np.save(x, arc_demo["data"]["inputs"][:2].astype(np.int64))
    pid = str(Runner(arc_demo["art"]).puzzles.original[0])
    r = _cli("bench", art, "--inputs", str(x), "--puzzle-id", pid, "--batch", "2", "--repeats", "1", "--json")
    assert r.returncode == 0, r.stderr[-1000:]
    assert json.loads(r.stdout)["results"][0]["batch"] == 2
    _one_line(_cli("tune", str(arc_demo["recipe"]), "--latency-budget", "50"), 2, "not tuned yet")


def test_info_states_the_puzzle_table(arc_demo):
    r = _cli("info", str(arc_demo["art"]))
    assert r.returncode == 0 and "puzzle identifiers: input puzzle_ids [batch]" in r.stdout, r.stdout
    d = json.loads(_cli("info", str(arc_demo["art"]), "--json").stdout)
    assert d["graph"]["puzzle_ids"]["rows"] < d["graph"]["puzzle_ids"]["rows_before"]
