"""Validation outputs a CI can act on: JUnit XML, a report with plots, golden outputs that `edgekit verify`
re-checks with the runtime alone and that catch an altered weight."""

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import onnx
from onnx import numpy_helper


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "edgekit.cli", *args], capture_output=True, text=True, timeout=600)


def test_junit_has_one_case_per_gate(trm_artefact):
    res = json.loads((trm_artefact / "results.json").read_text())
    root = ET.parse(trm_artefact / "junit.xml").getroot()
    cases = root.findall(".//testcase")
    assert len(cases) == len(res["gates"]) > 0
    assert int(root.get("failures")) == sum(not g["passed"] for g in res["gates"])
    # test cases are named by the variant as `--variant` takes it, not by its display string
    assert {c.get("classname") for c in cases} == {"edgekit.trm-sudoku.float32"}


def test_junit_failure_names_the_variant_and_says_what_ran():
    from edgekit.validate.junit import junit_xml

    gate = {"name": "max_exact_drop", "variant": "int8", "value": 0.2, "limit": 0.01, "passed": False}
    entry = {"name": "int8", "display": "onnx (int8, step graph, host loop)"}
    root = ET.fromstring(junit_xml({"recipe": "r", "variants": [entry], "gates": [gate]}).split("?>", 1)[1])
    case = root.find(".//testcase")
    assert case is not None and case.get("classname") == "edgekit.r.int8"
    failure = case.find("failure")
    assert failure is not None and failure.text == (
        "variant int8 (onnx (int8, step graph, host loop)): max_exact_drop = 0.2, limit 0.01"
    )


def _halting_results(n: int = 40, steps: int = 6, seed: int = 0) -> tuple[dict, list, list]:
    """results.json-shaped entries of a float32 and an int8 variant built by the validation's own code from
    random rollouts (int8: float32's halting logits nudged, so some examples halt elsewhere)."""
    from edgekit.validate.compare import Variant, agreement, variant_metrics

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, (n, 4))
    preds = [np.where(rng.random((n, 4)) < 0.2 + 0.15 * t, labels, (labels + 1) % 3) for t in range(steps)]
    q32 = [rng.normal(-1.0 + 0.4 * t, 1.0, n).astype(np.float32) for t in range(steps)]
    q8 = [q + rng.normal(0, 0.6, n).astype(np.float32) for q in q32]
    preds8 = [np.where(rng.random((n, 4)) < 0.1, (p + 1) % 3, p) for p in preds]
    v32 = Variant("onnx (float32, step graph, host loop)", preds, q32, key="float32")
    v8 = Variant("onnx (int8, step graph, host loop)", preds8, q8, key="int8")
    entries = []
    for v in (v32, v8):
        sm = variant_metrics(v, labels)
        e = {"name": v.key, "display": v.name, "metrics": sm.summary(), "halting_histogram": sm.halting_histogram()}
        e["halting_exact"] = sm.halting_exact_histogram()
        entries.append(e)
    entries[1]["vs_onnx_float32"] = agreement(v8, v32, 0.0, labels, transition=True)
    results = {"recipe": "r", "target": "x86-cpu", "data": f"{n} examples", "reference": "float32", "passed": True}
    return results | {"variants": entries, "gates": []}, q32, q8


def test_halting_transition_counts_every_example_once_and_its_diagonal_is_the_agreement():
    from edgekit.tasks.metrics import halting_steps

    results, q32, q8 = _halting_results()
    f32, i8 = results["variants"]
    vs = i8["vs_onnx_float32"]
    m = np.asarray(vs["halting_step_transition"])
    assert m.shape == (6, 6) and m.sum() == 40
    assert np.trace(m) / m.sum() == vs["halting_step_agreement"] < 1  # some examples moved: a real test
    assert m.sum(1).tolist() == f32["halting_histogram"] and m.sum(0).tolist() == i8["halting_histogram"]
    h32, h8 = halting_steps(np.stack(q32)), halting_steps(np.stack(q8))
    assert all(m[a - 1, b - 1] == np.sum((h32 == a) & (h8 == b)) for a in range(1, 7) for b in range(1, 7))
    for e in (f32, i8):  # exact at each halting step adds up to exact at halting
        assert sum(e["halting_exact"]) == round(e["metrics"]["exact_halted"] * 40)
        assert all(0 <= k <= h for k, h in zip(e["halting_exact"], e["halting_histogram"]))


def test_halting_plots_are_written_and_listed_in_the_report(tmp_path):
    from edgekit.validate.plots import existing_plots, write_plots
    from edgekit.validate.report import report_markdown

    results, _, _ = _halting_results()
    made = write_plots(results, tmp_path)
    assert "halting_transition_int8.png" in made and "halting_transition_float32.png" not in made
    assert (tmp_path / "halting_transition_int8.png").read_bytes()[:4] == b"\x89PNG"
    assert existing_plots(tmp_path) == made  # what `edgekit tune` lists when it rewrites report.md
    text = report_markdown(results, None, made)
    m = np.asarray(results["variants"][1]["vs_onnx_float32"]["halting_step_transition"])
    same, later, earlier = int(np.trace(m)), int(np.triu(m, 1).sum()), int(np.tril(m, -1).sum())
    assert f"- int8: same halting step on {same} of 40 examples; {later} halt later, {earlier} earlier." in text
    assert text.count("![halting_transition_int8.png](halting_transition_int8.png)") == 1


def test_report_links_plots_that_exist(trm_artefact):
    report = (trm_artefact / "report.md").read_text()
    pngs = [line.split("(")[1].rstrip(")") for line in report.splitlines() if line.startswith("![")]
    assert "accuracy_vs_steps.png" in pngs and "halting_histogram.png" in pngs
    for p in pngs:
        assert (trm_artefact / p).read_bytes()[:4] == b"\x89PNG"


def test_verify_passes_on_a_fresh_artefact(trm_artefact):
    manifest = json.loads((trm_artefact / "manifest.json").read_text())
    assert "golden" in manifest["sha256"]
    r = _cli("verify", str(trm_artefact), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["passed"] and any(c["name"].startswith("golden float32/loop") for c in out["checks"])


def test_verify_fails_when_a_weight_is_altered(trm_artefact, tmp_path):
    copy = tmp_path / "a"
    shutil.copytree(trm_artefact, copy)
    model = onnx.load(str(copy / "step.onnx"))
    big = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
    w = numpy_helper.to_array(big).copy()
    w.flat[0] += 0.5
    big.CopyFrom(numpy_helper.from_array(w, big.name))
    onnx.save(model, str(copy / "step.onnx"))
    r = _cli("verify", str(copy), "--json")
    assert r.returncode == 3, r.stdout + r.stderr
    failed = [c["name"] for c in json.loads(r.stdout)["checks"] if not c["passed"]]
    assert "sha256 step.onnx" in failed


def test_verify_on_a_non_artefact_exits_2(tmp_path):
    r = _cli("verify", str(tmp_path))
    assert r.returncode == 2 and "manifest.json" in r.stderr and "Traceback" not in r.stderr


def test_verify_reports_a_corrupt_onnx_file_in_one_check(trm_artefact, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(trm_artefact, copy)
    (copy / "loop.onnx").write_bytes(b"not an onnx file")
    r = _cli("verify", str(copy), "--json")
    assert r.returncode == 3 and "Traceback" not in r.stderr
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert not checks["sha256 loop.onnx"]["passed"]
    assert "cannot" in checks["golden float32/loop"]["detail"]


def test_ci_examples_run_the_documented_commands(root):
    """The templates gate the user's own recipe ($RECIPE) and publish junit.xml; tests/system/test_ci_templates.py runs
    their steps against the demo in a fresh venv."""
    for f in ("github-actions.yml", "gitlab-ci.yml"):
        text = (root / "examples" / "ci" / f).read_text()
        assert 'edgekit export "$RECIPE"' in text and "junit.xml" in text and '"edgekit[export]' in text


def test_validate_rechecks_an_existing_artefact_with_stricter_gates(trm_artefact, small_trm_recipe, tmp_path):
    copy = tmp_path / "c"
    shutil.copytree(trm_artefact, copy)
    ok = _cli("validate", str(small_trm_recipe), str(copy), "--json")
    assert ok.returncode == 0, ok.stderr
    strict = tmp_path / "strict.yaml"
    strict.write_text(
        small_trm_recipe.read_text()
        .replace("min_argmax_agreement: 0.99", "min_argmax_agreement: 1.0, max_exact_halted_drop: 0.0")
        .replace("gates: {max_exact_drop: 0.01, ", "gates: {max_exact_drop: 0.0, ")
    )
    r = _cli("validate", str(strict), str(copy), "--json")
    res = json.loads(r.stdout)
    failed = [g["name"] for g in res["gates"] if not g["passed"]]
    assert (r.returncode == 3) == bool(failed)
    assert json.loads((copy / "results.json").read_text())["gates"] == res["gates"]
    assert _cli("verify", str(copy)).returncode == 0  # hashes were rewritten with the new results


def test_halting_gate_compares_compressed_variants_with_the_float32_export():
    from edgekit.schema import GatesSection
    from edgekit.validate.gates import evaluate_gates

    ref = {"name": "pytorch", "metrics": {"exact_full": 0.99, "exact_halted": 0.9}}
    m = {"exact_full": 0.99, "exact_halted": 0.9}
    fp32 = {
        "name": "onnx fp32",
        "metrics": m,
        "vs_reference": {"halting_step_agreement": 0.96, "argmax_agreement_last": 1.0},
    }
    int8 = {
        "name": "onnx int8",
        "metrics": m,
        "vs_reference": {"halting_step_agreement": 0.97, "argmax_agreement_last": 1.0},
        "vs_onnx_float32": {"halting_step_agreement": 0.90},
    }
    gates = GatesSection(min_halting_agreement=0.95)
    g32 = [g for g in evaluate_gates(gates, ref, fp32) if g["name"] == "min_halting_agreement"][0]
    g8 = [g for g in evaluate_gates(gates, ref, int8) if g["name"] == "min_halting_agreement"][0]
    assert (g32["against"], g32["passed"]) == ("reference", True)
    assert (g8["against"], g8["value"], g8["passed"]) == ("float32", 0.9, False)  # not the 0.97 vs reference


def test_report_opens_with_the_verdict_and_defines_its_terms(trm_artefact):
    from edgekit.validate.report import GLOSSARY

    report = (trm_artefact / "report.md").read_text()
    lines = [ln for ln in report.splitlines() if ln.strip()]
    assert lines[1].startswith("**PASSED**: all ") and lines[2].startswith("A device would use **float32**")
    header = next(ln for ln in lines if ln.startswith("| variant | what ran | exact@1"))
    for term in ("exact@1", "exact@budget", "cell@budget", "exact (early halting)", "halted before cap"):
        assert term in header and term in GLOSSARY
    assert "## Glossary" in report and "95 % interval" in lines[2]


def test_report_of_a_failed_gate_says_which_and_recommends_nothing_unfit():
    from edgekit.validate.report import report_markdown

    m = {"exact_full": 0.5, "exact_1": 0.1, "cell_full": 0.9, "exact_full_interval": [0.4, 0.6]}
    results = {
        "recipe": "r",
        "target": "x86-cpu",
        "data": "8 examples",
        "reference": "pytorch_float32",
        "passed": False,
        "variants": [
            {"name": "pytorch_float32", "display": "pytorch (float32)", "metrics": m},
            {"name": "int8", "display": "onnx (int8, step graph, host loop)", "metrics": m, "bytes": 1},
        ],
        "gates": [
            {"name": "max_exact_drop", "variant": "int8", "value": 0.2, "limit": 0.01, "passed": False,
             "against": "reference"},
        ],
    }  # fmt: skip
    text = report_markdown(results, None)
    assert "**FAILED**: 1 of 1 gates failed (max_exact_drop on int8)" in text
    assert "| int8 | onnx (int8, step graph, host loop) |" in text
    assert "No ONNX variant passes its gates" in text


def test_reference_rollouts_are_cached_by_content(root, tmp_path, monkeypatch):
    """A second rollout of the same weights on the same examples is read back (bit-identical); other examples or
    another precision are a miss."""
    import numpy as np

    from edgekit.models.checkpoint import load_model
    from edgekit.tasks import sudoku
    from edgekit.validate.reference import reference_rollout

    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path))
    m = load_model(root / "examples/models/trm-sudoku", forward_dtype="float32")
    x, _ = sudoku.SudokuPool.generate(4, seed=3).sample(4, (28, 40), np.random.default_rng(3), augment=False)
    logs: list[str] = []
    a = reference_rollout(m, x, 4, "ref", "sha-of-weights", logs.append)
    b = reference_rollout(m, x, 4, "ref", "sha-of-weights", logs.append)
    assert logs == [f"ref: read from the cache ({next((tmp_path / 'reference').iterdir()).name})"]
    assert all(np.array_equal(p, q) for p, q in zip(a[0], b[0])) and np.array_equal(a[2], b[2])
    assert all(np.array_equal(p, q) for p, q in zip(a[1], b[1]))
    reference_rollout(m, x[:3], 4, "ref", "sha-of-weights", logs.append)
    reference_rollout(m, x, 4, "ref", "other-weights", logs.append)
    assert len(logs) == 1 and len(list((tmp_path / "reference").iterdir())) == 3
    (next((tmp_path / "reference").iterdir())).write_bytes(b"damaged")  # a damaged entry is recomputed
    for _ in range(2):
        reference_rollout(m, x[:3], 4, "ref", "sha-of-weights", logs.append)
        reference_rollout(m, x, 4, "ref", "sha-of-weights", logs.append)
    assert len(list((tmp_path / "reference").iterdir())) == 3
