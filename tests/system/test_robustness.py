"""Killing `edgekit export` at any moment leaves the previous complete artefact or none, never a partial one."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest


def _complete(folder) -> bool:
    """Every file the manifest lists exists with the recorded hash, and results.json is there."""
    m = json.loads((folder / "manifest.json").read_text())
    for key, digest in m["sha256"].items():
        if hashlib.sha256((folder / m["files"][key]).read_bytes()).hexdigest() != digest:
            return False
    return (folder / "results.json").is_file() and (folder / "report.md").is_file()


@pytest.mark.parametrize("with_previous", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_killed_export_leaves_no_partial_artefact(root, tmp_path, with_previous):
    recipe = root / "recipes" / "deq-digits.yaml"
    out = tmp_path / "art"
    cmd = [sys.executable, "-m", "edgekit.cli", "export", str(recipe), "--out", str(out)]
    env = {**os.environ, "EDGEKIT_CACHE": str(tmp_path / "cache")}
    previous = None
    if with_previous:
        assert subprocess.run(cmd, capture_output=True, env=env, timeout=600).returncode == 0
        previous = (out / "manifest.json").read_text()
    for delay in (0.5, 2.0, 5.0, 9.0, 14.0):
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        time.sleep(delay)
        finished = p.poll() is not None
        p.send_signal(signal.SIGKILL)
        p.wait()
        if previous is not None:  # the previous artefact, or (if the run got to its final rename) the new one
            assert out.exists(), f"previous artefact lost after a kill at {delay} s"
            assert not finished or (out / "manifest.json").read_text() != previous
        if out.exists():
            assert _complete(out), f"partial artefact after a kill at {delay} s"
    # the next run tidies what the killed ones left and completes
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    assert _complete(out)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".art.")]
