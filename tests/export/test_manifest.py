"""The typed manifest (edgekit/manifest.py): what export writes reads back into the same document byte for byte,
every shape of section the format allows survives a round trip, a manifest of another format version is one line,
and the dataclasses are the contract readers use (frozen, fresh JSON out)."""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgekit.errors import ArtefactError
from edgekit.manifest import VERSION, Manifest, RuntimeDefaults, VariantGraphs, defaults_digest
from edgekit.runtime.manifest import load_manifest, read_manifest
from edgekit.stopping import FixedPoint, HaltLogit


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgekit.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture
def art(trm_artefact, tmp_path) -> Path:
    dst = tmp_path / "art"
    shutil.copytree(trm_artefact, dst)
    return dst


def test_an_exported_manifest_reads_back_byte_for_byte(trm_artefact):
    text = (trm_artefact / "manifest.json").read_text()
    doc = json.loads(text)
    m = load_manifest(trm_artefact)
    assert m.to_json() == doc and m.dumps() == text  # what export wrote is what the dataclasses write
    assert m.schema_version == VERSION and m.family == "trm" and m.target_name == "x86-cpu"
    assert m.stopping == HaltLogit(doc["graph"]["halt_threshold"])
    assert m.graph.state.names == tuple(doc["graph"]["state_names"]) and m.graph.input.sample_shape == (81,)
    assert m.variants["float32"].roles == doc["variants"]["float32"] and set(m.hashes) == set(m.files)
    assert read_manifest(trm_artefact) == doc


def test_tuned_defaults_round_trip_and_keep_their_digest(art):
    from edgekit.tune.stage import apply_defaults

    result = {"chosen": {"variant": "float32", "threshold": None, "cap": 3}, "budget_ms": 5.0, "batch": 8}
    applied = apply_defaults(art, result)
    text = (art / "manifest.json").read_text()
    m = load_manifest(art)
    assert m.dumps() == text and m.runtime_defaults is not None
    assert m.runtime_defaults.to_json() == applied and m.runtime_defaults_sha256 == defaults_digest(applied)
    assert m.runtime_defaults.threshold == float("inf")  # null: never halt before the cap


def _variants(doc: dict) -> list[dict]:
    """Documents the format allows beyond what the demo export writes: a DEQ (zeros initial state, solver),
    a new family declaring its stopping rule, puzzle identifiers, explicit nulls, unknown keys, defaults without a
    threshold, another key order."""
    deq = copy.deepcopy(doc)
    solver = {"name": "anderson", "tol": 1e-4, "max_iter": 40, "anderson_m": 5}
    deq["model"] = {"family": "deq", "config": {"hidden_size": 64, "solver": solver}}
    deq["graph"]["initial_state"] = {"kind": "zeros", "shape": [64]}
    declared = copy.deepcopy(doc)
    declared["model"] = {**declared["model"], "family": "act_fixed_point", "stopping": {"kind": "fixed_point"}}
    declared["model"]["config"] = {"solver": {"name": "fixed_point", "tol": 1e-3}}
    puzzles = copy.deepcopy(doc)
    puzzles["files"]["puzzle_ids"] = "puzzle_ids.npz"
    puzzles["graph"]["puzzle_ids"] = {"rows": 3, "rows_before": 10, "default_row": None, "file": "puzzle_ids"}
    loose = copy.deepcopy(doc)
    loose.update(sha256=None, bytes=None, recipe=None, future_key={"x": [1, 2]})
    loose["graph"]["forms"] = None
    loose["graph"]["note"] = "unknown graph keys stay"
    tuned = copy.deepcopy(doc)
    tuned["runtime_defaults"] = {"max_steps": 2, "variant": "float32"}  # no threshold: the validated one
    tuned["runtime_defaults_sha256"] = defaults_digest(tuned["runtime_defaults"])
    reordered = dict(reversed(list(doc.items())))
    return [deq, declared, puzzles, loose, tuned, reordered]


def test_every_section_shape_round_trips(trm_artefact):
    doc = json.loads((trm_artefact / "manifest.json").read_text())
    for d in _variants(doc):
        m = Manifest.from_json(copy.deepcopy(d))
        assert m.to_json() == d
        assert json.dumps(m.to_json()) == json.dumps(d)  # key order too
    deq, declared, puzzles, _, tuned, _ = (Manifest.from_json(d) for d in _variants(doc))
    assert isinstance(deq.stopping, FixedPoint) and deq.stopping.solver == "anderson"
    assert deq.graph.state.initial.shape == (64,)
    assert declared.model.kind == "fixed_point" and declared.stopping == FixedPoint(1e-3, "fixed_point")
    assert puzzles.graph.puzzle_ids is not None and puzzles.graph.puzzle_ids.default_row is None
    assert tuned.runtime_defaults is not None and tuned.runtime_defaults.threshold is None


def test_the_manifest_is_frozen_and_hands_out_fresh_json(trm_artefact):
    m = load_manifest(trm_artefact)
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.target = "elsewhere"  # type: ignore[misc]
    out = m.to_json()
    out["graph"]["state_names"].append("z_X")
    out["model"]["config"]["hidden_size"] = -1
    assert m.to_json() == json.loads((trm_artefact / "manifest.json").read_text())
    roles = {"encode": "encode", "step": "int8/step", "readout": "readout"}
    changed = dataclasses.replace(m, variants={**m.variants, "int8": VariantGraphs.of(roles)})
    assert changed.to_json()["variants"]["int8"] == roles and "int8" not in m.variants


def test_built_runtime_defaults_write_null_thresholds():
    d = RuntimeDefaults("float32", 4, None, "tune")
    assert d.to_json() == {"variant": "float32", "halt_threshold": None, "max_steps": 4, "chosen_by": "tune"}


@pytest.mark.parametrize("version", [2, 0, "1", True, None])
def test_another_format_version_is_one_line(art, version):
    doc = json.loads((art / "manifest.json").read_text())
    doc["schema_version"] = version
    with pytest.raises(ArtefactError, match=f"schema_version {version!r} is not {VERSION}"):
        Manifest.from_json(doc)
    (art / "manifest.json").write_text(json.dumps(doc))
    r = _cli("info", str(art))
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert f"schema_version {version!r} is not {VERSION}" in lines[0]
    if isinstance(version, int) and not isinstance(version, bool):
        assert "the manifest format this edgekit reads" in lines[0] and "edgekit version that wrote it" in lines[0]


def test_a_manifest_is_checked_before_it_is_typed(trm_artefact):
    doc = json.loads((trm_artefact / "manifest.json").read_text())
    bad = copy.deepcopy(doc)
    bad["graph"]["state_names"] = [["z_H"]]  # unhashable where a name belongs: one line, no TypeError
    with pytest.raises(ArtefactError, match="graph.state_names is not a list of plain names"):
        Manifest.from_json(bad)
    incomplete = copy.deepcopy(doc)
    incomplete["sha256"] = {}
    assert Manifest.from_json(copy.deepcopy(incomplete)).hashes == {}  # still being written: fine
    with pytest.raises(ArtefactError, match="it lists no file hashes"):
        Manifest.from_json(incomplete, complete=True)
