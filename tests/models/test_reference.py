"""Bit-level agreement with the reference implementations (needs local clones; not part of the default run).

EDGEKIT_HRM_REPO=/tmp/ref/hrm EDGEKIT_TRM_REPO=/tmp/ref/trm \
    .venv/bin/python -m pytest -m slow tests/models/test_reference.py
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.reference]


def test_edgekit_matches_reference_models(root, tmp_path):
    hrm, trm = os.environ.get("EDGEKIT_HRM_REPO"), os.environ.get("EDGEKIT_TRM_REPO")
    if not (hrm and trm and Path(hrm, "models").is_dir() and Path(trm, "models").is_dir()):
        pytest.skip("set EDGEKIT_HRM_REPO and EDGEKIT_TRM_REPO to clones of sapientinc/HRM and TinyRecursiveModels")
    out = tmp_path / "cmp.json"
    p = subprocess.run(
        [
            sys.executable,
            str(root / "examples" / "compare_reference.py"),
            "--hrm-repo",
            hrm,
            "--trm-repo",
            trm,
            "--n",
            "4",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    rows = json.loads(out.read_text())
    assert {r["prefix"] for r in rows} == {"_orig_mod.model.inner.", "model.inner."}
    for r in rows:
        assert r["argmax_agreement"] == 1.0, r
        assert r["max_abs_dlogits"] <= (1e-5 if r["dtype"] == "float32" else 1e-2), r
    assert all(r["negative_control_dlogits"] > 0 for r in rows if "negative_control_dlogits" in r)
