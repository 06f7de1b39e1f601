"""`edgekit tune`: configurations scored from a recorded rollout, the front, the latency model, the budget choice,
runtime defaults written with --apply and honoured by the runtime, and its bad inputs."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest

from edgekit.tasks.metrics import halting_steps
from edgekit.tune.front import Config, choose, grid, pareto_front
from edgekit.tune.latency import StepTimes, predict_ms


def test_grid_scores_each_configuration_from_the_recorded_rollout():
    """3 samples, 3 steps: answers and halting logits recorded per step; a configuration's exact accuracy is what
    the host loop would return, computed by hand here."""
    labels = np.array([[1, 1], [2, 2], [3, 3]])
    preds = np.array(
        [
            [[1, 0], [2, 2], [0, 0]],  # step 1: sample 1 right
            [[1, 1], [2, 2], [3, 0]],  # step 2: samples 0, 1 right
            [[1, 1], [0, 2], [3, 3]],  # step 3: samples 0, 2 right
        ]
    )
    halt = np.array([[-1.0, 5.0, -1.0], [3.0, 0.0, -1.0], [3.0, 0.0, 2.0]])
    assert halting_steps(halt[:3], 1.0).tolist() == [2, 1, 3]
    configs = {(c.threshold, c.cap): c for c in grid("float32", preds, halt, labels, preds[2], [1.0, math.inf])}
    assert configs[(1.0, 3)].exact == pytest.approx(1.0)  # 0 at step 2, 1 at step 1, 2 at step 3: all right
    assert configs[(math.inf, 3)].exact == pytest.approx(2 / 3)  # everyone at step 3: sample 1 wrong
    assert configs[(1.0, 1)].exact == pytest.approx(1 / 3) and configs[(1.0, 1)].mean_steps == 1.0
    assert configs[(math.inf, 3)].same_answer_as_default == 1.0


def test_front_keeps_only_undominated_configurations_and_choice_respects_the_budget():
    cs = [
        Config("a", 0.0, 1, exact=0.5, latency_ms=10),
        Config("a", 0.0, 2, exact=0.7, latency_ms=20),
        Config("b", 0.0, 1, exact=0.6, latency_ms=25),  # slower and worse than a/2: dominated
        Config("a", 0.0, 4, exact=0.9, latency_ms=40),
        Config("b", 0.0, 2, exact=0.9, latency_ms=45),  # as accurate as a/4, slower: dominated
    ]
    front = pareto_front(cs)
    assert [(c.variant, c.cap) for c in front] == [("a", 1), ("a", 2), ("a", 4)]
    assert choose(front, 30).cap == 2 and choose(front, 40).cap == 4 and choose(front, 9) is None


def test_latency_model_replays_compaction():
    """Step cost grows with the active batch; a chunk of 4 where samples stop at steps 1, 1, 2, 3 runs step 1 on 4,
    step 2 on 2, step 3 on 1, reading out 2, 1, 1."""
    t = StepTimes([1, 2, 4], encode=[1, 1, 2], step=[10, 12, 16], readout=[0.5, 0.5, 0.5])
    ms = predict_ms(t, np.array([1, 1, 2, 3]), batch=4)
    assert ms == pytest.approx((2 + 16 + 12 + 10 + 3 * 0.5) / 4)
    t.scale = 2.0
    assert predict_ms(t, np.array([1, 1, 2, 3]), batch=4) == pytest.approx(2 * ms)


def _edgekit(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "edgekit.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_tune_chooses_applies_and_the_runtime_follows(small_trm_recipe, trm_artefact, tmp_path):
    """On the demo TRM (32 validation puzzles, batch 8): a generous budget picks a configuration, --apply writes it
    as runtime_defaults, Runner answers with it by default, verify still passes (golden answers are at the
    validated settings); a budget below the fastest configuration is exit 4 with one line naming the fastest."""
    from edgekit.runtime import Runner
    from edgekit.runtime.verify import verify

    art = tmp_path / "art"
    shutil.copytree(trm_artefact, art)
    args = ["tune", str(small_trm_recipe), "--artefact", str(art), "--batch", "8", "--check-n", "32"]
    p = _edgekit(*args, "--latency-budget", "100000", "--apply", "--json")
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    chosen = res["chosen"]
    assert chosen["latency_source"] == "measured" and chosen["latency_ms"] <= 100000
    assert chosen["exact"] == max(c["exact"] for c in res["front"])
    assert res["check"]["n"] == 32 and 0.0 <= res["check"]["chosen"]["exact"] <= 1.0
    on_disk = json.loads((art / "tune.json").read_text())
    assert on_disk["chosen"] == chosen and (art / "tune_front.png").stat().st_size > 10_000
    assert "## Tuning for 100000 ms" in (art / "report.md").read_text()
    defaults = json.loads((art / "manifest.json").read_text())["runtime_defaults"]
    assert defaults["variant"] == chosen["variant"] and defaults["max_steps"] == chosen["cap"]
    r = Runner(art)
    want_thr = math.inf if chosen["threshold"] is None else chosen["threshold"]
    assert r.limits(None, None) == (chosen["cap"], want_thr)
    assert Runner(art).validated_settings().limits(None, None)[0] == 16
    rep = verify(art)
    assert rep.passed, rep.checks

    fastest = res["front"][0]["latency_ms"]
    p = _edgekit(*args, "--latency-budget", f"{fastest / 1000:.4f}")
    assert p.returncode == 4, p.stdout + p.stderr
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no configuration at or above the accuracy floor"), err
    assert "the fastest configuration that meets it is" in err[0] or "none reaches the floor" in err[0], err


def test_tune_keeps_an_accuracy_floor_and_says_when_nothing_was_recorded(small_trm_recipe, trm_artefact, tmp_path):
    """Default floor = the validated exact at halting minus the recipe's drop limit at halting
    (max_exact_halted_drop, 0.01 by default);
    without --apply one line says nothing was recorded and gives the command that would; a budget only
    configurations below the floor meet is exit 4 naming the fastest configuration that keeps the floor."""
    art = tmp_path / "art"
    shutil.copytree(trm_artefact, art)
    args = ["tune", str(small_trm_recipe), "--artefact", str(art), "--batch", "8", "--check-n", "8"]
    p = _edgekit(*args, "--latency-budget", "100000")
    assert p.returncode == 0, p.stderr
    res = json.loads((art / "tune.json").read_text())
    floor = res["floor"]
    assert (
        floor["value"] == pytest.approx(floor["validated"] - 0.01)
        and "gates.max_exact_halted_drop 0.01" in floor["source"]
    )
    assert res["chosen"]["exact"] >= floor["value"]
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("nothing was recorded")]
    assert len(line) == 1 and line[0].endswith("--apply") and f"--artefact {art}" in line[0], p.stdout
    assert "runtime_defaults" not in json.loads((art / "manifest.json").read_text())

    keeps = res["fastest_meeting_floor"]
    below = [c for c in res["front"] if c["exact"] < floor["value"]]
    assert below and min(c["latency_ms"] for c in below) < keeps["latency_ms"]  # cap 1 is faster and worse
    p = _edgekit(*args, "--latency-budget", f"{keeps['latency_ms'] / 4:.4f}", "--min-accuracy", f"{floor['value']}")
    assert p.returncode == 4, p.stdout + p.stderr
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and "the fastest configuration that meets it is" in err[0], err
    res = json.loads((art / "tune.json").read_text())
    assert res["chosen"] is None and res["fastest_meeting_floor"]["exact"] >= floor["value"]
    assert res["floor"]["source"] == "--min-accuracy"


def test_tampered_runtime_defaults_are_one_line(trm_artefact, tmp_path):
    from edgekit.runtime import Runner
    from edgekit.runtime.errors import ArtefactError

    art = tmp_path / "art"
    shutil.copytree(trm_artefact, art)
    m = json.loads((art / "manifest.json").read_text())
    for bad, word in [
        ({"variant": "int3", "halt_threshold": 1.0, "max_steps": 2}, "variant"),
        ({"variant": "float32", "halt_threshold": "high", "max_steps": 2}, "halt_threshold"),
        ({"variant": "float32", "halt_threshold": 1.0, "max_steps": 10**6}, "max_steps"),
    ]:
        m["runtime_defaults"] = bad
        (art / "manifest.json").write_text(json.dumps(m))
        with pytest.raises(ArtefactError, match=f"runtime_defaults.{word}"):
            Runner(art)


def test_tune_refuses_what_it_cannot_measure(small_trm_recipe, tmp_path):
    p = _edgekit("tune", str(small_trm_recipe), "--artefact", str(tmp_path / "none"), "--latency-budget", "5")
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "manifest.json" in p.stderr
    jetson = tmp_path / "jetson.yaml"
    jetson.write_text(small_trm_recipe.read_text().replace("target: x86-cpu", "target: jetson-orin-nano"))
    p = _edgekit("tune", str(jetson), "--latency-budget", "5")
    assert p.returncode == 2 and "TensorRT" in p.stderr and "edgekit bench" in p.stderr


def test_tune_skips_variants_whose_validation_gates_failed(small_trm_recipe, trm_artefact, tmp_path):
    """A variant results.json marks as failed is never chosen unless named with --variant."""
    art = tmp_path / "art"
    shutil.copytree(trm_artefact, art)
    res = json.loads((art / "results.json").read_text())
    for g in res["gates"]:
        g["passed"] = False
    (art / "results.json").write_text(json.dumps(res))
    p = _edgekit("tune", str(small_trm_recipe), "--artefact", str(art), "--latency-budget", "5")
    assert p.returncode == 2 and "every variant of the artefact failed its validation gates" in p.stderr
    (art / "results.json").write_text("{not json")
    p = _edgekit("tune", str(small_trm_recipe), "--artefact", str(art), "--latency-budget", "0.001", "--batch", "8",
                 "--check-n", "8")  # fmt: skip
    assert p.returncode == 4 and "results.json is unreadable" in p.stdout


def test_tune_for_a_tensorrt_target_uses_graph_times_measured_on_the_device(small_trm_recipe, trm_artefact, tmp_path):
    """A TensorRT target: tune refuses without device timings and names the device command; `edgekit bench
    --graph-times` (here on this CPU, standing in for the device) writes them; tune then predicts every
    configuration from them (labelled as estimated, nothing measured here) and its prediction follows the file:
    doubling every step time doubles the chosen point's latency. A file for other graph bytes, a tampered file or
    one timed at a smaller batch is one line, exit 2."""
    art = tmp_path / "art"
    shutil.copytree(trm_artefact, art)
    recipe = tmp_path / "jet.yaml"
    recipe.write_text(small_trm_recipe.read_text().replace("target: x86-cpu", "target: jetson-orin-nano"))
    base = ["tune", str(recipe), "--artefact", str(art), "--batch", "8", "--check-n", "16"]
    p = _edgekit(*base, "--latency-budget", "100000")
    assert p.returncode == 2 and "--graph-times" in p.stderr and "--latency-from" in p.stderr, p.stderr
    times = tmp_path / "times.json"
    b = _edgekit("bench", str(art), "--batch", "1", "--batch", "8", "--n", "8", "--repeats", "1", "--graph-times",
                 str(times))  # fmt: skip
    assert b.returncode == 0, b.stderr
    doc = json.loads(times.read_text())
    assert doc["variants"]["float32"]["sizes"] == [1, 2, 4, 8]
    p = _edgekit(*base, "--latency-budget", "100000", "--latency-from", str(times), "--json")
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert res["chosen"]["latency_source"] == "device graph times" and "estimated" in res["latency_source"]
    assert res["latency_model"]["float32"]["step_ms"] == [round(x, 3) for x in doc["variants"]["float32"]["step_ms"]]
    slow = json.loads(times.read_text())
    slow["variants"]["float32"]["step_ms"] = [2 * t for t in slow["variants"]["float32"]["step_ms"]]
    slow["variants"]["float32"]["encode_ms"] = [2 * t for t in slow["variants"]["float32"]["encode_ms"]]
    slow["variants"]["float32"]["readout_ms"] = [2 * t for t in slow["variants"]["float32"]["readout_ms"]]
    (tmp_path / "slow.json").write_text(json.dumps(slow))
    p2 = _edgekit(*base, "--latency-budget", "100000", "--latency-from", str(tmp_path / "slow.json"), "--json")
    res2 = json.loads(p2.stdout)
    same = [c for c in res2["front"] if (c["variant"], c["threshold"], c["cap"]) == (
        res["chosen"]["variant"], res["chosen"]["threshold"], res["chosen"]["cap"])]  # fmt: skip
    assert (
        same
        and abs(same[0]["latency_ms"] - 2 * res["chosen"]["latency_ms"]) < 1e-6 * res["chosen"]["latency_ms"] + 1e-3
    )
    for label, edit, text in (
        ("other graph bytes", lambda d: d["variants"]["float32"].update(step_sha256="0" * 64), "other graph bytes"),
        ("negative time", lambda d: d["variants"]["float32"]["step_ms"].__setitem__(0, -1.0), "not consistent"),
        (
            "smaller batch",
            lambda d: [d["variants"]["float32"][k].pop() for k in ("sizes", "encode_ms", "step_ms", "readout_ms")],
            "up to batch 4",
        ),  # fmt: skip
    ):
        bad = json.loads(times.read_text())
        edit(bad)
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        p = _edgekit(*base, "--latency-budget", "100000", "--latency-from", str(tmp_path / "bad.json"))
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        assert p.returncode == 2 and len(lines) == 1 and text in lines[0] and "Traceback" not in p.stderr, (
            label,
            p.stderr,
        )
