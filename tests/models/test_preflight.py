"""`edgekit export --dry-run` checks what the export would refuse (paths, checkpoint and dataset headers, their fit)
without loading weights: each problem is one line and exit 2; a good recipe says what it checked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reference_checkpoints import OFFICIAL, write_reference_checkpoint  # noqa: E402

MODEL = ROOT / "examples" / "models" / "trm-sudoku"
DATA = ROOT / "examples" / "data" / "sudoku-demo"


def _dry(tmp: Path, model: str, task: str, extra: str = "") -> subprocess.CompletedProcess:
    recipe = tmp / "r.yaml"
    recipe.write_text(f"schema_version: 1\nname: r\nmodel: {{path: {model}}}\ntask: {task}\n{extra}")
    return subprocess.run(
        [sys.executable, "-m", "edgekit.cli", "export", str(recipe), "--dry-run"], capture_output=True, text=True
    )


def _one_line(r: subprocess.CompletedProcess, *words: str) -> None:
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stdout + r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


def test_a_good_recipe_says_what_it_checked(tmp_path):
    r = _dry(tmp_path, str(MODEL), f"{{name: sudoku, data: {DATA}, n: 256}}")
    assert r.returncode == 0, r.stderr
    for said in ("256 examples", "calibration split train", "trm, vocabulary 11, sequence length 81",
                 "no weights loaded", "task sudoku fits the model", "is valid"):  # fmt: skip
        assert said in r.stdout, said


@pytest.mark.parametrize(
    "model, task, words",
    [
        ("missing/ckpt", "{name: sudoku}", ["model.path", "does not exist"]),
        (str(MODEL), "{name: sudoku, data: missing/data}", ["neither a dataset folder nor a .npz"]),
        (str(MODEL), f"{{name: sudoku, data: {DATA}, n: 257}}", ["257", "256 examples"]),
        (str(MODEL), f"{{name: sudoku, data: {DATA}, calibration_split: tune}}", ["'tune'"]),
        (str(MODEL), "{name: digits}", ["does not fit"]),
        (
            str(ROOT / "examples" / "models" / "hrm-sudoku"),
            f"{{name: maze, data: {ROOT}/examples/data/maze-demo, n: 24}}",
            ["seq_len"],
        ),  # fmt: skip
    ],
)
def test_each_problem_is_one_line_and_exit_2(tmp_path, model, task, words):
    _one_line(_dry(tmp_path, model, task), *words)


def test_a_corrupt_or_headerless_checkpoint_is_refused(tmp_path):
    bad = tmp_path / "ckpt"
    bad.mkdir()
    (bad / "all_config.yaml").write_text((MODEL / "all_config.yaml").read_text())
    (bad / "model.safetensors").write_bytes(b"\xff" * 64)
    _one_line(_dry(tmp_path, str(bad), "{name: sudoku}"), "model.safetensors")
    (bad / "model.safetensors").unlink()
    (bad / "step_10").write_bytes(b"PK\x03\x04 not a zip")
    _one_line(_dry(tmp_path, str(bad), "{name: sudoku}"), "step_10")


def test_reference_torch_checkpoint_is_read_by_its_header_only(tmp_path, monkeypatch):
    """A reference `torch.save` file (step_N, `_orig_mod.model.inner.` keys) is memory-mapped: its tensors are
    never read into memory (any full read fails this test)."""
    import torch

    from edgekit.models import checkpoint
    from edgekit.preflight import check_inputs
    from edgekit.schema import parse_recipe

    cfg = {**OFFICIAL["trm-mlp-sudoku"], "hidden_size": 32, "num_heads": 2}
    d = write_reference_checkpoint(tmp_path / "ref", cfg, name="step_100")

    def no_read(*a, **k):
        raise AssertionError("a dry run read the weights")

    monkeypatch.setattr(checkpoint, "read_state_dict", no_read)
    loads = []
    real = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(k.get("mmap")) or real(*a, **k))
    r = parse_recipe({"name": "r", "model": {"path": str(d)}, "task": {"name": "sudoku", "data": str(DATA)}})
    lines = check_inputs(r, tmp_path)
    assert loads == [True], loads
    assert any("trm, vocabulary 11, sequence length 81" in ln for ln in lines), lines
