"""onnxruntime's memory pattern stays off in the runtime's sessions (it plans a second arena block per input shape:
two chunks of the same size held about twice a call's activations), and benchmarks/mem_pattern.py, which measured
the decision, runs and reports both settings."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def test_runtime_sessions_have_the_memory_pattern_off(trm_artefact):
    from edgekit.runtime import Runner

    r = Runner(trm_artefact)
    for graph in ("encode", "step", "readout"):
        assert r.session(graph).get_session_options().enable_mem_pattern is False, graph


@pytest.mark.slow
def test_mem_pattern_benchmark_reports_both_settings(trm_artefact, root, tmp_path):
    out = tmp_path / "m.json"
    cmd = [sys.executable, str(root / "benchmarks" / "mem_pattern.py"), "--artefact", str(trm_artefact)]
    cmd += ["--rounds", "1", "--puzzles", "1", "--chunk", "4", "--chunks", "2", "--mem-repeats", "1", "--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(out.read_text())
    for b in (1, 64):
        for what in ("step_ms", "solve_ms_per_puzzle"):
            assert got["speed"][f"b{b} {what} off/on"] > 0 and got["speed"][f"on b{b} {what}"] > 0
    for tag in ("on", "off"):
        assert got["memory"][tag]["peak_mb"] >= got["memory"][tag]["rss_before_mb"] > 0
    assert len(got["load_before"]) == len(got["load_after"]) == 3
