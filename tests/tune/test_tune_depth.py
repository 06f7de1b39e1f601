"""`edgekit tune --depth-factor`: test-time depth. Step caps past the trained budget scored from one deeper recorded
rollout, checked against the host loop and the Loop form answering at those caps, the curve in tune.json, the table
and tune_depth.png; runtime defaults above the budget accepted up to the bounded maximum and no further."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest

from edgekit.runtime.manifest import read_manifest
from edgekit.tune.depth import depth_curve, saturation, shown_caps
from edgekit.tune.latency import StepTimes

DOCS_COMMANDS = (r"^edgekit tune recipes/trm-sudoku\.yaml --latency-budget \d+ --batch \d+ --depth-factor \d$",)


def _edgekit(*args):
    return subprocess.run([sys.executable, "-m", "edgekit.cli", *args], capture_output=True, text=True, timeout=900)


def test_saturation_is_where_no_deeper_cap_gains_more_than_one_example():
    n = 100
    assert saturation([0.1, 0.5, 0.8, 0.8, 0.81, 0.80], n) == 3  # 0.81 is one example more: noise
    assert saturation([0.1, 0.5, 0.8, 0.8, 0.85], n) == 5  # five more at the last cap: still rising
    assert saturation([0.9, 0.2, 0.2], n) == 1  # deeper only loses
    assert shown_caps(16, 128, [37]) == [1, 2, 4, 8, 16, 32, 37, 48, 64, 80, 96, 112, 128]


def test_depth_curve_scores_each_cap_and_rule_from_the_recording():
    """4 samples, budget 2, recorded to 4 steps: samples 0 and 1 are right at steps 1-2 only, sample 2 from step 3,
    sample 3 at step 4; the validated threshold halts samples 0 and 1 at step 1. Each cap's exact accuracy, mean
    steps and the gain past the budget, by hand."""
    labels = np.array([[1], [2], [3], [4]])
    right = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]], bool)  # [step, sample]
    preds = np.where(right, labels[:, 0], 0)[:, :, None]
    halt = np.array([[5.0, 5.0, -1.0, -1.0]] * 4)
    times = StepTimes([1, 4], encode=[0.0, 0.0], step=[1.0, 1.0], readout=[0.0, 0.0])  # 1 ms per step call
    d = depth_curve("float32", preds, halt, labels, 0.0, 2, times, batch=4)
    at, never = d["rules"]
    assert at["exact"] == [0.5, 0.5, 0.75, 1.0] and at["mean_steps"] == [1.0, 1.5, 2.0, 2.5]
    assert never["threshold"] is None and never["exact"] == [0.5, 0.5, 0.25, 0.5]  # 0 and 1 wrong past step 2
    assert at["saturates_at"] == 3 and at["best_cap"] == 4  # cap 4 is one example (of 4) more: within noise
    assert at["past_budget"]["exact_gain"] == pytest.approx(0.5) and at["past_budget"]["extra_mean_steps"] == 1.0
    assert at["ms_per_puzzle"] == pytest.approx([0.25, 0.5, 0.75, 1.0])  # one step call per step, 4 puzzles
    assert at["past_budget"]["ms_per_extra_step"] == pytest.approx(0.5)


def test_runner_records_past_the_budget_and_refuses_bad_step_counts(trm_artefact):
    from edgekit.runtime import Runner
    from edgekit.runtime.errors import RuntimeInputError

    x = _puzzles(2)
    r = Runner(trm_artefact)
    budget = read_manifest(trm_artefact)["graph"]["step_budget"]
    deep = r.run(x, steps=budget + 3)
    assert len(deep.preds) == budget + 3
    short = r.run(x)
    assert all(np.array_equal(a, b) for a, b in zip(short.preds, deep.preds[:budget]))  # the same first steps
    sol = r.solve(x, max_steps=budget + 3, threshold=math.inf)
    assert sol.steps.tolist() == [budget + 3] * 2
    for bad in (0, -1, True, 2.5, 100_001):
        with pytest.raises(RuntimeInputError, match="steps must be an integer"):
            r.run(x, steps=bad)


def _puzzles(n: int, seed: int = 5) -> np.ndarray:
    from edgekit.tasks import sudoku

    pool = sudoku.SudokuPool.generate(n, seed=seed)
    return pool.sample(n, (28, 40), np.random.default_rng(seed), augment=False)[0]


def test_the_deep_recording_is_what_the_host_loop_and_the_loop_form_answer(trm_artefact):
    """A rollout recorded past the budget, scored at a cap past it, against Runner.solve (host loop) and the Loop
    form fed that max_steps, on 4 puzzles, at the validated threshold and never halting early (every puzzle then
    runs exactly to the cap in both forms)."""
    from edgekit.runtime import Runner
    from edgekit.tune.depth import check_forms

    r = Runner(trm_artefact)
    graph = read_manifest(trm_artefact)["graph"]
    cap = graph["step_budget"] + 4
    x = _puzzles(4)
    rec = r.run(x, steps=cap)
    preds, halt = np.stack(rec.preds), np.stack(rec.halt)
    for row in check_forms(r, x, preds, halt, [(cap, float(graph["halt_threshold"])), (cap, math.inf)], 4):
        assert row["examples"] == 4 and set(row) >= {"host_loop_same_answer", "loop_form_same_answer"}
        assert row["host_loop_same_steps"] >= 3 / 4 and row["loop_form_same_steps"] >= 3 / 4, row
        assert row["host_loop_same_answer"] >= 3 / 4 and row["loop_form_same_answer"] >= 3 / 4, row
        if row["threshold"] is None:  # never halting: the Loop form really ran past the budget, to the cap
            assert row["loop_form_same_steps"] == 1.0 and row["host_loop_same_steps"] == 1.0


def test_runtime_defaults_above_the_budget_up_to_the_bounded_maximum(trm_artefact, tmp_path):
    """`tune --apply` may record a cap past the budget: accepted up to 8 x the budget (digest intact, Runner answers
    with it, verify still checks the validated settings); one step more is refused in one line even with a digest
    recomputed to match."""
    from edgekit.runtime import Runner
    from edgekit.runtime.errors import ArtefactError
    from edgekit.runtime.manifest import MAX_DEPTH_FACTOR, defaults_digest, read_manifest
    from edgekit.runtime.verify import verify
    from edgekit.tune import apply_defaults

    art = tmp_path / "art"
    shutil.copytree(trm_artefact, art)
    budget = 16
    for cap in (budget + 1, MAX_DEPTH_FACTOR * budget):
        chosen = {"variant": "float32", "threshold": None, "cap": cap}
        applied = apply_defaults(art, {"chosen": chosen, "budget_ms": 50.0, "batch": 8})
        assert applied["max_steps"] == cap and Runner(art).limits(None, None) == (cap, math.inf)
        assert Runner(art).validated_settings().limits(None, None)[0] == budget
    assert verify(art).passed
    m = json.loads((art / "manifest.json").read_text())
    m["runtime_defaults"]["max_steps"] = MAX_DEPTH_FACTOR * budget + 1
    m["runtime_defaults_sha256"] = defaults_digest(m["runtime_defaults"])  # a digest that matches: the bound refuses
    (art / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ArtefactError, match=r"runtime_defaults.max_steps 129 is not an integer in \[1, 128\]"):
        read_manifest(art, complete=True)


@pytest.mark.slow
def test_tune_explores_depth_end_to_end(small_trm_recipe, trm_artefact, tmp_path):
    """`edgekit tune --depth-factor 2` on the demo TRM (32 puzzles): the front covers caps past the budget; the curve
    at the budget is the validated configuration's accuracy; the deepest cap answered again through the host loop
    and the Loop form matches the recording; the table, tune.json and tune_depth.png carry it."""
    art = tmp_path / "art"
    shutil.copytree(trm_artefact, art)
    args = ["tune", str(small_trm_recipe), "--artefact", str(art), "--batch", "8", "--check-n", "8"]
    p = _edgekit(*args, "--latency-budget", "100000", "--depth-factor", "2", "--depth-check-n", "8")
    assert p.returncode == 0, p.stderr
    assert "test-time depth: step caps 1-32 (2 x the trained budget 16)" in p.stdout, p.stdout
    assert "trained budget" in p.stdout and "saturates" in p.stdout and "Loop form (max_steps input)" in p.stdout
    res = json.loads((art / "tune.json").read_text())
    d = res["depth"]
    assert d["budget"] == 16 and d["deepest"] == 32 and d["factor"] == 2
    assert res["configurations"] % 32 == 0 and res["configurations"] >= 64  # every threshold at caps 1 .. 32
    curve = d["curves"][0]
    at, never = curve["rules"]
    assert len(at["exact"]) == 32 and len(never["ms_per_puzzle"]) == 32
    assert 1 <= at["saturates_at"] <= 32 and at["exact"][at["best_cap"] - 1] == max(at["exact"])
    assert never["mean_steps"] == [float(c) for c in range(1, 33)]  # never halting: every puzzle runs to the cap
    assert never["ms_per_puzzle"][31] > never["ms_per_puzzle"][15] > never["ms_per_puzzle"][0]  # depth costs
    assert at["exact"][15] == pytest.approx(res["floor"]["validated"])  # float32, its threshold, the budget
    for row in d["forms_check"]["rows"]:
        assert row["cap"] == 32 and row["examples"] == 8
        assert row["host_loop_same_answer"] >= 7 / 8 and row["loop_form_same_answer"] >= 7 / 8, row
    assert (art / "tune_depth.png").stat().st_size > 10_000


def test_depth_factor_out_of_range_is_refused(small_trm_recipe, trm_artefact, tmp_path):
    from edgekit.errors import RecipeError
    from edgekit.tune import TuneSettings, run_tune

    p = _edgekit("tune", str(small_trm_recipe), "--artefact", str(trm_artefact), "--latency-budget", "5",
                 "--depth-factor", "9")  # fmt: skip
    assert p.returncode == 2 and "--depth-factor" in p.stderr and "Traceback" not in p.stderr
    with pytest.raises(RecipeError, match=r"depth factor must be an integer in \[1, 8\]"):
        run_tune(small_trm_recipe, trm_artefact, TuneSettings(5.0, depth_factor=0), log=lambda s: None)


@pytest.mark.slow
def test_the_depth_command_of_the_tuning_page(small_trm_recipe, trm_artefact, tmp_path):
    """docs/tuning.md's depth command as written (factor 8), on a copy of the small demo artefact (32 puzzles)."""
    import re
    import shlex
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "tuning.md").read_text()
    cmd = next(ln.strip() for ln in page.splitlines() if re.match(DOCS_COMMANDS[0], ln.strip()))
    art = tmp_path / "art"
    shutil.copytree(trm_artefact, art)
    argv = shlex.split(cmd)[1:]
    argv[1] = str(small_trm_recipe)
    p = _edgekit(*argv, "--artefact", str(art), "--check-n", "16", "--depth-check-n", "8")
    assert p.returncode in (0, 4), p.stdout[-2000:] + p.stderr[-2000:]
    d = json.loads((art / "tune.json").read_text())["depth"]
    assert d["deepest"] == 8 * 16 and len(d["curves"][0]["rules"][1]["exact"]) == 128
    assert (art / "tune_depth.png").is_file()
